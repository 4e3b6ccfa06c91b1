// Slow start: the ramp math (master_state.cpp) and what snapshots route by
// during a ramp (snapshot_builder.cpp), on a fake clock.

#include <chrono>

#include <catch2/catch.hpp>

#include "switchyard/config/config_loader.h"
#include "switchyard/control/master_state.h"
#include "switchyard/control/snapshot_builder.h"
#include "switchyard/routing/route_selector.h"

using namespace switchyard;
using namespace switchyard::control;
using namespace std::chrono_literals;
using config::Colour;

namespace {

const routing::TimePoint t0 = routing::TimePoint{} + 1000h;   // any fixed instant

ServiceEntry serviceWith(const char* yaml) {
    auto cfg = config::loadConfigString(yaml, "test.yaml");
    INFO((cfg ? std::string() : cfg.errorText()));
    REQUIRE(cfg);
    return makeServiceEntry(cfg->services.at(0));
}

constexpr const char* kTwoBackends = R"(
services:
  - name: web
    listen: 127.0.0.1:18080
    slow_start: 30s
    pools:
      blue:
        - { address: 127.0.0.1:9001, weight: 100 }
        - { address: 127.0.0.1:9002, weight: 100, max_connections: 7 }
)";

} // namespace

TEST_CASE("Slow start ramps weight x max(0.1, elapsed / slow_start)", "[control][slow_start]") {
    const config::Duration ramp = 30s;
    CHECK(slowStartWeight(100, t0, ramp, t0) == 10);            // at once: a tenth
    CHECK(slowStartWeight(100, t0, ramp, t0 + 2s) == 10);       // the floor holds for the first tenth
    CHECK(slowStartWeight(100, t0, ramp, t0 + 3s) == 10);
    CHECK(slowStartWeight(100, t0, ramp, t0 + 6s) == 20);
    CHECK(slowStartWeight(100, t0, ramp, t0 + 15s) == 50);
    CHECK(slowStartWeight(100, t0, ramp, t0 + 29s) == 97);
    CHECK(slowStartWeight(100, t0, ramp, t0 + 30s) == 100);     // over: the full weight
    CHECK(slowStartWeight(100, t0, ramp, t0 + 1h) == 100);
}

TEST_CASE("Slow start never rounds a live backend down to 0 and leaves weight 0 alone", "[control][slow_start]") {
    CHECK(slowStartWeight(1, t0, 30s, t0) == 1);
    CHECK(slowStartWeight(3, t0, 30s, t0 + 1s) == 1);
    CHECK(slowStartWeight(0, t0, 30s, t0 + 1s) == 0);
    CHECK(slowStartWeight(1000, t0, 30s, t0 + 15s) == 500);
}

TEST_CASE("Without slow_start or without a ramp the weight is the full weight", "[control][slow_start]") {
    CHECK(slowStartWeight(100, t0, 0ms, t0) == 100);
    CHECK(slowStartWeight(100, kNoRamp, 30s, t0) == 100);
}

TEST_CASE("markBackendReturned starts a ramp; ramping says when it is over", "[control][slow_start]") {
    BackendEntry b;
    b.weight = 200;
    CHECK_FALSE(ramping(b, 30s, t0));
    markBackendReturned(b, t0);
    CHECK(ramping(b, 30s, t0 + 29s));
    CHECK_FALSE(ramping(b, 30s, t0 + 30s));
    CHECK_FALSE(ramping(b, 0ms, t0));
    CHECK(effectiveBackendWeight(b, 30s, t0) == 20);
    CHECK(effectiveBackendWeight(b, 30s, t0 + 30s) == 200);
    b.healthy = false;
    CHECK(effectiveBackendWeight(b, 30s, t0 + 30s) == 0);   // down: no new connections at all
}

TEST_CASE("A snapshot built during a ramp routes by the ramped weight, and at most 20% of the steady share "
          "goes to the returning backend in the first tenth",
          "[control][slow_start]") {
    MasterState state;
    state.services.push_back(serviceWith(kTwoBackends));
    BackendEntry& returning = state.services.edit(0).pool(Colour::Blue).backends[1];
    markBackendReturned(returning, t0);

    auto early = buildSnapshot(state, t0 + 1s);
    const auto& pool = early->services[0].pool(Colour::Blue);
    CHECK(pool.backends[0].weight == 100);
    CHECK(pool.backends[1].weight == 10);
    CHECK(pool.backends[1].maxConnections == 7);

    routing::RouteSelector selector;
    selector.update(*early);
    int toReturning = 0;
    for (int i = 0; i < 1100; ++i) {
        routing::Attempts attempts;
        const auto pick = selector.next(early->services[0], attempts);
        REQUIRE(pick.backend);
        if (pick.backendIndex == 1) ++toReturning;
    }
    // Steady share is 550 of 1100; a tenth of the weight gives 100.
    CHECK(toReturning == 100);
    CHECK(toReturning <= 550 / 5);

    auto later = buildSnapshot(state, t0 + 15s);
    CHECK(later->services[0].pool(Colour::Blue).backends[1].weight == 50);
    auto done = buildSnapshot(state, t0 + 31s);
    CHECK(done->services[0].pool(Colour::Blue).backends[1].weight == 100);
    // The weights differ, so the pick signature does: workers restart their WRR position.
    CHECK(early->services[0].pool(Colour::Blue).pickSignature != done->services[0].pool(Colour::Blue).pickSignature);
}

TEST_CASE("Backends from the config start at full weight and carry their max_connections", "[control][slow_start]") {
    MasterState state;
    state.services.push_back(serviceWith(kTwoBackends));
    auto snap = buildSnapshot(state, t0);
    const auto& pool = snap->services[0].pool(Colour::Blue);
    CHECK(pool.backends[0].weight == 100);
    CHECK(pool.backends[1].weight == 100);
    CHECK(pool.backends[0].maxConnections == 0);
    CHECK(pool.backends[1].maxConnections == 7);
}
