#include "switchyard/health/fallback_policy.h"

#include <chrono>

#include <catch2/catch.hpp>

#include "health_fixtures.h"

using namespace switchyard;
using namespace switchyard::health;
using namespace switchyard::health::testing;
using config::Colour;
using Action = FallbackDecision::Action;
using namespace std::chrono_literals;

namespace {

const routing::TimePoint t0 = routing::TimePoint{} + 1000h;

// What the health monitor does with a decision.
void apply(control::ServiceEntry& s, const FallbackDecision& d) {
    if (d.action == Action::Engage) s.fallback = {true, d.from, d.reason, 1};
    if (d.action == Action::Lift) s.fallback = {};
}

} // namespace

TEST_CASE("min_healthy counts backends or a percentage of the pool; an empty pool never meets it",
          "[health][fallback]") {
    CHECK(meetsMinHealthy(1, 2, {1, false}));
    CHECK_FALSE(meetsMinHealthy(0, 2, {1, false}));
    CHECK(meetsMinHealthy(2, 4, {50, true}));
    CHECK_FALSE(meetsMinHealthy(1, 4, {50, true}));
    CHECK(meetsMinHealthy(1, 3, {33, true}));
    CHECK_FALSE(meetsMinHealthy(0, 0, {0, true}));
    CHECK_FALSE(meetsMinHealthy(0, 0, {1, false}));
    CHECK(meetsMinHealthy(0, 2, {0, false}));
}

TEST_CASE("a pool is unknown until every backend that counts has a result", "[health][fallback]") {
    auto s = makeService(2, 2);
    CHECK(assessPool(s, Colour::Green).condition == PoolCondition::Unknown);
    backendAt(s, Colour::Green, 0).checked = true;
    backendAt(s, Colour::Green, 0).healthy = false;
    CHECK(assessPool(s, Colour::Green).condition == PoolCondition::Unknown);
    // A disabled backend is not checked and does not count.
    backendAt(s, Colour::Green, 1).adminState = control::AdminState::Disabled;
    const PoolHealth h = assessPool(s, Colour::Green);
    CHECK(h.condition == PoolCondition::Failed);
    CHECK(h.members == 1);
    CHECK(h.healthy == 0);
}

TEST_CASE("an ejected backend does not count as healthy", "[health][fallback]") {
    auto s = makeService(0, 2);
    s.config.fallback.minHealthy = {2, false};
    checkAll(s, Colour::Green, true);
    CHECK(assessPool(s, Colour::Green).condition == PoolCondition::Healthy);
    backendAt(s, Colour::Green, 1).handle->ejected = true;
    CHECK(assessPool(s, Colour::Green).healthy == 1);
    CHECK(assessPool(s, Colour::Green).condition == PoolCondition::Failed);
}

TEST_CASE("the live pool failing moves its share to the healthy other pool", "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, false);
    FallbackPolicy p;
    const auto d = p.evaluate(s, t0);
    REQUIRE(d.action == Action::Engage);
    CHECK(d.from == Colour::Green);
    CHECK(d.reason == "pool green: 0 of 2 backend(s) healthy (min_healthy 1); traffic moved to pool blue");
    apply(s, d);
    CHECK(s.effectiveSplit() == config::Split{100, 0});
    CHECK(s.split == config::Split{0, 100});   // intent untouched
    CHECK(p.evaluate(s, t0 + 1s).action == Action::Keep);
}

TEST_CASE("with both pools carrying weight, the failed one's share goes to the other", "[health][fallback]") {
    auto s = makeService(2, 2, {30, 70});
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, false);
    FallbackPolicy p;
    const auto d = p.evaluate(s, t0);
    REQUIRE(d.action == Action::Engage);
    apply(s, d);
    CHECK(s.effectiveSplit() == config::Split{100, 0});
}

TEST_CASE("no fallback decision before every backend of the pool has a result", "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});
    checkAll(s, Colour::Blue, true);
    backendAt(s, Colour::Green, 0).checked = true;
    backendAt(s, Colour::Green, 0).healthy = false;
    backendAt(s, Colour::Green, 1).healthy = false;   // not checked yet
    FallbackPolicy p;
    CHECK(p.evaluate(s, t0).action == Action::Keep);
    backendAt(s, Colour::Green, 1).checked = true;
    CHECK(p.evaluate(s, t0).action == Action::Engage);
}

TEST_CASE("no fallback onto a pool that is not yet fully checked", "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});
    checkAll(s, Colour::Green, false);
    backendAt(s, Colour::Blue, 0).checked = true;
    FallbackPolicy p;
    CHECK(p.evaluate(s, t0).action == Action::Keep);
}

TEST_CASE("an offline pool never gets traffic, not even by fallback", "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, false);
    s.pool(Colour::Blue).offline = true;
    FallbackPolicy p;
    CHECK(p.evaluate(s, t0).action == Action::Keep);
    CHECK(s.effectiveSplit().blue == 0);
}

TEST_CASE("a failed pool without weight triggers nothing", "[health][fallback]") {
    auto s = makeService(2, 2, {100, 0});
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, false);
    FallbackPolicy p;
    CHECK(p.evaluate(s, t0).action == Action::Keep);
    CHECK_FALSE(needsPanic(s));
}

TEST_CASE("min_healthy as a percentage: losing half of four fails at 75%", "[health][fallback]") {
    auto s = makeService(2, 4, {0, 100});
    s.config.fallback.minHealthy = {75, true};
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, true);
    FallbackPolicy p;
    backendAt(s, Colour::Green, 0).healthy = false;
    CHECK(p.evaluate(s, t0).action == Action::Keep);   // 3 of 4 = 75%
    backendAt(s, Colour::Green, 1).healthy = false;
    const auto d = p.evaluate(s, t0);
    CHECK(d.action == Action::Engage);
    CHECK(d.reason == "pool green: 2 of 4 backend(s) healthy (min_healthy 75%); traffic moved to pool blue");
}

TEST_CASE("one flapping backend of two never flaps the service with min_healthy 1", "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, true);
    FallbackPolicy p;
    for (int i = 0; i < 100; ++i) {
        backendAt(s, Colour::Green, 0).healthy = i % 2 == 0;
        CHECK(p.evaluate(s, t0 + std::chrono::seconds(i)).action == Action::Keep);
        CHECK_FALSE(needsPanic(s));
    }
}

TEST_CASE("restore manual keeps the overlay however long the pool is healthy again", "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});
    s.config.fallback.restore = config::Restore::Manual;
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, false);
    FallbackPolicy p;
    apply(s, p.evaluate(s, t0));
    REQUIRE(s.fallback.active);
    checkAll(s, Colour::Green, true);
    CHECK(p.evaluate(s, t0 + 1s).action == Action::Keep);
    CHECK(p.evaluate(s, t0 + 24h).action == Action::Keep);
}

TEST_CASE("restore auto lifts the overlay once the pool has been healthy for hold", "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});
    s.config.fallback.restore = config::Restore::Auto;
    s.config.fallback.hold = 30s;
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, false);
    FallbackPolicy p;
    apply(s, p.evaluate(s, t0));
    REQUIRE(s.fallback.active);

    checkAll(s, Colour::Green, true);
    CHECK(p.evaluate(s, t0 + 10s).action == Action::Keep);       // healthy since t0+10s
    CHECK(p.evaluate(s, t0 + 39s).action == Action::Keep);
    // A failure inside the hold starts it again.
    checkAll(s, Colour::Green, false);
    CHECK(p.evaluate(s, t0 + 40s).action == Action::Keep);
    checkAll(s, Colour::Green, true);
    CHECK(p.evaluate(s, t0 + 41s).action == Action::Keep);       // healthy since t0+41s
    CHECK(p.evaluate(s, t0 + 70s).action == Action::Keep);
    const auto d = p.evaluate(s, t0 + 71s);
    REQUIRE(d.action == Action::Lift);
    CHECK(d.reason == "pool green: 2 of 2 backend(s) healthy for the hold of 30s (restore: auto)");
    apply(s, d);
    CHECK(s.effectiveSplit() == config::Split{0, 100});
}

TEST_CASE("both pools down: no fallback, panic mode", "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});
    checkAll(s, Colour::Blue, false);
    checkAll(s, Colour::Green, false);
    FallbackPolicy p;
    CHECK(p.evaluate(s, t0).action == Action::Keep);
    CHECK(needsPanic(s));
    // One green backend back: panic ends, still no fallback.
    backendAt(s, Colour::Green, 0).healthy = true;
    CHECK(p.evaluate(s, t0 + 1s).action == Action::Keep);
    CHECK_FALSE(needsPanic(s));
}

TEST_CASE("both pools below min_healthy: the pool with healthy backends is the least bad", "[health][fallback]") {
    auto s = makeService(4, 2, {0, 100});
    s.config.fallback.minHealthy = {50, true};
    checkAll(s, Colour::Green, false);
    checkAll(s, Colour::Blue, false);
    backendAt(s, Colour::Blue, 0).healthy = true;   // 1 of 4: below 50% too
    FallbackPolicy p;
    const auto d = p.evaluate(s, t0);
    REQUIRE(d.action == Action::Engage);
    CHECK(d.from == Colour::Green);
    CHECK(d.reason == "pool green: 0 of 2 backend(s) healthy (min_healthy 50%); traffic moved to pool blue "
                      "(pool blue: 1 of 4 backend(s) healthy: below min_healthy too, but the least bad)");
    apply(s, d);
    CHECK_FALSE(needsPanic(s));
    // And not the other way round while green has nothing.
    CHECK(p.evaluate(s, t0 + 1s).action == Action::Keep);
}

TEST_CASE("the overlay lifts when the pool it moved to fails while the first is healthy again",
          "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});   // restore: manual
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, false);
    FallbackPolicy p;
    apply(s, p.evaluate(s, t0));
    REQUIRE(s.fallback.active);
    // Green back while blue goes down: lift even under restore: manual.
    checkAll(s, Colour::Blue, false);
    checkAll(s, Colour::Green, true);
    const auto d = p.evaluate(s, t0 + 2s);
    REQUIRE(d.action == Action::Lift);
    CHECK(d.reason == "pool blue: 0 of 2 backend(s) healthy while pool green: 2 of 2 backend(s) healthy");
    apply(s, d);
    CHECK_FALSE(needsPanic(s));
    CHECK(s.effectiveSplit() == config::Split{0, 100});
}

TEST_CASE("the overlay lifts when the pool it moved to goes offline", "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, false);
    FallbackPolicy p;
    apply(s, p.evaluate(s, t0));
    s.pool(Colour::Blue).offline = true;
    const auto d = p.evaluate(s, t0 + 1s);
    CHECK(d.action == Action::Lift);
    CHECK(d.reason == "pool blue went offline");
}

TEST_CASE("panic needs a pool with effective weight and an enabled backend", "[health][fallback]") {
    auto s = makeService(2, 0, {100, 0});
    checkAll(s, Colour::Blue, false);
    CHECK(needsPanic(s));
    for (auto& b : s.pool(Colour::Blue).backends) b.adminState = control::AdminState::Disabled;
    CHECK_FALSE(needsPanic(s));   // nothing to route to even ignoring health
    auto t = makeService(0, 0, {100, 0});
    CHECK_FALSE(needsPanic(t));
}

TEST_CASE("an ejected last healthy backend puts the service in panic", "[health][fallback]") {
    auto s = makeService(2, 0, {100, 0});
    checkAll(s, Colour::Blue, true);
    backendAt(s, Colour::Blue, 0).healthy = false;
    CHECK_FALSE(needsPanic(s));
    backendAt(s, Colour::Blue, 1).handle->ejected = true;
    CHECK(needsPanic(s));
}

TEST_CASE("with both pools down the overlay lifts: the operator's split applies, in panic mode",
          "[health][fallback]") {
    auto s = makeService(2, 2, {0, 100});   // restore: manual
    checkAll(s, Colour::Blue, true);
    checkAll(s, Colour::Green, false);
    FallbackPolicy p;
    apply(s, p.evaluate(s, t0));
    REQUIRE(s.fallback.active);
    checkAll(s, Colour::Blue, false);
    const auto d = p.evaluate(s, t0 + 1s);
    REQUIRE(d.action == Action::Lift);
    CHECK(d.reason == "pool blue: 0 of 2 backend(s) healthy as well as pool green: 0 of 2 backend(s) healthy");
    apply(s, d);
    CHECK(s.effectiveSplit() == config::Split{0, 100});
    CHECK(needsPanic(s));
    // Green recovers: it carries the split again, nothing to engage.
    checkAll(s, Colour::Green, true);
    CHECK(p.evaluate(s, t0 + 2s).action == Action::Keep);
    CHECK_FALSE(needsPanic(s));
}
