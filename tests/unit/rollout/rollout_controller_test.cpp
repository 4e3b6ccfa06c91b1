#include "switchyard/rollout/rollout_controller.h"

#include <catch2/catch.hpp>

#include "fake_pool.h"

using namespace switchyard;
using namespace switchyard::rollout;
using namespace std::chrono_literals;
using config::Colour;

namespace {

// A fake clock and two fake pools; `now()` is what the driver would pass.
struct Harness {
    TimePoint t0 = TimePoint{} + 1000s;
    Millis at{0};
    test::FakePool blue, green;

    Now now() const {
        Now n;
        n.steady = t0 + at;
        n.unixMs = 1'700'000'000'000 + at.count();
        n.samples[config::index(Colour::Blue)] = blue.sample;
        n.samples[config::index(Colour::Green)] = green.sample;
        return n;
    }
    void advance(Millis d) { at += d; }
};

RolloutPlan plan(std::vector<uint32_t> steps = {1, 5, 25, 50, 100}) {
    RolloutPlan p;
    p.to = Colour::Green;
    p.steps = std::move(steps);
    p.hold = 10s;
    p.maxHold = 40s;
    p.gates.minConnections = 100;
    p.gates.maxErrorRate = 0.01;
    p.gates.maxTtfbP99 = 200ms;
    return p;
}

Rollout start(Harness& h, RolloutPlan p = plan()) {
    return begin(7, std::move(p), config::Split{100, 0}, config::Split{50, 50}, h.now());
}

// Healthy traffic for a whole hold, then a tick.
TickResult passStep(Harness& h, Rollout& r) {
    h.green.traffic(200);
    h.blue.traffic(200);
    h.advance(10s);
    return tick(r, h.now(), {});
}

} // namespace

TEST_CASE("a rollout starts at its first step's share", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    CHECK(r.phase == Phase::Running);
    CHECK(r.split() == config::Split{99, 1});
    CHECK(r.steps[0].verdict == "running");
    CHECK(r.steps[1].verdict == "pending");
}

TEST_CASE("nothing is judged before the hold is over", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    h.green.traffic(500, 250);   // awful, but the hold is not over
    h.advance(9999ms);
    CHECK(tick(r, h.now(), {}).event == Event::None);
    h.advance(1ms);
    CHECK(tick(r, h.now(), {}).event == Event::RolledBack);
}

TEST_CASE("a healthy target is promoted through every step", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    const std::vector<config::Split> expected{{95, 5}, {75, 25}, {50, 50}, {0, 100}};
    for (std::size_t i = 0; i < 4; ++i) {
        const TickResult t = passStep(h, r);
        REQUIRE(t.event == Event::Advanced);
        CHECK(r.split() == expected[i]);
        CHECK(r.steps[i].verdict == "passed");
        CHECK(r.steps[i].judged);
        CHECK(r.steps[i].target.attempts == 200);
    }
    const TickResult last = passStep(h, r);
    CHECK(last.event == Event::Promoted);
    CHECK(r.phase == Phase::Promoted);
    CHECK_FALSE(r.active());
    CHECK(r.split() == config::Split{0, 100});
    CHECK(tick(r, h.now(), {}).event == Event::None);   // ended: inert
}

TEST_CASE("traffic before a step started does not count in its window", "[rollout][controller]") {
    Harness h;
    h.green.traffic(5000, 4000);   // an earlier, broken green
    Rollout r = start(h);
    REQUIRE(passStep(h, r).event == Event::Advanced);
    CHECK(r.steps[0].target.errors == 0);
    CHECK(r.steps[0].target.attempts == 200);
}

TEST_CASE("a failing gate rolls back to the split before the rollout, with the numbers", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    h.green.traffic(200, 40);
    h.advance(10s);
    const TickResult t = tick(r, h.now(), {});
    CHECK(t.event == Event::RolledBack);
    CHECK(r.phase == Phase::RolledBack);
    CHECK(r.split() == config::Split{100, 0});
    CHECK(r.steps[0].verdict == "failed");
    CHECK(r.steps[0].target.errors == 40);
    CHECK(r.steps[0].reason.find("max_error_rate 0.2 > 0.01 (200 attempts") != std::string::npos);
    CHECK(r.steps[1].verdict == "skipped");
    CHECK(r.reason.find("step 1/5 (1% green) failed") != std::string::npos);
}

TEST_CASE("a slow first byte fails max_ttfb_p99", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    h.green.traffic(200, 0, 300);
    h.advance(10s);
    CHECK(tick(r, h.now(), {}).event == Event::RolledBack);
    CHECK(r.steps[0].reason.find("max_ttfb_p99") != std::string::npos);
}

TEST_CASE("too few samples hold the step longer, up to max_hold, then fail", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    h.green.traffic(50);
    h.advance(10s);
    CHECK(tick(r, h.now(), {}).event == Event::None);
    h.advance(20s);
    h.green.traffic(49);
    CHECK(tick(r, h.now(), {}).event == Event::None);
    SECTION("enough samples arrive in time: the step passes") {
        h.green.traffic(1);
        CHECK(tick(r, h.now(), {}).event == Event::Advanced);
    }
    SECTION("max_hold passes first: the step fails") {
        h.advance(10s);
        CHECK(tick(r, h.now(), {}).event == Event::RolledBack);
        CHECK(r.steps[0].reason.find("insufficient samples: 99 of min_connections 100") != std::string::npos);
    }
}

TEST_CASE("pause freezes the step clock; resume continues it", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    h.green.traffic(200);
    h.advance(4s);
    REQUIRE_FALSE(act(r, Action::Pause, h.now()));
    CHECK(r.phase == Phase::Paused);
    CHECK(act(r, Action::Pause, h.now()).has_value());   // already paused
    h.advance(60s);
    CHECK(tick(r, h.now(), {}).event == Event::None);
    CHECK(r.stepElapsed(h.now().steady) == 4s);
    REQUIRE_FALSE(act(r, Action::Resume, h.now()));
    h.advance(5999ms);
    CHECK(tick(r, h.now(), {}).event == Event::None);
    h.advance(1ms);
    CHECK(tick(r, h.now(), {}).event == Event::Advanced);
}

TEST_CASE("a paused rollout still rolls back on a failing gate", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    REQUIRE_FALSE(act(r, Action::Pause, h.now()));
    h.green.traffic(100, 10);
    h.advance(1s);
    CHECK(tick(r, h.now(), {}).event == Event::RolledBack);
}

TEST_CASE("a fallback away from the target rolls back in any active phase", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    REQUIRE(passStep(h, r).event == Event::Advanced);
    Signals s;
    s.targetFallback = true;
    s.fallbackReason = "0 of 2 backends healthy";
    SECTION("running") {}
    SECTION("paused") { REQUIRE_FALSE(act(r, Action::Pause, h.now())); }
    const TickResult t = tick(r, h.now(), s);
    CHECK(t.event == Event::RolledBack);
    CHECK(r.split() == config::Split{100, 0});
    CHECK(r.steps[1].reason == "fallback away from the target pool green: 0 of 2 backends healthy");
}

TEST_CASE("a fallback away from the baseline suspends until an operator resumes", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    h.advance(5s);
    Signals s;
    s.baselineFallback = true;
    CHECK(tick(r, h.now(), s).event == Event::Suspended);
    CHECK(r.phase == Phase::Suspended);
    CHECK(r.split() == config::Split{99, 1});   // stays where it is
    // Gates are off: awful numbers change nothing, neither does time.
    h.green.traffic(500, 500);
    h.advance(100s);
    CHECK(tick(r, h.now(), s).event == Event::None);
    CHECK(tick(r, h.now(), {}).event == Event::None);   // even once the fallback ends
    CHECK(act(r, Action::Pause, h.now()).has_value());
    // Resume judges afresh: the window restarts.
    REQUIRE_FALSE(act(r, Action::Resume, h.now()));
    CHECK(r.phase == Phase::Running);
    CHECK(r.stepElapsed(h.now().steady) == 0ms);
    CHECK(passStep(h, r).event == Event::Advanced);
}

TEST_CASE("the target's fallback still rolls back a suspended rollout", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    Signals s;
    s.baselineFallback = true;
    REQUIRE(tick(r, h.now(), s).event == Event::Suspended);
    Signals both;
    both.targetFallback = true;
    CHECK(tick(r, h.now(), both).event == Event::RolledBack);
}

TEST_CASE("an outlier ejection of a target backend fails the step", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    Signals s;
    s.ejectedTargets = {"127.0.0.1:9002"};
    CHECK(tick(r, h.now(), s).event == Event::RolledBack);
    CHECK(r.steps[0].reason == "outlier detection ejected target backend 127.0.0.1:9002");
}

TEST_CASE("a last step below 100 is a canary waiting for promote", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h, plan({5}));
    CHECK(passStep(h, r).event == Event::Canary);
    CHECK(r.phase == Phase::Canary);
    CHECK(r.active());
    CHECK(r.split() == config::Split{95, 5});
    h.advance(1h);
    CHECK(tick(r, h.now(), {}).event == Event::None);
    SECTION("promote") {
        REQUIRE_FALSE(act(r, Action::Promote, h.now()));
        CHECK(r.phase == Phase::Promoted);
        CHECK(r.split() == config::Split{0, 100});
        CHECK(r.steps[0].verdict == "passed");
    }
    SECTION("abort") {
        REQUIRE_FALSE(act(r, Action::Abort, h.now()));
        CHECK(r.phase == Phase::Aborted);
        CHECK(r.split() == config::Split{100, 0});
    }
    SECTION("gates keep watching the canary") {
        h.green.traffic(1000, 100);
        CHECK(tick(r, h.now(), {}).event == Event::RolledBack);
    }
}

TEST_CASE("promote mid-way skips the remaining steps", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    REQUIRE(passStep(h, r).event == Event::Advanced);
    REQUIRE_FALSE(act(r, Action::Promote, h.now()));
    CHECK(r.steps[1].verdict == "promoted");
    CHECK(r.steps[4].verdict == "skipped");
    CHECK(act(r, Action::Abort, h.now()).has_value());   // ended
}

TEST_CASE("abort returns to the starting split and says who", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    REQUIRE(passStep(h, r).event == Event::Advanced);
    REQUIRE_FALSE(act(r, Action::Abort, h.now(), "aborted by a forced split"));
    CHECK(r.split() == config::Split{100, 0});
    CHECK(r.steps[1].verdict == "aborted");
    CHECK(r.reason == "aborted by a forced split at step 2/5 (5% green)");
}

TEST_CASE("resume applies only to a paused or suspended rollout", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    CHECK(act(r, Action::Resume, h.now()) == std::optional<std::string>("the rollout is not paused"));
}

// A rollout 8 s into its second step, seen by a new process (its counters start from zero).
Rollout inStepTwoOfANewProcess(Harness& h) {
    Rollout r = start(h);
    REQUIRE(passStep(h, r).event == Event::Advanced);
    h.advance(8s);
    h.green = {};
    h.blue = {};
    return r;
}

TEST_CASE("a restart restarts the step's window; the third restart in a step rolls back", "[rollout][controller]") {
    Harness h;
    Rollout r = inStepTwoOfANewProcess(h);
    CHECK(onRestart(r, h.now()).event == Event::None);
    CHECK(r.steps[1].restarts == 1);
    CHECK(r.stepElapsed(h.now().steady) == 0ms);
    h.advance(9s);
    CHECK(tick(r, h.now(), {}).event == Event::None);   // 9 s of a fresh window
    CHECK(onRestart(r, h.now()).event == Event::None);
    const TickResult third = onRestart(r, h.now());
    CHECK(third.event == Event::RolledBack);
    CHECK(r.split() == config::Split{100, 0});
    CHECK(r.steps[1].reason == "the daemon restarted 3 times within this step");
}

TEST_CASE("an upgrade restarts the step's window but never counts as a restart", "[rollout][controller]") {
    Harness h;
    Rollout r = inStepTwoOfANewProcess(h);
    for (int i = 0; i < 5; ++i) {
        const TickResult result = onHandover(r, h.now());
        CHECK(result.event == Event::None);
        CHECK(result.message == "restarted the window of step 2/5 (5% green) after an upgrade (not counted as a restart)");
    }
    CHECK(r.steps[1].restarts == 0);
    CHECK(r.step == 1);
    CHECK(r.active());
    CHECK(r.stepElapsed(h.now().steady) == 0ms);
}

TEST_CASE("restarts count per step", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    CHECK(onRestart(r, h.now()).event == Event::None);
    CHECK(onRestart(r, h.now()).event == Event::None);
    REQUIRE(passStep(h, r).event == Event::Advanced);
    CHECK(onRestart(r, h.now()).event == Event::None);
    CHECK(r.active());
}

TEST_CASE("a paused rollout stays paused across a restart", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    REQUIRE_FALSE(act(r, Action::Pause, h.now()));
    onRestart(r, h.now());
    h.advance(1h);
    CHECK(r.phase == Phase::Paused);
    CHECK(r.stepElapsed(h.now().steady) == 0ms);
}

TEST_CASE("a rollout to blue moves blue's share", "[rollout][controller]") {
    Harness h;
    RolloutPlan p = plan({10, 100});
    p.to = Colour::Blue;
    Rollout r = begin(1, p, config::Split{0, 100}, std::nullopt, h.now());
    CHECK(r.split() == config::Split{10, 90});
    h.blue.traffic(200);
    h.advance(10s);
    REQUIRE(tick(r, h.now(), {}).event == Event::Advanced);
    CHECK(r.split() == config::Split{100, 0});
}

TEST_CASE("an ejection that ended within the step still fails it", "[rollout][controller]") {
    Harness h;
    Rollout r = start(h);
    h.green.sample.ejections += 1;
    CHECK(tick(r, h.now(), {}).event == Event::RolledBack);
    CHECK(r.steps[0].reason == "outlier detection ejected 1 target backend(s) during the step");
}

TEST_CASE("fleet: a record of the same step keeps this member's window; a new step starts one", "[rollout][fleet]") {
    Harness h;
    h.green.traffic(50);
    Rollout here = begin(7, plan(), config::Split{100, 0}, std::nullopt, h.now());
    h.advance(4s);
    h.green.traffic(30);

    Rollout same = here;   // as another member wrote it: no window
    same.stepStart = {};
    same.windowStart = {};
    adoptWindow(same, &here, h.now());
    CHECK(same.stepElapsed(h.now().steady) == 4s);
    CHECK(same.targetWindow(h.now()).attempts == 30);

    // Paused elsewhere: the clock stops here too; resumed 3 s later: those 3 s do not count.
    Rollout paused = here;
    paused.phase = Phase::Paused;
    adoptWindow(paused, &here, h.now());
    h.advance(3s);
    Rollout resumed = paused;
    resumed.phase = Phase::Running;
    resumed.pausedAt.reset();
    adoptWindow(resumed, &paused, h.now());
    CHECK(resumed.stepElapsed(h.now().steady) == 4s);

    Rollout nextStep = here;
    nextStep.step = 1;
    adoptWindow(nextStep, &here, h.now());
    CHECK(nextStep.stepElapsed(h.now().steady) == 0s);
    CHECK(nextStep.targetWindow(h.now()).attempts == 0);

    Rollout fresh = here;   // first seen here (a member that just started): window from now
    adoptWindow(fresh, nullptr, h.now());
    CHECK(fresh.stepElapsed(h.now().steady) == 0s);
}
