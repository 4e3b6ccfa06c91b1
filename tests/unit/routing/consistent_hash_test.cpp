#include "switchyard/routing/consistent_hash.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "snapshot_builder.h"

using namespace switchyard::routing;
using namespace switchyard::routing::testing;

namespace {

uint64_t hashOf(const sockaddr_in& in) {
    return hashClientAddress(reinterpret_cast<const sockaddr*>(&in), sizeof in);
}

uint64_t hashOf(const sockaddr_in6& in6) {
    return hashClientAddress(reinterpret_cast<const sockaddr*>(&in6), sizeof in6);
}

sockaddr_in6 ipv6Client(const char* text, uint16_t port) {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    REQUIRE(inet_pton(AF_INET6, text, &in6.sin6_addr) == 1);
    return in6;
}

struct Backends {
    std::vector<uint64_t> keyHashes;
    std::vector<uint32_t> weights;
};

Backends makeBackends(std::size_t n, uint32_t weight = 100) {
    Backends b;
    for (std::size_t i = 0; i < n; ++i) {
        b.keyHashes.push_back(hashKey("10.9.0." + std::to_string(i + 1) + ":8080"));
        b.weights.push_back(weight);
    }
    return b;
}

int pick(uint64_t client, const Backends& b, int removed = -1) {
    return rendezvousPick(client, b.keyHashes, b.weights,
                          [removed](std::size_t i) { return static_cast<int>(i) == removed; });
}

} // namespace

TEST_CASE("A client address hashes by IP only, not by port", "[routing]") {
    CHECK(hashOf(ipv4Client(0x0a000001, 1111)) == hashOf(ipv4Client(0x0a000001, 2222)));
    CHECK(hashOf(ipv4Client(0x0a000001)) != hashOf(ipv4Client(0x0a000002)));
    CHECK(hashOf(ipv6Client("2001:db8::1", 1)) == hashOf(ipv6Client("2001:db8::1", 2)));
    CHECK(hashOf(ipv6Client("2001:db8::1", 1)) != hashOf(ipv6Client("2001:db8::2", 1)));
}

TEST_CASE("An IPv4-mapped IPv6 client hashes like the same IPv4 client", "[routing]") {
    CHECK(hashOf(ipv6Client("::ffff:10.1.2.3", 5000)) == hashOf(ipv4Client(0x0a010203, 6000)));
    CHECK(hashOf(ipv6Client("::ffff:10.1.2.3", 5000)) != hashOf(ipv6Client("::10.1.2.3", 5000)));
}

TEST_CASE("An unknown or truncated address hashes to 0 rather than reading past it",
          "[routing]") {
    CHECK(hashClientAddress(nullptr, 0) == 0);
    auto in = ipv4Client(0x0a000001);
    CHECK(hashClientAddress(reinterpret_cast<const sockaddr*>(&in), 2) == 0);
}

TEST_CASE("Key hashes are stable and distinct", "[routing]") {
    CHECK(hashKey("10.0.0.1:80") == hashKey("10.0.0.1:80"));
    CHECK(hashKey("10.0.0.1:80") != hashKey("10.0.0.1:81"));
    CHECK(hashKey("") != hashKey("a"));
}

TEST_CASE("Rendezvous scores are finite and positive, and scale with the weight",
          "[routing]") {
    for (uint64_t c = 0; c < 1000; ++c) {
        const double s = rendezvousScore(c, 0, 1);
        CHECK(std::isfinite(s));
        CHECK(s > 0);
    }
    CHECK(rendezvousScore(7, 9, 200) == Approx(2 * rendezvousScore(7, 9, 100)));
    // The extremes of the mixed value must not give ln(0) or ln(1).
    CHECK(std::isfinite(rendezvousScore(0, 0, 1000)));
}

TEST_CASE("Removing one of 10 backends moves only its own clients, about 1/10 of them",
          "[routing]") {
    constexpr int kClients = 10000;
    constexpr int kRemoved = 3;
    const Backends b = makeBackends(10);

    int moved = 0;
    int onRemoved = 0;
    for (uint32_t i = 0; i < kClients; ++i) {
        const uint64_t h = hashOf(nthClient(i));
        const int before = pick(h, b);
        const int after = pick(h, b, kRemoved);
        REQUIRE(before >= 0);
        REQUIRE(after >= 0);
        CHECK(after != kRemoved);
        if (before == kRemoved) ++onRemoved;
        if (before != after) {
            ++moved;
            CHECK(before == kRemoved);   // nobody else moves
        }
    }
    CHECK(moved == onRemoved);
    CHECK(moved <= kClients / 10 + kClients * 2 / 100);
    CHECK(moved > 0);
}

TEST_CASE("Adding an 11th backend takes clients only onto the new backend", "[routing]") {
    const Backends ten = makeBackends(10);
    const Backends eleven = makeBackends(11);
    int moved = 0;
    for (uint32_t i = 0; i < 10000; ++i) {
        const uint64_t h = hashOf(nthClient(i));
        const int before = pick(h, ten);
        const int after = pick(h, eleven);
        if (before != after) {
            ++moved;
            CHECK(after == 10);
        }
    }
    CHECK(moved <= 10000 / 11 + 200);
}

TEST_CASE("Weighted rendezvous gives each backend its share of clients within 2.5%",
          "[routing]") {
    Backends b = makeBackends(4);
    b.weights = {100, 200, 300, 400};
    constexpr int kClients = 20000;
    std::vector<int> counts(4, 0);
    for (uint32_t i = 0; i < kClients; ++i) ++counts[static_cast<std::size_t>(pick(hashOf(nthClient(i)), b))];
    for (std::size_t i = 0; i < 4; ++i) {
        const double share = static_cast<double>(counts[i]) / kClients;
        const double expected = static_cast<double>(b.weights[i]) / 1000.0;
        INFO("backend " << i << " share " << share);
        CHECK(std::abs(share - expected) < 0.025);
    }
}

TEST_CASE("Rendezvous picking skips weight 0 and returns -1 when nothing is left",
          "[routing]") {
    Backends b = makeBackends(3);
    b.weights = {0, 0, 100};
    for (uint64_t c = 0; c < 100; ++c) CHECK(pick(c, b) == 2);
    CHECK(pick(42, b, 2) == -1);
}
