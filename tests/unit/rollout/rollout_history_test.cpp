#include "switchyard/rollout/rollout_history.h"

#include <catch2/catch.hpp>

using namespace switchyard;
using namespace switchyard::rollout;

namespace {

Rollout rolloutWith(uint64_t id, Phase phase, std::size_t step = 0, std::string reason = "") {
    Rollout r;
    r.id = id;
    r.plan.to = config::Colour::Green;
    r.plan.steps = {10, 50, 100};
    r.phase = phase;
    r.step = step;
    r.reason = std::move(reason);
    r.startedUnixMs = 1000 * static_cast<int64_t>(id);
    for (uint32_t p : r.plan.steps) {
        StepRecord step;
        step.percent = p;
        r.steps.push_back(step);
    }
    return r;
}

} // namespace

TEST_CASE("a rollout is recorded once, when it is seen to end", "[rollout][history]") {
    RolloutHistory history;
    Rollout r = rolloutWith(7, Phase::Running);
    history.observe("web", &r, 100);
    CHECK(history.entries("web").empty());   // running: not history yet

    r.phase = Phase::RolledBack;
    r.reason = "step 1/3 (10% green) failed: max_error_rate 0.2 > 0.01 (212 attempts)";
    r.steps[0].verdict = "failed";
    history.observe("web", &r, 200);
    history.observe("web", &r, 300);   // later publishes of the same ended rollout add nothing
    auto entries = history.entries("web");
    REQUIRE(entries.size() == 1);
    CHECK(entries[0]["id"] == 7);
    CHECK(entries[0]["outcome"] == "rolled_back");
    CHECK(entries[0]["reason"] == r.reason);
    CHECK(entries[0]["to"] == "green");
    CHECK(entries[0]["plan"] == nlohmann::json::array({10, 50, 100}));
    CHECK(entries[0]["step"] == 1);
    CHECK(entries[0]["percent"] == 10);
    CHECK(entries[0]["ended_unix_ms"] == 200);
    CHECK(entries[0]["steps"][0] == nlohmann::json({{"percent", 10}, {"verdict", "failed"}}));
    CHECK(history.entries("api").empty());
}

TEST_CASE("a rollout replaced while running is recorded as replaced", "[rollout][history]") {
    RolloutHistory history;
    Rollout first = rolloutWith(3, Phase::Running, 1);
    history.observe("web", &first, 100);
    Rollout second = rolloutWith(5, Phase::Running);   // a forced start, in the same change
    history.observe("web", &second, 200);
    auto entries = history.entries("web");
    REQUIRE(entries.size() == 1);
    CHECK(entries[0]["id"] == 3);
    CHECK(entries[0]["outcome"] == "replaced");
    CHECK(entries[0]["step"] == 2);
    CHECK(entries[0]["ended_unix_ms"] == 200);

    second.phase = Phase::Promoted;
    history.observe("web", &second, 300);
    entries = history.entries("web");
    REQUIRE(entries.size() == 2);
    CHECK(entries[0]["id"] == 5);   // newest first
    CHECK(entries[0]["outcome"] == "promoted");
}

TEST_CASE("only the last 20 rollouts of a service are kept", "[rollout][history]") {
    RolloutHistory history;
    for (uint64_t id = 1; id <= 25; ++id) {
        Rollout r = rolloutWith(id, Phase::Aborted, 0, "aborted by the operator");
        history.observe("web", &r, static_cast<int64_t>(id));
    }
    auto entries = history.entries("web");
    REQUIRE(entries.size() == RolloutHistory::kKept);
    CHECK(entries.front()["id"] == 25);
    CHECK(entries.back()["id"] == 6);
}

TEST_CASE("a service whose rollout disappears (reset, reload) records the running one as replaced",
          "[rollout][history]") {
    RolloutHistory history;
    history.observe("web", nullptr, 50);   // never had one: nothing
    CHECK(history.entries("web").empty());
    Rollout r = rolloutWith(9, Phase::Paused);
    history.observe("web", &r, 100);
    history.observe("web", nullptr, 200);
    auto entries = history.entries("web");
    REQUIRE(entries.size() == 1);
    CHECK(entries[0]["outcome"] == "replaced");
}
