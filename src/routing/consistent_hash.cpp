#include "switchyard/routing/consistent_hash.h"

#include <cmath>
#include <cstring>

#include <netinet/in.h>

namespace switchyard::routing {

namespace {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

uint64_t fnv1a(const unsigned char* bytes, std::size_t n) {
    uint64_t h = kFnvOffset;
    for (std::size_t i = 0; i < n; ++i) {
        h ^= bytes[i];
        h *= kFnvPrime;
    }
    return h;
}

} // namespace

uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// FNV-1a alone leaves short inputs (4 address bytes) poorly spread in the high
// bits, which rendezvous scores and affinity buckets depend on: hence the mix.
uint64_t hashClientAddress(const sockaddr* addr, socklen_t len) {
    if (addr == nullptr) return 0;
    if (addr->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
        sockaddr_in in{};
        std::memcpy(&in, addr, sizeof in);
        return mix64(fnv1a(reinterpret_cast<const unsigned char*>(&in.sin_addr), 4));
    }
    if (addr->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
        sockaddr_in6 in6{};
        std::memcpy(&in6, addr, sizeof in6);
        const auto* bytes = reinterpret_cast<const unsigned char*>(&in6.sin6_addr);
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; they must keep
        // the backend and colour they get from an IPv4 listener.
        if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) return mix64(fnv1a(bytes + 12, 4));
        return mix64(fnv1a(bytes, 16));
    }
    return 0;
}

uint64_t hashKey(std::string_view key) {
    return mix64(fnv1a(reinterpret_cast<const unsigned char*>(key.data()), key.size()));
}

// Weighted rendezvous hashing (Schindelhauer & Schomaker): with u uniform in
// (0,1), -w / ln(u) makes each entry win with probability w / sum(w), and the
// winner for a client changes only when the winner itself goes away.
double rendezvousScore(uint64_t clientHash, uint64_t keyHash, uint32_t weight) {
    const uint64_t x = mix64(clientHash ^ keyHash);
    // 53 bits, offset by half a step: u is never 0 (ln = -inf) nor 1 (ln = 0).
    const double u = (static_cast<double>(x >> 11) + 0.5) * 0x1.0p-53;
    return -static_cast<double>(weight) / std::log(u);
}

} // namespace switchyard::routing
