#include "switchyard/routing/route_selector.h"

#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "snapshot_builder.h"
#include "switchyard/routing/consistent_hash.h"

using namespace switchyard;
using namespace switchyard::routing;
using namespace switchyard::routing::testing;
using config::Affinity;
using config::Balance;
using config::Colour;

namespace {

uint64_t clientHash(uint32_t i) {
    const sockaddr_in in = nthClient(i);
    return hashClientAddress(reinterpret_cast<const sockaddr*>(&in), sizeof in);
}

// The first pick of a new connection.
Pick firstPick(RouteSelector& selector, const ServiceRoute& service, uint64_t hash = 0) {
    Attempts attempts;
    attempts.clientHash = hash;
    return selector.next(service, attempts);
}

std::string keyOf(const Pick& p) {
    return p.backend != nullptr ? p.backend->handle->key : std::string("none");
}

} // namespace

// ---- round robin inside a pool ------------------------------------------------

TEST_CASE("Round robin with backend weights 99 and 1 sends exactly 1 of every 100 to the second",
          "[routing]") {
    auto snap = snapshotOf({ServiceBuilder("web").backends(Colour::Blue, {99, 1}).build()});
    RouteSelector selector;
    selector.update(snap);
    int second = 0;
    int last = -1000;
    for (int i = 0; i < 1000; ++i) {
        if (firstPick(selector, snap.services[0]).backendIndex != 1) continue;
        ++second;
        CHECK(i - last >= 100);
        last = i;
    }
    CHECK(second == 10);
}

TEST_CASE("The picker position survives a snapshot with an equal pool signature",
          "[routing]") {
    auto first = snapshotOf({ServiceBuilder("web").backends(Colour::Blue, {99, 1}).build()}, 1);
    // Rebuilt from scratch, as the control thread does for an unrelated change:
    // new objects, same keys and weights.
    auto second = snapshotOf({ServiceBuilder("web").backends(Colour::Blue, {99, 1}).build()}, 2);
    REQUIRE(first.services[0].pool(Colour::Blue).pickSignature ==
            second.services[0].pool(Colour::Blue).pickSignature);

    RouteSelector selector;
    selector.update(first);
    int picksOfSecond = 0;
    for (int i = 0; i < 50; ++i)
        if (firstPick(selector, first.services[0]).backendIndex == 1) ++picksOfSecond;
    selector.update(second);
    for (int i = 0; i < 50; ++i)
        if (firstPick(selector, second.services[0]).backendIndex == 1) ++picksOfSecond;
    // Smooth WRR picks the 1 at the 51st pick: a reset at 50 would have lost it.
    CHECK(picksOfSecond == 1);
}

TEST_CASE("The picker position starts over when a pool's weights change", "[routing]") {
    auto first = snapshotOf({ServiceBuilder("web").backends(Colour::Blue, {1, 1}).build()}, 1);
    RouteSelector selector;
    selector.update(first);
    CHECK(firstPick(selector, first.services[0]).backendIndex == 0);

    // 1:1 → 2:2 keeps the ratio but changes the weights: the sequence restarts at 0,
    // where a kept position would have given 1 next.
    auto second = snapshotOf({ServiceBuilder("web").backends(Colour::Blue, {2, 2}).build()}, 2);
    selector.update(second);
    CHECK(firstPick(selector, second.services[0]).backendIndex == 0);
    CHECK(firstPick(selector, second.services[0]).backendIndex == 1);
}

TEST_CASE("Backends with weight 0 are never picked", "[routing]") {
    auto snap = snapshotOf({ServiceBuilder("web").backends(Colour::Blue, {0, 10, 0}).build()});
    for (Balance b : {Balance::RoundRobin, Balance::LeastConn, Balance::Hash}) {
        snap.services.edit(0).balance = b;
        RouteSelector selector;
        selector.update(snap);
        for (uint32_t i = 0; i < 50; ++i)
            CHECK(firstPick(selector, snap.services[0], clientHash(i)).backendIndex == 1);
    }
}

// ---- leastconn ------------------------------------------------------------------

TEST_CASE("Leastconn prefers the least loaded backend", "[routing]") {
    auto snap = snapshotOf({ServiceBuilder("web")
                                .balance(Balance::LeastConn)
                                .backends(Colour::Blue, {100, 100, 100})
                                .build()});
    auto& backends = snap.services[0].pool(Colour::Blue).backends;
    backends[0].handle->active = 5;
    backends[1].handle->active = 2;
    backends[2].handle->active = 7;
    RouteSelector selector;
    selector.update(snap);
    for (int i = 0; i < 5; ++i) CHECK(firstPick(selector, snap.services[0]).backendIndex == 1);
}

TEST_CASE("Leastconn weighs the load by the backend weight", "[routing]") {
    auto snap = snapshotOf({ServiceBuilder("web")
                                .balance(Balance::LeastConn)
                                .backends(Colour::Blue, {100, 200})
                                .build()});
    auto& backends = snap.services[0].pool(Colour::Blue).backends;
    backends[0].handle->active = 1;   // (1+1)/100 = 0.02
    backends[1].handle->active = 2;   // (2+1)/200 = 0.015
    RouteSelector selector;
    selector.update(snap);
    CHECK(firstPick(selector, snap.services[0]).backendIndex == 1);
}

TEST_CASE("Leastconn spreads equally loaded backends in turn", "[routing]") {
    auto snap = snapshotOf({ServiceBuilder("web")
                                .balance(Balance::LeastConn)
                                .backends(Colour::Blue, {100, 100, 100})
                                .build()});
    RouteSelector selector;
    selector.update(snap);
    std::vector<int> counts(3, 0);
    for (int i = 0; i < 30; ++i) ++counts[static_cast<std::size_t>(firstPick(selector, snap.services[0]).backendIndex)];
    CHECK(counts == std::vector<int>{10, 10, 10});
}

// ---- hash -----------------------------------------------------------------------

TEST_CASE("Hash balance keeps a client on its backend and moves only the removed backend's clients",
          "[routing]") {
    ServiceBuilder builder("web");
    builder.balance(Balance::Hash);
    for (int i = 0; i < 10; ++i) builder.backend(Colour::Blue, 100);
    auto before = snapshotOf({builder.build()}, 1);
    auto after = before;
    auto& pool = after.services.edit(0).pool(Colour::Blue);
    const std::string removedKey = pool.backends[4].handle->key;
    pool.backends.erase(pool.backends.begin() + 4);
    computeSignatures(after);

    RouteSelector selector;
    selector.update(before);
    std::vector<std::string> was;
    for (uint32_t i = 0; i < 10000; ++i) was.push_back(keyOf(firstPick(selector, before.services[0], clientHash(i))));
    // The same client twice: the same backend.
    CHECK(keyOf(firstPick(selector, before.services[0], clientHash(17))) == was[17]);

    selector.update(after);
    int moved = 0;
    for (uint32_t i = 0; i < 10000; ++i) {
        const std::string now = keyOf(firstPick(selector, after.services[0], clientHash(i)));
        if (now == was[i]) continue;
        ++moved;
        CHECK(was[i] == removedKey);
    }
    CHECK(moved > 0);
    CHECK(moved <= 10000 / 10 + 200);
}

// ---- pool choice ----------------------------------------------------------------

TEST_CASE("A 1% green split sends exactly 10 of 1000 connections to green, evenly spread",
          "[routing]") {
    auto snap = snapshotOf({ServiceBuilder("web")
                                .split(99, 1)
                                .backends(Colour::Blue, {100, 100})
                                .backends(Colour::Green, {100})
                                .build()});
    RouteSelector selector;
    selector.update(snap);
    int green = 0;
    int last = -1000;
    for (int i = 0; i < 1000; ++i) {
        const Pick p = firstPick(selector, snap.services[0]);
        REQUIRE(p.backend != nullptr);
        if (p.pool != Colour::Green) continue;
        ++green;
        CHECK(i - last >= 100);
        last = i;
    }
    CHECK(green == 10);
}

TEST_CASE("The pool split position survives a snapshot that keeps the pool weights",
          "[routing]") {
    auto service = ServiceBuilder("web")
                       .split(99, 1)
                       .backends(Colour::Blue, {100})
                       .backends(Colour::Green, {100})
                       .build();
    auto first = snapshotOf({service}, 1);
    auto second = first;
    // A backend weight change in blue is not a pool weight change.
    second.services.edit(0).pool(Colour::Blue).backends[0].weight = 50;
    computeSignatures(second);

    RouteSelector selector;
    selector.update(first);
    int green = 0;
    for (int i = 0; i < 50; ++i)
        if (selector.pickPool(first.services[0], 0) == Colour::Green) ++green;
    selector.update(second);
    for (int i = 0; i < 50; ++i)
        if (selector.pickPool(second.services[0], 0) == Colour::Green) ++green;
    CHECK(green == 1);
}

TEST_CASE("An offline or weight 0 pool is never chosen for new connections", "[routing]") {
    auto service = ServiceBuilder("web")
                       .split(50, 50)
                       .backends(Colour::Blue, {100})
                       .backends(Colour::Green, {100})
                       .offline(Colour::Green)
                       .build();
    RouteSelector selector;
    selector.update(snapshotOf({service}));
    for (int i = 0; i < 100; ++i) CHECK(selector.pickPool(service, static_cast<uint64_t>(i)) == Colour::Blue);

    auto blueZero = ServiceBuilder("web").split(0, 10).backends(Colour::Green, {100}).build();
    for (int i = 0; i < 100; ++i) CHECK(selector.pickPool(blueZero, static_cast<uint64_t>(i)) == Colour::Green);
}

TEST_CASE("Affinity buckets are spread over 0..9999", "[routing]") {
    std::vector<int> tenths(10, 0);
    for (uint32_t i = 0; i < 10000; ++i) {
        const uint32_t bucket = affinityBucket(clientHash(i));
        REQUIRE(bucket < 10000);
        ++tenths[bucket / 1000];
    }
    for (int n : tenths) CHECK(std::abs(n - 1000) < 150);
}

TEST_CASE("Under affinity: client, raising green's share only moves clients from blue to green",
          "[routing]") {
    RouteSelector selector;
    const std::vector<uint32_t> greenShares{1, 5, 25, 50, 100};
    std::vector<Colour> previous(10000, Colour::Blue);
    for (uint32_t share : greenShares) {
        auto service = ServiceBuilder("web")
                           .affinity(Affinity::Client)
                           .split(100 - share, share)
                           .backends(Colour::Blue, {100})
                           .backends(Colour::Green, {100})
                           .build();
        selector.update(snapshotOf({service}));
        int green = 0;
        for (uint32_t i = 0; i < 10000; ++i) {
            const uint64_t h = clientHash(i);
            const Colour c = selector.pickPool(service, h);
            CHECK(selector.pickPool(service, h) == c);   // stable per client
            if (previous[i] == Colour::Green) CHECK(c == Colour::Green);
            if (c == Colour::Green) ++green;
            previous[i] = c;
        }
        INFO("green share " << share << "% got " << green << " of 10000");
        CHECK(std::abs(green - static_cast<int>(share) * 100) <= 100);
    }
}

// ---- retries --------------------------------------------------------------------

TEST_CASE("Retries try the chosen pool's untried backends first, then the other pool",
          "[routing]") {
    auto service = ServiceBuilder("web")
                       .split(100, 0)
                       .backends(Colour::Blue, {100, 100, 100})
                       .backends(Colour::Green, {100, 100})
                       .build();
    RouteSelector selector;
    selector.update(snapshotOf({service}));

    Attempts attempts;
    std::set<int> blue;
    std::set<int> green;
    for (int i = 0; i < 3; ++i) {
        const Pick p = selector.next(service, attempts);
        REQUIRE(p.backend != nullptr);
        CHECK(p.pool == Colour::Blue);
        blue.insert(p.backendIndex);
    }
    CHECK(blue.size() == 3);
    for (int i = 0; i < 2; ++i) {
        const Pick p = selector.next(service, attempts);
        REQUIRE(p.backend != nullptr);
        CHECK(p.pool == Colour::Green);
        green.insert(p.backendIndex);
    }
    CHECK(green.size() == 2);
    CHECK(attempts.count == 5);
    CHECK(attempts.firstPool == Colour::Blue);
    CHECK(attempts.crossedToOtherPool);
    CHECK(selector.next(service, attempts).backend == nullptr);
    CHECK(attempts.count == 5);
}

TEST_CASE("Retries never return to the first pool after crossing over", "[routing]") {
    auto service = ServiceBuilder("web")
                       .split(0, 100)
                       .backends(Colour::Blue, {100})
                       .backends(Colour::Green, {100})
                       .build();
    RouteSelector selector;
    selector.update(snapshotOf({service}));
    Attempts attempts;
    CHECK(selector.next(service, attempts).pool == Colour::Green);
    const Pick second = selector.next(service, attempts);
    CHECK(second.pool == Colour::Blue);
    CHECK(second.backend != nullptr);
    CHECK(selector.next(service, attempts).backend == nullptr);
}

TEST_CASE("Under affinity: client, retries stay in the chosen pool", "[routing]") {
    auto service = ServiceBuilder("web")
                       .affinity(Affinity::Client)
                       .split(100, 0)
                       .backends(Colour::Blue, {100, 100})
                       .backends(Colour::Green, {100, 100})
                       .build();
    RouteSelector selector;
    selector.update(snapshotOf({service}));
    Attempts attempts;
    attempts.clientHash = clientHash(1);
    CHECK(selector.next(service, attempts).pool == Colour::Blue);
    CHECK(selector.next(service, attempts).pool == Colour::Blue);
    const Pick p = selector.next(service, attempts);
    CHECK(p.backend == nullptr);
    CHECK(attempts.count == 2);
}

TEST_CASE("An offline pool is never tried, not even by retries", "[routing]") {
    auto service = ServiceBuilder("web")
                       .split(100, 0)
                       .backends(Colour::Blue, {100})
                       .backends(Colour::Green, {100, 100})
                       .offline(Colour::Green)
                       .build();
    RouteSelector selector;
    selector.update(snapshotOf({service}));
    Attempts attempts;
    CHECK(selector.next(service, attempts).pool == Colour::Blue);
    CHECK(selector.next(service, attempts).backend == nullptr);
    CHECK(selector.next(service, attempts).backend == nullptr);
}

TEST_CASE("Retries skip tried backends under every balance", "[routing]") {
    for (Balance b : {Balance::RoundRobin, Balance::LeastConn, Balance::Hash}) {
        auto service = ServiceBuilder("web")
                           .balance(b)
                           .backends(Colour::Blue, {100, 100, 100, 100})
                           .build();
        RouteSelector selector;
        selector.update(snapshotOf({service}));
        Attempts attempts;
        attempts.clientHash = clientHash(7);
        std::set<int> seen;
        for (int i = 0; i < 4; ++i) {
            const Pick p = selector.next(service, attempts);
            REQUIRE(p.backend != nullptr);
            seen.insert(p.backendIndex);
        }
        CHECK(seen.size() == 4);
        CHECK(selector.next(service, attempts).backend == nullptr);
    }
}

TEST_CASE("A first pick in a pool with no pickable backend goes straight to the other pool",
          "[routing]") {
    auto service = ServiceBuilder("web")
                       .split(100, 1)
                       .backends(Colour::Blue, {0, 0})
                       .backends(Colour::Green, {100})
                       .build();
    RouteSelector selector;
    selector.update(snapshotOf({service}));
    for (int i = 0; i < 10; ++i) {
        Attempts attempts;
        const Pick p = selector.next(service, attempts);
        REQUIRE(p.backend != nullptr);
        CHECK(p.pool == Colour::Green);
        CHECK(attempts.count == 1);
    }

    // Under affinity: client the connection may not leave its pool, not even then.
    auto sticky = service;
    sticky.affinity = Affinity::Client;
    uint32_t client = 0;
    while (selector.pickPool(sticky, clientHash(client)) != Colour::Blue) ++client;
    Attempts attempts;
    attempts.clientHash = clientHash(client);
    const Pick p = selector.next(sticky, attempts);
    CHECK(p.pool == Colour::Blue);
    CHECK(p.backend == nullptr);
}

TEST_CASE("Nothing to try gives no backend", "[routing]") {
    RouteSelector selector;
    SECTION("both pools at weight 0") {
        auto service = ServiceBuilder("web")
                           .split(0, 0)
                           .backends(Colour::Blue, {100})
                           .backends(Colour::Green, {100})
                           .build();
        selector.update(snapshotOf({service}));
        Attempts attempts;
        const Pick p = selector.next(service, attempts);
        CHECK(p.pool == Colour::Blue);
        CHECK(p.backend == nullptr);
        CHECK(p.backendIndex == -1);
        CHECK(selector.next(service, attempts).backend == nullptr);
        CHECK(attempts.count == 0);
    }
    SECTION("empty pools") {
        auto service = ServiceBuilder("web").split(50, 50).build();
        selector.update(snapshotOf({service}));
        Attempts attempts;
        CHECK(selector.next(service, attempts).backend == nullptr);
    }
    SECTION("every backend at weight 0") {
        auto service = ServiceBuilder("web")
                           .split(50, 50)
                           .backends(Colour::Blue, {0})
                           .backends(Colour::Green, {0})
                           .build();
        selector.update(snapshotOf({service}));
        Attempts attempts;
        CHECK(selector.next(service, attempts).backend == nullptr);
    }
}

// ---- snapshots ------------------------------------------------------------------

TEST_CASE("A retry routed by an older snapshot does not disturb the current positions",
          "[routing]") {
    auto oldSnap = snapshotOf({ServiceBuilder("web").backends(Colour::Blue, {1, 1, 1}).build()}, 1);
    auto newSnap = snapshotOf({ServiceBuilder("web").backends(Colour::Blue, {99, 1}).build()}, 2);
    RouteSelector selector;
    selector.update(oldSnap);
    Attempts attempts;
    REQUIRE(selector.next(oldSnap.services[0], attempts).backend != nullptr);

    selector.update(newSnap);
    int second = 0;
    for (int i = 0; i < 50; ++i)
        if (firstPick(selector, newSnap.services[0]).backendIndex == 1) ++second;
    // The old connection retries against its own snapshot in the middle.
    const Pick retry = selector.next(oldSnap.services[0], attempts);
    REQUIRE(retry.backend != nullptr);
    CHECK(retry.backend == &oldSnap.services[0].pool(Colour::Blue).backends[static_cast<std::size_t>(retry.backendIndex)]);
    for (int i = 0; i < 50; ++i)
        if (firstPick(selector, newSnap.services[0]).backendIndex == 1) ++second;
    CHECK(second == 1);
}

TEST_CASE("Services dropped from the snapshot lose their positions", "[routing]") {
    auto web = ServiceBuilder("web").backends(Colour::Blue, {1, 1}).build();
    auto api = ServiceBuilder("api").backends(Colour::Blue, {1, 1}).build();
    RouteSelector selector;
    selector.update(snapshotOf({web, api}));
    CHECK(firstPick(selector, web).backendIndex == 0);
    selector.update(snapshotOf({api}));
    selector.update(snapshotOf({web, api}));
    // Started over: 0 again rather than 1.
    CHECK(firstPick(selector, web).backendIndex == 0);
}

// ---- per-backend max_connections ------------------------------------------------

TEST_CASE("A backend at its max_connections is passed over for the pool's others", "[routing][limits]") {
    for (Balance balance : {Balance::RoundRobin, Balance::LeastConn, Balance::Hash}) {
        auto snap = snapshotOf({ServiceBuilder("web").balance(balance).backends(Colour::Blue, {100, 100}).build()});
        auto& backends = snap.services.edit(0).pool(Colour::Blue).backends;
        backends[0].maxConnections = 3;
        backends[0].handle->active = 3;
        RouteSelector selector;
        selector.update(snap);
        for (uint32_t i = 0; i < 50; ++i) {
            INFO("balance " << static_cast<int>(balance) << " client " << i);
            CHECK(firstPick(selector, snap.services[0], clientHash(i)).backendIndex == 1);
        }
        CHECK(backends[0].handle->limitSkips.load() >= 50);
        // Below the limit again (and as loaded as the other, for leastconn): it takes its share.
        backends[0].handle->active = 0;
        std::set<int> seen;
        for (uint32_t i = 0; i < 50; ++i) seen.insert(firstPick(selector, snap.services[0], clientHash(i)).backendIndex);
        CHECK(seen == std::set<int>{0, 1});
    }
}

TEST_CASE("max_connections 0 means unlimited", "[routing][limits]") {
    auto snap = snapshotOf({ServiceBuilder("web").backends(Colour::Blue, {100}).build()});
    snap.services[0].pool(Colour::Blue).backends[0].handle->active = 1'000'000;
    RouteSelector selector;
    selector.update(snap);
    CHECK(firstPick(selector, snap.services[0]).backendIndex == 0);
}

TEST_CASE("When every backend of the pool is full the pick goes the way of a failed pick, and is counted",
          "[routing][limits]") {
    SECTION("to the other pool") {
        auto snap = snapshotOf({ServiceBuilder("web")
                                    .split(100, 0)
                                    .backends(Colour::Blue, {100, 100})
                                    .backends(Colour::Green, {100})
                                    .build()});
        auto& blue = snap.services.edit(0).pool(Colour::Blue).backends;
        for (auto& b : blue) {
            b.maxConnections = 1;
            b.handle->active = 1;
        }
        RouteSelector selector;
        selector.update(snap);
        Attempts attempts;
        attempts.started = true;
        attempts.firstPool = attempts.currentPool = Colour::Blue;
        const Pick p = selector.next(snap.services[0], attempts);
        CHECK(p.pool == Colour::Green);
        CHECK(p.backend != nullptr);
        CHECK(snap.services[0].state->backendsFull.load() == 0);
    }
    SECTION("nowhere, under affinity: client") {
        auto snap = snapshotOf({ServiceBuilder("web")
                                    .affinity(Affinity::Client)
                                    .backends(Colour::Blue, {100, 100})
                                    .build()});
        for (auto& b : snap.services.edit(0).pool(Colour::Blue).backends) {
            b.maxConnections = 2;
            b.handle->active = 5;
        }
        RouteSelector selector;
        selector.update(snap);
        CHECK(firstPick(selector, snap.services[0]).backend == nullptr);
        CHECK(snap.services[0].state->backendsFull.load() == 1);
    }
}

// ---- affinity, exhaustively ------------------------------------------------------

TEST_CASE("Under affinity: client, any sequence of splits moves each client only toward the pool whose "
          "share grew",
          "[routing]") {
    RouteSelector selector;
    // Up and down, with uneven totals: 1..999 weights in both pools.
    const std::vector<std::pair<uint32_t, uint32_t>> splits{
        {100, 0}, {99, 1}, {95, 5}, {75, 25}, {50, 50}, {0, 100}, {1, 3}, {997, 3}, {300, 700}, {1000, 1}, {1, 999}};
    std::vector<Colour> previous;
    double previousShare = -1;
    for (const auto& [blue, green] : splits) {
        auto service = ServiceBuilder("web")
                           .affinity(Affinity::Client)
                           .split(blue, green)
                           .backends(Colour::Blue, {100})
                           .backends(Colour::Green, {100})
                           .build();
        selector.update(snapshotOf({service}));
        const double share = static_cast<double>(green) / (blue + green);
        std::vector<Colour> now;
        for (uint32_t i = 0; i < 20000; ++i) now.push_back(selector.pickPool(service, clientHash(i)));
        if (!previous.empty()) {
            for (uint32_t i = 0; i < 20000; ++i) {
                if (now[i] == previous[i]) continue;
                INFO("split " << blue << "/" << green << " client " << i);
                // Green's share grew: only blue -> green; it shrank: only green -> blue.
                CHECK((share > previousShare ? now[i] == Colour::Green : now[i] == Colour::Blue));
            }
        }
        previous = std::move(now);
        previousShare = share;
    }
}
