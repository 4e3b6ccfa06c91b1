#pragma once

// The PROXY protocol (HAProxy, "The PROXY protocol", versions 1 and 2): a
// header in front of a TCP stream that carries the original client and
// destination addresses across a proxy. Engine-neutral: bytes in, bytes out,
// no sockets, so both engines and the health checker can use it.
//
// Encoding: toward backends (`proxy_protocol: v1|v2`).
// Decoding: from a load balancer in front (`accept_proxy: true`). The decoder
// is strict (anything the spec does not allow is an error, never a guess) and
// incremental (feed whatever a read returned; it asks for more until the
// header is complete and says which of the fed bytes were payload).
//
//   Start --"P"--> V1 (text up to CRLF, <= 107 bytes) --CRLF--> Done
//     \---"\r"--> V2 (12-byte signature, 4-byte head, length) --all bytes--> Done
//     (any byte the grammar does not allow, or too many bytes) --> Error

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include <sys/socket.h>

#include "switchyard/config/config.h"

namespace switchyard::proxy {

// One side of a TCP connection as the PROXY protocol carries it.
struct ProxyEndpoint {
    bool ipv6 = false;
    std::array<uint8_t, 16> address{};   // network order; IPv4 uses the first 4 bytes
    uint16_t port = 0;                   // host order

    static ProxyEndpoint ipv4(uint32_t hostOrderAddress, uint16_t port);
    // nullopt for families other than AF_INET and AF_INET6.
    static std::optional<ProxyEndpoint> fromSockaddr(const sockaddr* addr, socklen_t len);
    // Fills `out`; returns the length to pass with it.
    socklen_t toSockaddr(sockaddr_storage& out) const;
    // "192.0.2.1" or "2001:db8::1" (no port).
    std::string addressText() const;
    bool operator==(const ProxyEndpoint&) const = default;
};

struct ProxyAddresses {
    ProxyEndpoint source;        // the client
    ProxyEndpoint destination;   // the address the client connected to
    bool operator==(const ProxyAddresses&) const = default;
};

// The v1 text header is at most 107 bytes including CRLF (spec 2.1).
inline constexpr std::size_t kProxyV1MaxLength = 107;
// v2 is 16 bytes plus a length field of up to 65535. We refuse more than this in
// total: addresses take at most 216 bytes, and TLVs this large are not seen in
// practice; holding 64 KiB per handshaking connection would be an easy attack.
inline constexpr std::size_t kProxyV2MaxLength = 4096;
inline constexpr std::array<uint8_t, 12> kProxyV2Signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                           0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// The header to write toward a backend right after connect. Mixed families
// (an IPv6 client, an IPv4 listener) are sent as TCP6 with the IPv4 side
// v4-mapped; an IPv4 client seen as ::ffff:a.b.c.d next to an IPv4-mapped or
// IPv4 destination is sent as TCP4. Without addresses: v1 "PROXY UNKNOWN",
// v2 PROXY command with AF_UNSPEC. `version` None gives "".
std::string encodeProxyHeader(config::ProxyProtocol version, const std::optional<ProxyAddresses>& addresses);

// The header a connection that carries no client (a health check configured to
// send one) starts with: v1 "PROXY UNKNOWN\r\n", v2 the LOCAL command.
std::string encodeProxyHeaderLocal(config::ProxyProtocol version);

struct ProxyHeader {
    int version = 0;                          // 1 or 2
    bool local = false;                       // v2 LOCAL: use the real connection's addresses
    std::optional<ProxyAddresses> addresses;  // none for LOCAL, UNKNOWN, AF_UNSPEC, AF_UNIX
};

class ProxyHeaderDecoder {
public:
    enum class Status { NeedMore, Done, Error };

    // Feeds the next bytes of the stream. Returns NeedMore until the header is
    // complete; then Done, and consumed() says how many of `data` belonged to
    // the header (the rest is the client's payload). After Done or Error, feed
    // must not be called again.
    Status feed(std::span<const uint8_t> data);

    Status status() const { return status_; }
    std::size_t consumed() const { return consumed_; }
    const ProxyHeader& header() const { return header_; }
    // Why it failed, for the log: "v1: bad source port '65536'".
    const std::string& error() const { return error_; }

private:
    Status fail(std::string why);
    Status feedV1(uint8_t byte);
    Status feedV2(uint8_t byte);
    Status finishV1();
    Status finishV2();

    Status status_ = Status::NeedMore;
    std::string buffer_;
    std::size_t consumed_ = 0;
    std::size_t v2Total_ = 0;   // 16 + length, once the length is known
    ProxyHeader header_;
    std::string error_;
};

} // namespace switchyard::proxy
