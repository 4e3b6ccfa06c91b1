#include "switchyard/config/proxy_loop.h"

#include <arpa/inet.h>

#include <cstring>

namespace switchyard::config {
namespace {

// The address as IPv6 bytes (IPv4 as v4-mapped), so 127.0.0.1 and
// ::ffff:127.0.0.1 compare equal.
std::optional<in6_addr> asV6(const Endpoint& e) {
    in6_addr out{};
    if (e.ipv6) {
        if (::inet_pton(AF_INET6, e.host.c_str(), &out) != 1) return std::nullopt;
        return out;
    }
    in_addr v4{};
    if (::inet_pton(AF_INET, e.host.c_str(), &v4) != 1) return std::nullopt;
    out.s6_addr[10] = 0xff;
    out.s6_addr[11] = 0xff;
    std::memcpy(&out.s6_addr[12], &v4, sizeof v4);
    return out;
}

bool isWildcard(const in6_addr& a) {
    static const in6_addr kMappedAny = [] {
        in6_addr m{};
        m.s6_addr[10] = m.s6_addr[11] = 0xff;
        return m;
    }();
    return IN6_IS_ADDR_UNSPECIFIED(&a) || std::memcmp(&a, &kMappedAny, sizeof a) == 0;
}

bool isLoopback(const in6_addr& a) {
    return IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
}

} // namespace

std::optional<std::string> proxyLoopReason(const Endpoint& backend, const std::vector<ServiceConfig>& services) {
    const auto target = asV6(backend);
    if (!target) return std::nullopt;
    for (const ServiceConfig& service : services) {
        if (service.listen.port == 0 || service.listen.port != backend.port) continue;
        const auto listen = asV6(service.listen);
        if (!listen) continue;
        // An IPv4 wildcard listener never sees a connection to ::1.
        const bool reachesWildcard =
            isWildcard(*listen) && isLoopback(*target) && (service.listen.ipv6 || !IN6_IS_ADDR_LOOPBACK(&*target));
        const bool loops =
            std::memcmp(&*target, &*listen, sizeof *target) == 0 || isWildcard(*target) || reachesWildcard;
        if (loops)
            return "backend " + backend.toString() + " is this proxy's own listener " + service.listen.toString() +
                   " (service '" + service.name + "'): a connection would loop through the proxy";
    }
    return std::nullopt;
}

} // namespace switchyard::config
