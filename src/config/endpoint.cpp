#include "switchyard/config/endpoint.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace switchyard::config {

namespace {

void setWhy(std::string* why, std::string text) {
    if (why) *why = std::move(text);
}

// Canonical text of an address, so "[0::1]" and "[::1]" compare equal.
std::string canonical(int family, const void* addr) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(family, addr, buf, sizeof buf)) return {};
    return buf;
}

} // namespace

std::string Endpoint::toString() const {
    std::string out;
    if (ipv6) {
        out.reserve(host.size() + 8);
        out += '[';
        out += host;
        out += ']';
    } else {
        out = host;
    }
    out += ':';
    out += std::to_string(port);
    return out;
}

socklen_t Endpoint::toSockaddr(sockaddr_storage& out) const {
    std::memset(&out, 0, sizeof out);
    if (ipv6) {
        auto* sa = reinterpret_cast<sockaddr_in6*>(&out);
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(port);
        if (inet_pton(AF_INET6, host.c_str(), &sa->sin6_addr) != 1) return 0;
        return sizeof(sockaddr_in6);
    }
    auto* sa = reinterpret_cast<sockaddr_in*>(&out);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &sa->sin_addr) != 1) return 0;
    return sizeof(sockaddr_in);
}

std::optional<Endpoint> parseEndpoint(std::string_view text, std::string* why, bool allowZeroPort) {
    if (text.empty()) {
        setWhy(why, "empty address");
        return std::nullopt;
    }

    Endpoint ep;
    std::string_view hostPart;
    std::string_view portPart;
    bool havePort = false;

    if (text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) {
            setWhy(why, "missing ']' after IPv6 address");
            return std::nullopt;
        }
        hostPart = text.substr(1, close - 1);
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                setWhy(why, "expected ':PORT' after ']'");
                return std::nullopt;
            }
            havePort = true;
            portPart = rest.substr(1);
        }
        ep.ipv6 = true;
    } else {
        auto colon = text.rfind(':');
        if (colon != std::string_view::npos && text.find(':') != colon) {
            // More than one colon: an IPv6 address without brackets.
            in6_addr probe{};
            std::string whole(text);
            if (inet_pton(AF_INET6, whole.c_str(), &probe) == 1) {
                setWhy(why, "missing port (write IPv6 as [" + whole + "]:PORT)");
            } else {
                setWhy(why, "IPv6 addresses need brackets: [ADDRESS]:PORT");
            }
            return std::nullopt;
        }
        if (colon == std::string_view::npos) {
            if (text.find_first_not_of("0123456789") == std::string_view::npos) {
                // Just a port: the operator forgot which address to bind.
                setWhy(why, "missing address (write 0.0.0.0:" + std::string(text) + " or 127.0.0.1:" +
                                std::string(text) + ")");
                return std::nullopt;
            }
            hostPart = text;
        } else {
            hostPart = text.substr(0, colon);
            portPart = text.substr(colon + 1);
            havePort = true;
        }
    }

    std::string host(hostPart);
    if (ep.ipv6) {
        in6_addr addr{};
        if (host.empty() || inet_pton(AF_INET6, host.c_str(), &addr) != 1) {
            setWhy(why, "'[" + host + "]' is not a numeric IPv6 address");
            return std::nullopt;
        }
        ep.host = canonical(AF_INET6, &addr);
    } else {
        in_addr addr{};
        if (host.empty() || inet_pton(AF_INET, host.c_str(), &addr) != 1) {
            setWhy(why, "'" + host + "' is not a numeric IPv4 or [IPv6] address");
            return std::nullopt;
        }
        ep.host = canonical(AF_INET, &addr);
    }

    if (!havePort || portPart.empty()) {
        setWhy(why, "missing port");
        return std::nullopt;
    }
    unsigned long port = 0;
    auto [end, ec] = std::from_chars(portPart.data(), portPart.data() + portPart.size(), port);
    if (ec == std::errc::result_out_of_range) {
        setWhy(why, "port " + std::string(portPart) + " out of range " +
                        (allowZeroPort ? "0" : "1") + "..65535");
        return std::nullopt;
    }
    if (ec != std::errc() || end != portPart.data() + portPart.size()) {
        setWhy(why, "'" + std::string(portPart) + "' is not a port number");
        return std::nullopt;
    }
    if (port > 65535 || (port == 0 && !allowZeroPort)) {
        setWhy(why, "port " + std::to_string(port) + " out of range " +
                        (allowZeroPort ? "0" : "1") + "..65535");
        return std::nullopt;
    }
    ep.port = static_cast<uint16_t>(port);
    return ep;
}

} // namespace switchyard::config
