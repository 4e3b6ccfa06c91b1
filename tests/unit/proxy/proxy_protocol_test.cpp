#include "switchyard/proxy/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace switchyard;
using namespace switchyard::proxy;
using config::ProxyProtocol;
using Status = ProxyHeaderDecoder::Status;

namespace {

std::span<const uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

ProxyEndpoint v6(const char* text, uint16_t port) {
    ProxyEndpoint e;
    e.ipv6 = true;
    REQUIRE(inet_pton(AF_INET6, text, e.address.data()) == 1);
    e.port = port;
    return e;
}

ProxyEndpoint v4(const char* text, uint16_t port) {
    ProxyEndpoint e;
    REQUIRE(inet_pton(AF_INET, text, e.address.data()) == 1);
    e.port = port;
    return e;
}

std::string hex(const std::string& s) {
    std::string out;
    const char* digits = "0123456789abcdef";
    for (unsigned char c : s) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

std::string unhex(std::string_view h) {
    std::string out;
    auto val = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(val(h[i]) * 16 + val(h[i + 1])));
    return out;
}

const std::string kSig = unhex("0d0a0d0a000d0a515549540a");

// Feeds the whole text at once.
ProxyHeaderDecoder decodeAll(const std::string& text) {
    ProxyHeaderDecoder d;
    d.feed(bytes(text));
    return d;
}

// Feeds one byte at a time: the result must be the same as all at once.
ProxyHeaderDecoder decodeByteByByte(const std::string& text) {
    ProxyHeaderDecoder d;
    for (std::size_t i = 0; i < text.size() && d.status() == Status::NeedMore; ++i)
        d.feed(bytes(text).subspan(i, 1));
    return d;
}

} // namespace

// ---- encoding -------------------------------------------------------------------------

TEST_CASE("PROXY v1 encodes TCP4 exactly like the spec's example", "[proxy_protocol]") {
    const ProxyAddresses a{v4("192.168.0.1", 56324), v4("192.168.0.11", 443)};
    CHECK(encodeProxyHeader(ProxyProtocol::V1, a) == "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
}

TEST_CASE("PROXY v1 encodes TCP6, and the longest TCP6 line fits the 107 byte limit", "[proxy_protocol]") {
    const ProxyAddresses a{v6("2001:db8::1", 40000), v6("2001:db8::2", 8080)};
    CHECK(encodeProxyHeader(ProxyProtocol::V1, a) == "PROXY TCP6 2001:db8::1 2001:db8::2 40000 8080\r\n");
    ProxyAddresses worst{v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
                         v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)};
    const std::string line = encodeProxyHeader(ProxyProtocol::V1, worst);
    CHECK(line.size() == 104);   // the spec's worst case for TCP6
    CHECK(line.size() <= kProxyV1MaxLength);
}

TEST_CASE("PROXY v1 sends an IPv4 client seen through a dual-stack socket as TCP4, mixed families as TCP6",
          "[proxy_protocol]") {
    CHECK(encodeProxyHeader(ProxyProtocol::V1, ProxyAddresses{v6("::ffff:10.0.0.1", 1234), v4("10.0.0.2", 80)}) ==
          "PROXY TCP4 10.0.0.1 10.0.0.2 1234 80\r\n");
    CHECK(encodeProxyHeader(ProxyProtocol::V1, ProxyAddresses{v6("2001:db8::1", 1234), v4("10.0.0.2", 80)}) ==
          "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.2 1234 80\r\n");
}

TEST_CASE("PROXY v1 without addresses is UNKNOWN; None encodes nothing", "[proxy_protocol]") {
    CHECK(encodeProxyHeader(ProxyProtocol::V1, std::nullopt) == "PROXY UNKNOWN\r\n");
    CHECK(encodeProxyHeader(ProxyProtocol::None, ProxyAddresses{v4("1.2.3.4", 1), v4("5.6.7.8", 2)}).empty());
    CHECK(encodeProxyHeaderLocal(ProxyProtocol::V1) == "PROXY UNKNOWN\r\n");
    CHECK(encodeProxyHeaderLocal(ProxyProtocol::None).empty());
}

TEST_CASE("PROXY v2 encodes TCP over IPv4 byte for byte", "[proxy_protocol]") {
    const ProxyAddresses a{v4("192.168.0.1", 56324), v4("192.168.0.11", 443)};
    // signature, 0x21 = v2 PROXY, 0x11 = AF_INET STREAM, length 12, src, dst, sport, dport.
    CHECK(hex(encodeProxyHeader(ProxyProtocol::V2, a)) ==
          hex(kSig) + "2111000c" + "c0a80001" + "c0a8000b" + "dc04" + "01bb");
}

TEST_CASE("PROXY v2 encodes TCP over IPv6 byte for byte", "[proxy_protocol]") {
    const ProxyAddresses a{v6("2001:db8::1", 1), v6("::1", 65535)};
    CHECK(hex(encodeProxyHeader(ProxyProtocol::V2, a)) ==
          hex(kSig) + "21210024" + "20010db8000000000000000000000001" + "00000000000000000000000000000001" +
              "0001" + "ffff");
}

TEST_CASE("PROXY v2 without addresses is PROXY AF_UNSPEC; LOCAL has command 0", "[proxy_protocol]") {
    CHECK(hex(encodeProxyHeader(ProxyProtocol::V2, std::nullopt)) == hex(kSig) + "21000000");
    CHECK(hex(encodeProxyHeaderLocal(ProxyProtocol::V2)) == hex(kSig) + "20000000");
}

TEST_CASE("ProxyEndpoint round-trips through sockaddr", "[proxy_protocol]") {
    for (const ProxyEndpoint& e : {v4("127.0.0.9", 4321), v6("2001:db8::7", 80)}) {
        sockaddr_storage ss{};
        const socklen_t len = e.toSockaddr(ss);
        auto back = ProxyEndpoint::fromSockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
        REQUIRE(back);
        CHECK(*back == e);
    }
    CHECK(ProxyEndpoint::ipv4(0x7f000001, 9) == v4("127.0.0.1", 9));
}

// ---- decoding: what the encoder writes, and the spec's examples -------------------------------

TEST_CASE("The decoder reads back every header the encoder writes, all at once and byte by byte",
          "[proxy_protocol]") {
    const std::vector<ProxyAddresses> cases{
        {v4("192.168.0.1", 56324), v4("192.168.0.11", 443)},
        {v4("0.0.0.0", 0), v4("255.255.255.255", 65535)},
        {v6("2001:db8::1", 40000), v6("2001:db8::2", 8080)},
        {v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535), v6("::", 0)},
    };
    for (ProxyProtocol version : {ProxyProtocol::V1, ProxyProtocol::V2}) {
        for (const auto& a : cases) {
            const std::string header = encodeProxyHeader(version, a);
            for (auto* decode : {&decodeAll, &decodeByteByByte}) {
                ProxyHeaderDecoder d = decode(header);
                INFO(hex(header) << " " << d.error());
                REQUIRE(d.status() == Status::Done);
                CHECK(d.header().version == (version == ProxyProtocol::V1 ? 1 : 2));
                CHECK_FALSE(d.header().local);
                REQUIRE(d.header().addresses);
                CHECK(*d.header().addresses == a);
            }
        }
    }
}

TEST_CASE("The decoder says which bytes after the header are the client's payload", "[proxy_protocol]") {
    const std::string payload = "GET / HTTP/1.1\r\n\r\n";
    for (ProxyProtocol version : {ProxyProtocol::V1, ProxyProtocol::V2}) {
        const std::string header = encodeProxyHeader(version, ProxyAddresses{v4("10.1.2.3", 5), v4("10.3.2.1", 6)});
        ProxyHeaderDecoder d;
        // The header split over two reads, the second one carrying the payload too.
        const std::string first = header.substr(0, 7);
        const std::string second = header.substr(7) + payload;
        CHECK(d.feed(bytes(first)) == Status::NeedMore);
        REQUIRE(d.feed(bytes(second)) == Status::Done);
        CHECK(d.consumed() == header.size() - 7);
        CHECK(second.substr(d.consumed()) == payload);
    }
}

TEST_CASE("PROXY v1 UNKNOWN is accepted without addresses, whatever follows it", "[proxy_protocol]") {
    for (const std::string& text :
         {std::string("PROXY UNKNOWN\r\n"),
          std::string("PROXY UNKNOWN ffff:f...:ffff ffff:f...:ffff 65535 65535\r\n")}) {
        ProxyHeaderDecoder d = decodeAll(text);
        REQUIRE(d.status() == Status::Done);
        CHECK_FALSE(d.header().addresses);
        CHECK(d.consumed() == text.size());
    }
    // The spec's worst case: 107 bytes exactly.
    const std::string longest = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    REQUIRE(longest.size() == 107);
    CHECK(decodeAll(longest).status() == Status::Done);
}

TEST_CASE("PROXY v2 LOCAL is accepted and says to use the real addresses", "[proxy_protocol]") {
    ProxyHeaderDecoder d = decodeAll(encodeProxyHeaderLocal(ProxyProtocol::V2));
    REQUIRE(d.status() == Status::Done);
    CHECK(d.header().local);
    CHECK_FALSE(d.header().addresses);
    // LOCAL with an address block (and a family) still discards it.
    const std::string withBlock = kSig + unhex("2011000c") + std::string(12, '\x01');
    ProxyHeaderDecoder d2 = decodeAll(withBlock);
    REQUIRE(d2.status() == Status::Done);
    CHECK(d2.header().local);
    CHECK_FALSE(d2.header().addresses);
}

TEST_CASE("PROXY v2 with AF_UNSPEC or AF_UNIX is accepted without addresses", "[proxy_protocol]") {
    CHECK(decodeAll(kSig + unhex("21000000")).status() == Status::Done);
    ProxyHeaderDecoder unixHeader = decodeAll(kSig + unhex("213100d8") + std::string(216, '\0'));
    REQUIRE(unixHeader.status() == Status::Done);
    CHECK_FALSE(unixHeader.header().addresses);
}

TEST_CASE("PROXY v2 TLVs after the addresses are skipped when they fit exactly", "[proxy_protocol]") {
    // AF_INET block (12) + NOOP TLV of 3 bytes (3 + 3) + an AUTHORITY TLV "ab" (3 + 2) = 23.
    const std::string header = kSig + unhex("21110017") + unhex("0a0000010a000002" "00500051") +
                               unhex("040003000000" "020002") + "ab";
    ProxyHeaderDecoder d = decodeAll(header + "payload");
    REQUIRE(d.status() == Status::Done);
    CHECK(d.consumed() == header.size());
    REQUIRE(d.header().addresses);
    CHECK(d.header().addresses->source == v4("10.0.0.1", 80));
    CHECK(d.header().addresses->destination == v4("10.0.0.2", 81));
}

TEST_CASE("The decoder waits for more while every byte so far can still be a header", "[proxy_protocol]") {
    const std::string v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    for (std::size_t n = 0; n < v1.size(); ++n) CHECK(decodeAll(v1.substr(0, n)).status() == Status::NeedMore);
    const std::string v2 = encodeProxyHeader(ProxyProtocol::V2, ProxyAddresses{v4("1.2.3.4", 1), v4("5.6.7.8", 2)});
    for (std::size_t n = 0; n < v2.size(); ++n) CHECK(decodeAll(v2.substr(0, n)).status() == Status::NeedMore);
}

// ---- malformed input ----------------------------------------------------------------------

TEST_CASE("Malformed PROXY v1 headers are errors, never guesses", "[proxy_protocol]") {
    const std::vector<std::string> bad{
        "GET / HTTP/1.1\r\n",
        "PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",            // a field short
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",        // a field too many
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",         // two spaces
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",         // trailing space
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",            // short IPv4
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",         // leading zero
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",              // IPv6 under TCP4
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",              // IPv4 under TCP6
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",      // port out of range
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",         // leading zero port
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 x\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",            // LF without CR
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",           // CR without LF
        [] { const char s[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"; return std::string(s, sizeof s - 1); }(),
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\t\r\n",
        "PROXY \r\n",
        "PROXY\r\n",
    };
    for (const auto& text : bad) {
        for (auto* decode : {&decodeAll, &decodeByteByByte}) {
            ProxyHeaderDecoder d = decode(text);
            INFO(text);
            CHECK(d.status() == Status::Error);
            CHECK_FALSE(d.error().empty());
        }
    }
}

TEST_CASE("A v1 header without CRLF within 107 bytes is an error as soon as byte 107 arrives",
          "[proxy_protocol]") {
    const std::string endless = "PROXY UNKNOWN " + std::string(200, 'a');
    ProxyHeaderDecoder d;
    std::size_t fed = 0;
    while (d.status() == Status::NeedMore && fed < endless.size()) d.feed(bytes(endless).subspan(fed++, 1));
    CHECK(d.status() == Status::Error);
    CHECK(fed == kProxyV1MaxLength);
}

TEST_CASE("Malformed PROXY v2 headers are errors, never guesses", "[proxy_protocol]") {
    const std::string inet = unhex("0a0000010a00000200500051");   // 12 address bytes
    const std::vector<std::pair<const char*, std::string>> bad{
        {"bad signature", unhex("0d0a0d0a000d0a515549540b") + unhex("21110000")},
        {"version 1 in the v2 format", kSig + unhex("11110000")},
        {"version 3", kSig + unhex("31110000")},
        {"command 2", kSig + unhex("22110000")},
        {"family 4", kSig + unhex("21410000")},
        {"transport 3", kSig + unhex("21130000")},
        {"INET with too few address bytes", kSig + unhex("2111000b") + inet.substr(0, 11)},
        {"INET6 with INET's length", kSig + unhex("2121000c") + inet},
        {"AF_UNIX short", kSig + unhex("21310010") + std::string(16, '\0')},
        {"INET over DGRAM", kSig + unhex("2112000c") + inet},
        {"INET with UNSPEC transport", kSig + unhex("2110000c") + inet},
        {"truncated TLV", kSig + unhex("2111000e") + inet + unhex("0400")},
        {"TLV past the end", kSig + unhex("21110010") + inet + unhex("04000501")},
        {"over the size limit", kSig + unhex("2111ffff")},
    };
    for (const auto& [what, text] : bad) {
        for (auto* decode : {&decodeAll, &decodeByteByByte}) {
            ProxyHeaderDecoder d = decode(text);
            INFO(what << ": " << hex(text));
            CHECK(d.status() == Status::Error);
            CHECK_FALSE(d.error().empty());
        }
    }
}

TEST_CASE("The largest v2 header within the limit is accepted", "[proxy_protocol]") {
    const std::size_t tlvValue = kProxyV2MaxLength - 16 - 12 - 3;
    std::string header = kSig + unhex("2111");
    header.push_back(static_cast<char>((kProxyV2MaxLength - 16) >> 8));
    header.push_back(static_cast<char>((kProxyV2MaxLength - 16) & 0xff));
    header += unhex("0a0000010a00000200500051");
    header.push_back('\x04');   // PP2_TYPE_NOOP
    header.push_back(static_cast<char>(tlvValue >> 8));
    header.push_back(static_cast<char>(tlvValue & 0xff));
    header += std::string(tlvValue, '\0');
    REQUIRE(header.size() == kProxyV2MaxLength);
    CHECK(decodeAll(header).status() == Status::Done);
}

TEST_CASE("After Done or Error the decoder ignores further bytes", "[proxy_protocol]") {
    ProxyHeaderDecoder d;
    REQUIRE(d.feed(bytes(std::string("PROXY UNKNOWN\r\n"))) == Status::Done);
    const std::size_t consumed = d.consumed();
    CHECK(d.feed(bytes(std::string("more"))) == Status::Done);
    CHECK(d.consumed() == consumed);
    ProxyHeaderDecoder e;
    REQUIRE(e.feed(bytes(std::string("X"))) == Status::Error);
    CHECK(e.feed(bytes(std::string("PROXY UNKNOWN\r\n"))) == Status::Error);
}
