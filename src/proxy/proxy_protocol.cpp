#include "switchyard/proxy/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace switchyard::proxy {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr uint8_t kV2VersionProxy = 0x21;   // version 2, PROXY command
constexpr uint8_t kV2VersionLocal = 0x20;   // version 2, LOCAL command
constexpr uint8_t kV2Inet = 0x11;           // AF_INET, STREAM
constexpr uint8_t kV2Inet6 = 0x21;          // AF_INET6, STREAM
constexpr uint8_t kV2Unspec = 0x00;
constexpr std::size_t kV2HeadLength = 16;

bool isV4Mapped(const ProxyEndpoint& e) {
    static constexpr uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return e.ipv6 && std::memcmp(e.address.data(), prefix, sizeof prefix) == 0;
}

ProxyEndpoint asV4(const ProxyEndpoint& e) {
    if (!e.ipv6) return e;
    ProxyEndpoint out;
    std::memcpy(out.address.data(), e.address.data() + 12, 4);
    out.port = e.port;
    return out;
}

ProxyEndpoint asV6(const ProxyEndpoint& e) {
    if (e.ipv6) return e;
    ProxyEndpoint out;
    out.ipv6 = true;
    out.address[10] = out.address[11] = 0xff;
    std::memcpy(out.address.data() + 12, e.address.data(), 4);
    out.port = e.port;
    return out;
}

// Both sides in one family, as both versions require.
ProxyAddresses sameFamily(const ProxyAddresses& a) {
    const bool v4able = (!a.source.ipv6 || isV4Mapped(a.source)) && (!a.destination.ipv6 || isV4Mapped(a.destination));
    if (v4able) return {asV4(a.source), asV4(a.destination)};
    return {asV6(a.source), asV6(a.destination)};
}

void putBe16(std::string& out, uint16_t v) {
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v & 0xff));
}

uint16_t getBe16(const std::string& in, std::size_t at) {
    return static_cast<uint16_t>((static_cast<uint8_t>(in[at]) << 8) | static_cast<uint8_t>(in[at + 1]));
}

std::string v2Signature() {
    return std::string(reinterpret_cast<const char*>(kProxyV2Signature.data()), kProxyV2Signature.size());
}

// A v1 port: 0..65535 in decimal, no sign, no leading zero.
std::optional<uint16_t> parsePort(std::string_view text) {
    if (text.empty() || text.size() > 5) return std::nullopt;
    if (text.size() > 1 && text[0] == '0') return std::nullopt;
    uint32_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<uint32_t>(c - '0');
    }
    if (value > 65535) return std::nullopt;
    return static_cast<uint16_t>(value);
}

// inet_pton is strict already (no leading zeros or short forms for IPv4).
std::optional<ProxyEndpoint> parseAddress(std::string_view text, bool ipv6) {
    if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
    const std::string s(text);
    ProxyEndpoint e;
    e.ipv6 = ipv6;
    if (inet_pton(ipv6 ? AF_INET6 : AF_INET, s.c_str(), e.address.data()) != 1) return std::nullopt;
    return e;
}

std::vector<std::string_view> splitSpaces(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t sp = line.find(' ', start);
        out.push_back(line.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start));
        if (sp == std::string_view::npos) return out;
        start = sp + 1;
    }
}

std::string printable(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 40)) {
        if (c >= 0x20 && c < 0x7f) out.push_back(c);
        else out += fmt::format("\\x{:02x}", static_cast<uint8_t>(c));
    }
    return out;
}

} // namespace

ProxyEndpoint ProxyEndpoint::ipv4(uint32_t hostOrderAddress, uint16_t port) {
    ProxyEndpoint e;
    const uint32_t n = htonl(hostOrderAddress);
    std::memcpy(e.address.data(), &n, 4);
    e.port = port;
    return e;
}

std::optional<ProxyEndpoint> ProxyEndpoint::fromSockaddr(const sockaddr* addr, socklen_t len) {
    if (addr == nullptr) return std::nullopt;
    ProxyEndpoint e;
    if (addr->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
        sockaddr_in in{};
        std::memcpy(&in, addr, sizeof in);
        std::memcpy(e.address.data(), &in.sin_addr, 4);
        e.port = ntohs(in.sin_port);
        return e;
    }
    if (addr->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
        sockaddr_in6 in6{};
        std::memcpy(&in6, addr, sizeof in6);
        e.ipv6 = true;
        std::memcpy(e.address.data(), &in6.sin6_addr, 16);
        e.port = ntohs(in6.sin6_port);
        return e;
    }
    return std::nullopt;
}

socklen_t ProxyEndpoint::toSockaddr(sockaddr_storage& out) const {
    std::memset(&out, 0, sizeof out);
    if (ipv6) {
        sockaddr_in6 in6{};
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(port);
        std::memcpy(&in6.sin6_addr, address.data(), 16);
        std::memcpy(&out, &in6, sizeof in6);
        return sizeof in6;
    }
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    std::memcpy(&in.sin_addr, address.data(), 4);
    std::memcpy(&out, &in, sizeof in);
    return sizeof in;
}

std::string ProxyEndpoint::addressText() const {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(ipv6 ? AF_INET6 : AF_INET, address.data(), text, sizeof text);
    return text;
}

std::string encodeProxyHeader(config::ProxyProtocol version, const std::optional<ProxyAddresses>& addresses) {
    switch (version) {
    case config::ProxyProtocol::None:
        return {};
    case config::ProxyProtocol::V1: {
        if (!addresses) return "PROXY UNKNOWN\r\n";
        const ProxyAddresses a = sameFamily(*addresses);
        return fmt::format("PROXY {} {} {} {} {}\r\n", a.source.ipv6 ? "TCP6" : "TCP4", a.source.addressText(),
                           a.destination.addressText(), a.source.port, a.destination.port);
    }
    case config::ProxyProtocol::V2: {
        std::string out = v2Signature();
        out.push_back(static_cast<char>(kV2VersionProxy));
        if (!addresses) {
            out.push_back(static_cast<char>(kV2Unspec));
            putBe16(out, 0);
            return out;
        }
        const ProxyAddresses a = sameFamily(*addresses);
        const std::size_t n = a.source.ipv6 ? 16 : 4;
        out.push_back(static_cast<char>(a.source.ipv6 ? kV2Inet6 : kV2Inet));
        putBe16(out, static_cast<uint16_t>(2 * n + 4));
        out.append(reinterpret_cast<const char*>(a.source.address.data()), n);
        out.append(reinterpret_cast<const char*>(a.destination.address.data()), n);
        putBe16(out, a.source.port);
        putBe16(out, a.destination.port);
        return out;
    }
    }
    return {};
}

std::string encodeProxyHeaderLocal(config::ProxyProtocol version) {
    switch (version) {
    case config::ProxyProtocol::None: return {};
    case config::ProxyProtocol::V1: return "PROXY UNKNOWN\r\n";
    case config::ProxyProtocol::V2: {
        std::string out = v2Signature();
        out.push_back(static_cast<char>(kV2VersionLocal));
        out.push_back(static_cast<char>(kV2Unspec));
        putBe16(out, 0);
        return out;
    }
    }
    return {};
}

// --- decoder -----------------------------------------------------------------------------

ProxyHeaderDecoder::Status ProxyHeaderDecoder::fail(std::string why) {
    status_ = Status::Error;
    error_ = std::move(why);
    return status_;
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::feed(std::span<const uint8_t> data) {
    if (status_ != Status::NeedMore) return status_;
    for (std::size_t i = 0; i < data.size(); ++i) {
        const uint8_t byte = data[i];
        Status s;
        if (buffer_.empty()) {
            if (byte == kV1Prefix[0]) header_.version = 1;
            else if (byte == kProxyV2Signature[0]) header_.version = 2;
            else return fail(fmt::format("not a PROXY protocol header (first byte 0x{:02x})", byte));
        }
        s = header_.version == 1 ? feedV1(byte) : feedV2(byte);
        if (s == Status::Done) consumed_ = i + 1;
        if (s != Status::NeedMore) return s;
    }
    return status_;
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::feedV1(uint8_t byte) {
    buffer_.push_back(static_cast<char>(byte));
    const std::size_t n = buffer_.size();
    if (n <= kV1Prefix.size()) {
        if (buffer_.back() != kV1Prefix[n - 1])
            return fail(fmt::format("v1: expected 'PROXY ', got '{}'", printable(buffer_)));
        return Status::NeedMore;
    }
    if (byte == '\n') {
        if (buffer_[n - 2] != '\r') return fail("v1: line ends in LF without CR");
        return finishV1();
    }
    if (n >= 2 && buffer_[n - 2] == '\r') return fail("v1: CR not followed by LF");
    if (byte != '\r' && (byte < 0x20 || byte > 0x7e))
        return fail(fmt::format("v1: control or non-ASCII byte 0x{:02x}", byte));
    // The CRLF must fit in 107 bytes: a longer line is an error, not a wait.
    if (n >= kProxyV1MaxLength) return fail("v1: longer than 107 bytes without CRLF");
    return Status::NeedMore;
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::finishV1() {
    const std::string_view line = std::string_view(buffer_).substr(0, buffer_.size() - 2);
    const auto fields = splitSpaces(line);
    // fields[0] is "PROXY" (checked while reading).
    if (fields.size() < 2) return fail("v1: missing protocol");
    if (fields[1] == "UNKNOWN") {
        // The spec: the receiver ignores whatever follows UNKNOWN and uses the real addresses.
        status_ = Status::Done;
        return status_;
    }
    bool ipv6;
    if (fields[1] == "TCP4") ipv6 = false;
    else if (fields[1] == "TCP6") ipv6 = true;
    else return fail(fmt::format("v1: unknown protocol '{}'", printable(fields[1])));
    if (fields.size() != 6)
        return fail(fmt::format("v1: expected 4 fields after {}, got {}", fields[1], fields.size() - 2));
    auto source = parseAddress(fields[2], ipv6);
    if (!source) return fail(fmt::format("v1: bad source address '{}'", printable(fields[2])));
    auto destination = parseAddress(fields[3], ipv6);
    if (!destination) return fail(fmt::format("v1: bad destination address '{}'", printable(fields[3])));
    auto sport = parsePort(fields[4]);
    if (!sport) return fail(fmt::format("v1: bad source port '{}'", printable(fields[4])));
    auto dport = parsePort(fields[5]);
    if (!dport) return fail(fmt::format("v1: bad destination port '{}'", printable(fields[5])));
    source->port = *sport;
    destination->port = *dport;
    header_.addresses = ProxyAddresses{*source, *destination};
    status_ = Status::Done;
    return status_;
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::feedV2(uint8_t byte) {
    buffer_.push_back(static_cast<char>(byte));
    const std::size_t n = buffer_.size();
    if (n <= kProxyV2Signature.size()) {
        if (byte != kProxyV2Signature[n - 1]) return fail("v2: bad signature");
        return Status::NeedMore;
    }
    if (n == 13) {
        if ((byte >> 4) != 2) return fail(fmt::format("v2: unsupported version {}", byte >> 4));
        if ((byte & 0x0f) > 1) return fail(fmt::format("v2: unknown command {}", byte & 0x0f));
        return Status::NeedMore;
    }
    if (n == 14) {
        if ((byte >> 4) > 3) return fail(fmt::format("v2: unknown address family {}", byte >> 4));
        if ((byte & 0x0f) > 2) return fail(fmt::format("v2: unknown transport protocol {}", byte & 0x0f));
        return Status::NeedMore;
    }
    if (n == kV2HeadLength) {
        v2Total_ = kV2HeadLength + getBe16(buffer_, 14);
        if (v2Total_ > kProxyV2MaxLength)
            return fail(fmt::format("v2: header of {} bytes is over the {} byte limit", v2Total_, kProxyV2MaxLength));
    }
    if (n >= kV2HeadLength && n == v2Total_) return finishV2();
    return Status::NeedMore;
}

ProxyHeaderDecoder::Status ProxyHeaderDecoder::finishV2() {
    const auto command = static_cast<uint8_t>(buffer_[12]) & 0x0f;
    const auto family = static_cast<uint8_t>(buffer_[13]) >> 4;
    const auto transport = static_cast<uint8_t>(buffer_[13]) & 0x0f;
    const std::size_t length = v2Total_ - kV2HeadLength;
    if (command == 0) {
        // LOCAL (the front balancer's own health check): the spec says to
        // discard the block, family included, and use the real addresses.
        header_.local = true;
        status_ = Status::Done;
        return status_;
    }
    std::size_t addressBytes = 0;
    switch (family) {
    case 0: addressBytes = 0; break;     // AF_UNSPEC: use the real addresses
    case 1: addressBytes = 12; break;    // AF_INET
    case 2: addressBytes = 36; break;    // AF_INET6
    case 3: addressBytes = 216; break;   // AF_UNIX: nothing we can route by
    }
    if (length < addressBytes)
        return fail(fmt::format("v2: {} address bytes, family needs {}", length, addressBytes));
    if ((family == 1 || family == 2) && transport != 1)
        return fail("v2: INET/INET6 addresses must come with the STREAM transport");
    // TLVs must tile the rest exactly: a TLV running past the end is malformed.
    for (std::size_t at = kV2HeadLength + addressBytes; at < v2Total_;) {
        if (v2Total_ - at < 3) return fail("v2: truncated TLV");
        const std::size_t tlvLength = getBe16(buffer_, at + 1);
        if (v2Total_ - at - 3 < tlvLength) return fail("v2: TLV longer than the header");
        at += 3 + tlvLength;
    }
    if (family == 1 || family == 2) {
        const bool ipv6 = family == 2;
        const std::size_t n = ipv6 ? 16 : 4;
        const auto* p = reinterpret_cast<const uint8_t*>(buffer_.data()) + kV2HeadLength;
        ProxyAddresses a;
        a.source.ipv6 = a.destination.ipv6 = ipv6;
        std::copy_n(p, n, a.source.address.begin());
        std::copy_n(p + n, n, a.destination.address.begin());
        a.source.port = getBe16(buffer_, kV2HeadLength + 2 * n);
        a.destination.port = getBe16(buffer_, kV2HeadLength + 2 * n + 2);
        header_.addresses = a;
    }
    status_ = Status::Done;
    return status_;
}

} // namespace switchyard::proxy
