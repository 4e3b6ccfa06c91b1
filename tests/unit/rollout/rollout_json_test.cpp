#include "switchyard/rollout/rollout_json.h"

#include <catch2/catch.hpp>

using namespace switchyard;
using namespace switchyard::rollout;
using namespace std::chrono_literals;

TEST_CASE("a rollout survives the state file's JSON", "[rollout][json]") {
    RolloutPlan p;
    p.steps = {1, 50, 100};
    p.hold = 2s;
    p.maxHold = 8s;
    p.gates.maxErrorRate = 0.01;
    p.gates.maxTtfbP99 = 200ms;
    p.gates.minConnections = 5;
    Now now;
    now.unixMs = 42;
    Rollout r = begin(9, p, config::Split{100, 0}, std::nullopt, now);
    now.samples[1].attempts = 10;
    now.steady += 3s;
    REQUIRE(tick(r, now, {}).event == Event::Advanced);
    REQUIRE_FALSE(act(r, Action::Pause, now));

    const Rollout back = restoreJson(nlohmann::json::parse(persistJson(r).dump()));
    CHECK(back.id == 9);
    CHECK(back.plan == r.plan);
    CHECK(back.phase == Phase::Paused);
    CHECK(back.step == 1);
    CHECK(back.startSplit == config::Split{100, 0});
    CHECK_FALSE(back.startRollbackSplit);
    REQUIRE(back.steps.size() == 3);
    CHECK(back.steps[0].verdict == "passed");
    CHECK(back.steps[0].target.attempts == 10);
    CHECK(back.steps[0].gates.size() == r.steps[0].gates.size());
    CHECK(back.steps[1].verdict == "running");
}

TEST_CASE("a malformed rollout in the state file is an error, not a guess", "[rollout][json]") {
    RolloutPlan p;
    p.steps = {100};
    Rollout r = begin(1, p, config::Split{100, 0}, std::nullopt, Now{});
    auto j = persistJson(r);
    j["step"] = 3;
    CHECK_THROWS(restoreJson(j));
    j = persistJson(r);
    j["state"] = "sideways";
    CHECK_THROWS(restoreJson(j));
}

TEST_CASE("status lists every step and the live window's gates", "[rollout][json]") {
    RolloutPlan p;
    p.steps = {5, 100};
    p.hold = 10s;
    p.maxHold = 40s;
    p.gates.maxErrorRate = 0.01;
    p.gates.minConnections = 10;
    Now now;
    Rollout r = begin(3, p, config::Split{100, 0}, std::nullopt, now);
    now.samples[1].attempts = 4;
    now.steady += 2s;
    const auto j = statusJson(r, now);
    CHECK(j["state"] == "running");
    CHECK(j["step"] == 1);
    CHECK(j["steps_total"] == 2);
    CHECK(j["split"]["green"] == 5);
    CHECK(j["window"]["time_left_ms"] == 8000);
    CHECK(j["window"]["target"]["attempts"] == 4);
    CHECK(j["window"]["gates"][0]["gate"] == "min_connections");
    CHECK(j["window"]["gates"][0]["verdict"] == "pending");
    CHECK(j["history"].size() == 2);
    CHECK(j["history"][1]["verdict"] == "pending");
}
