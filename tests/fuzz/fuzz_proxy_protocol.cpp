// The PROXY protocol decoder (accept_proxy: true): the first bytes of every
// connection from a front balancer, i.e. from the network. Besides "no crash",
// the decoder is incremental, so feeding the same bytes in any chunking must
// give the same verdict, and a header we encode must decode to what we encoded.

#include "fuzz_target.h"

#include <cstring>
#include <span>

#include "switchyard/proxy/proxy_protocol.h"

using namespace switchyard;
using proxy::ProxyHeaderDecoder;

namespace {

struct Outcome {
    ProxyHeaderDecoder::Status status;
    std::size_t consumedTotal = 0;   // header bytes, counted from the stream's start
    proxy::ProxyHeader header;
};

// Feeds `bytes` in chunks whose sizes come from `cuts` (cycled; 0 means 1).
Outcome decodeChunked(std::span<const uint8_t> bytes, std::span<const uint8_t> cuts) {
    ProxyHeaderDecoder decoder;
    std::size_t at = 0;
    std::size_t cut = 0;
    while (at < bytes.size()) {
        std::size_t n = cuts.empty() ? bytes.size() : std::max<std::size_t>(1, cuts[cut++ % cuts.size()]);
        n = std::min(n, bytes.size() - at);
        const auto status = decoder.feed(bytes.subspan(at, n));
        if (status == ProxyHeaderDecoder::Status::Done) {
            FUZZ_CHECK(decoder.consumed() >= 1 && decoder.consumed() <= n);
            return {status, at + decoder.consumed(), decoder.header()};
        }
        if (status == ProxyHeaderDecoder::Status::Error) {
            FUZZ_CHECK(!decoder.error().empty());
            return {status, 0, {}};
        }
        at += n;
    }
    return {decoder.status(), 0, {}};
}

void checkHeader(const proxy::ProxyHeader& h, std::size_t consumed) {
    FUZZ_CHECK(h.version == 1 || h.version == 2);
    if (h.version == 1) FUZZ_CHECK(consumed <= proxy::kProxyV1MaxLength);
    else FUZZ_CHECK(consumed <= proxy::kProxyV2MaxLength);
    if (h.local) FUZZ_CHECK(!h.addresses);
    if (h.addresses) {
        FUZZ_CHECK(h.addresses->source.ipv6 == h.addresses->destination.ipv6);
        sockaddr_storage storage{};
        FUZZ_CHECK(h.addresses->source.toSockaddr(storage) > 0);
        FUZZ_CHECK(!h.addresses->source.addressText().empty());
        FUZZ_CHECK(!h.addresses->destination.addressText().empty());
    }
}

} // namespace

SWITCHYARD_FUZZ_TARGET(proxy_protocol)(const uint8_t* data, std::size_t size) {
    fuzz::quietLogs();
    // Layout: [k][k chunk sizes][stream]; short inputs are all stream.
    std::span<const uint8_t> input(data, size);
    std::span<const uint8_t> cuts;
    if (size > 1 && data[0] < 16 && size > 1u + data[0]) {
        cuts = input.subspan(1, data[0]);
        input = input.subspan(1 + data[0]);
    }
    const Outcome whole = decodeChunked(input, {});
    const Outcome chunked = decodeChunked(input, cuts);
    const std::uint8_t one[1] = {1};
    const Outcome bytewise = decodeChunked(input, std::span<const uint8_t>(one, 1));
    FUZZ_CHECK(whole.status == chunked.status && whole.status == bytewise.status);
    if (whole.status == ProxyHeaderDecoder::Status::Done) {
        FUZZ_CHECK(whole.consumedTotal == chunked.consumedTotal && whole.consumedTotal == bytewise.consumedTotal);
        FUZZ_CHECK(whole.header.version == chunked.header.version && whole.header.local == chunked.header.local);
        FUZZ_CHECK(whole.header.addresses == chunked.header.addresses);
        FUZZ_CHECK(whole.header.addresses == bytewise.header.addresses);
        checkHeader(whole.header, whole.consumedTotal);
    }

    // Round trip: the addresses the fuzzer chose, encoded both ways, decode back.
    if (size >= 37) {
        proxy::ProxyAddresses a;
        const bool ipv6 = data[0] & 1;
        a.source.ipv6 = a.destination.ipv6 = ipv6;
        std::memcpy(a.source.address.data(), data + 1, ipv6 ? 16 : 4);
        std::memcpy(a.destination.address.data(), data + 17, ipv6 ? 16 : 4);
        a.source.port = static_cast<uint16_t>(data[33] << 8 | data[34]);
        a.destination.port = static_cast<uint16_t>(data[35] << 8 | data[36]);
        // An IPv4-mapped IPv6 pair is sent as TCP4 on purpose (see encodeProxyHeader),
        // so only compare pairs that stay in their family.
        const auto mapped = [](const proxy::ProxyEndpoint& e) {
            static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            return e.ipv6 && std::memcmp(e.address.data(), prefix, 12) == 0;
        };
        if (!mapped(a.source) && !mapped(a.destination)) {
            for (auto version : {config::ProxyProtocol::V1, config::ProxyProtocol::V2}) {
                const std::string encoded = proxy::encodeProxyHeader(version, a);
                ProxyHeaderDecoder decoder;
                const auto status = decoder.feed(
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()));
                FUZZ_CHECK(status == ProxyHeaderDecoder::Status::Done);
                FUZZ_CHECK(decoder.consumed() == encoded.size());
                FUZZ_CHECK(decoder.header().addresses == a);
            }
        }
    }
    return 0;
}
