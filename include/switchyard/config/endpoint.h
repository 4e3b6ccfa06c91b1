#pragma once

// A numeric IP address and port: "127.0.0.1:8080" or "[::1]:8080".
// Host names are not accepted: a load balancer must not depend on DNS at start.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <netinet/in.h>
#include <sys/socket.h>

namespace switchyard::config {

struct Endpoint {
    std::string host;   // numeric address without brackets: "127.0.0.1" or "::1"
    uint16_t port = 0;
    bool ipv6 = false;

    // "127.0.0.1:8080" or "[::1]:8080"
    std::string toString() const;

    // Fills a sockaddr_in/sockaddr_in6; returns its length.
    socklen_t toSockaddr(sockaddr_storage& out) const;

    bool operator==(const Endpoint&) const = default;
};

// Parses "A.B.C.D:PORT" or "[V6]:PORT". Returns nullopt with a reason in `why`.
// Port 0 is refused unless allowZeroPort (tests bind ephemeral ports).
std::optional<Endpoint> parseEndpoint(std::string_view text, std::string* why = nullptr,
                                      bool allowZeroPort = false);

} // namespace switchyard::config
