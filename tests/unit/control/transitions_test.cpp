#include "switchyard/control/transitions.h"

#include <catch2/catch.hpp>

#include "switchyard/config/config_loader.h"

using namespace switchyard;
using namespace switchyard::control;
using config::Colour;

namespace {

const char* kYaml = R"(
services:
  - name: web
    listen: 127.0.0.1:8080
    drain_timeout: 30s
    pools:
      blue: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 } ]
      green: [ { address: 127.0.0.1:9003 } ]
)";

ServiceEntry web() {
    auto c = config::loadConfigString(kYaml, "test.yaml");
    REQUIRE(c.ok());
    return makeServiceEntry(c->services.at(0));
}

config::Endpoint ep(const char* text) { return *config::parseEndpoint(text); }

// A fixed moment: transitions read no clock of their own.
const routing::TimePoint kT0 = routing::TimePoint(std::chrono::hours(1000));
rollout::Now at(routing::TimePoint t) {
    rollout::Now now;
    now.steady = t;
    now.unixMs = 1'700'000'000'000;
    return now;
}

} // namespace

TEST_CASE("split: a table of inputs and what each does", "[control][transitions]") {
    struct Row {
        const char* what;
        config::Split split;
        bool force;
        bool greenHealthy;
        bool ok;
        bool changed;
        const char* code;
        config::Split after;
    };
    const Row rows[] = {
        {"moves weight to a healthy pool", {90, 10}, false, true, true, true, "", {90, 10}},
        {"the split it already has", {100, 0}, false, true, true, false, "", {100, 0}},
        {"no weight at all", {0, 0}, true, true, false, false, "refused", {100, 0}},
        {"onto a pool with no healthy backend", {0, 100}, false, false, false, false, "refused", {100, 0}},
        {"forced onto it", {0, 100}, true, false, true, true, "", {0, 100}},
    };
    for (const Row& row : rows) {
        SECTION(row.what) {
            ServiceEntry s = web();
            s.pool(Colour::Green).backends[0].healthy = row.greenHealthy;
            const Outcome o = transitions::split(s, row.split, {std::nullopt, row.force}, "split", at(kT0));
            CHECK(o.ok == row.ok);
            CHECK(o.changed == row.changed);
            CHECK(o.code == row.code);
            CHECK(s.split == row.after);
            if (row.ok && row.changed) CHECK(s.rollbackSplit == config::Split{100, 0});
        }
    }
}

TEST_CASE("cutover keeps a split that is already all on the colour", "[control][transitions]") {
    ServiceEntry s = web();
    CHECK(transitions::cutoverSplit(s, Colour::Green) == config::Split{0, 100});
    CHECK(transitions::cutoverSplit(s, Colour::Blue) == config::Split{100, 0});
    s.split = {0, 7};
    CHECK(transitions::cutoverSplit(s, Colour::Green) == config::Split{0, 7});
}

TEST_CASE("rollback swaps the split with the one before, and back", "[control][transitions]") {
    ServiceEntry s = web();
    CHECK(transitions::rollback(s, {}, at(kT0)).code == "refused");
    REQUIRE(transitions::split(s, {0, 100}, {}, "cutover", at(kT0)).ok);
    REQUIRE(transitions::rollback(s, {}, at(kT0)).ok);
    CHECK(s.split == config::Split{100, 0});
    REQUIRE(transitions::rollback(s, {}, at(kT0)).ok);
    CHECK(s.split == config::Split{0, 100});
}

TEST_CASE("backend admin states set drain deadlines from the given time", "[control][transitions]") {
    ServiceEntry s = web();
    REQUIRE(transitions::backendAdminState(s, Colour::Blue, ep("127.0.0.1:9001"), AdminState::Drain, {}, kT0).ok);
    const BackendEntry& b = *s.pool(Colour::Blue).find(ep("127.0.0.1:9001"));
    CHECK(b.drainDeadline == kT0 + std::chrono::seconds(30));
    CHECK(transitions::backendAdminState(s, Colour::Blue, ep("127.0.0.1:9001"), AdminState::Drain, {}, kT0).changed ==
          false);
    CHECK(transitions::backendAdminState(s, Colour::Blue, ep("127.0.0.1:9999"), AdminState::Drain, {}, kT0).code ==
          "no_such_backend");
    // The last routable backend of the live pool is not disabled without force.
    CHECK(transitions::backendAdminState(s, Colour::Blue, ep("127.0.0.1:9002"), AdminState::Disabled, {}, kT0).code ==
          "refused");
}

TEST_CASE("remove drains, then housekeeping expires the backend at its deadline", "[control][transitions]") {
    ServiceEntry s = web();
    REQUIRE(transitions::removeBackend(s, Colour::Blue, ep("127.0.0.1:9001"), {}, kT0).ok);
    CHECK_FALSE(transitions::expireRemovedBackends(s, kT0 + std::chrono::seconds(29)));
    CHECK(s.pool(Colour::Blue).backends.size() == 2);
    CHECK(transitions::expireRemovedBackends(s, kT0 + std::chrono::seconds(30)));
    CHECK(s.pool(Colour::Blue).backends.size() == 1);
    REQUIRE(s.pool(Colour::Blue).removed.size() == 1);
    CHECK(s.pool(Colour::Blue).removed[0].address == ep("127.0.0.1:9001"));
}

TEST_CASE("add refuses a backend some pool already has; re-adding one being removed keeps it",
          "[control][transitions]") {
    ServiceEntry s = web();
    CHECK(transitions::addBackend(s, Colour::Green, ep("127.0.0.1:9001"), 100, {}, kT0).code == "already_exists");
    REQUIRE(transitions::addBackend(s, Colour::Green, ep("127.0.0.1:9004"), 50, {}, kT0).ok);
    CHECK(s.pool(Colour::Green).find(ep("127.0.0.1:9004"))->addedAtRuntime);
    REQUIRE(transitions::removeBackend(s, Colour::Green, ep("127.0.0.1:9004"), {}, kT0).ok);
    REQUIRE(transitions::addBackend(s, Colour::Green, ep("127.0.0.1:9004"), 70, {}, kT0).ok);
    const BackendEntry& b = *s.pool(Colour::Green).find(ep("127.0.0.1:9004"));
    CHECK_FALSE(b.removing);
    CHECK(b.weight == 70);
}

TEST_CASE("deadlines saturate instead of overflowing", "[control][transitions]") {
    CHECK(deadlineAfter(kT0, std::chrono::hours(24 * 365 * 100'000)) == routing::kNoDeadline);
    CHECK(deadlineAfter(kT0, std::chrono::seconds(5)) == kT0 + std::chrono::seconds(5));
}

TEST_CASE("reload keeps live facts and drains what the new config dropped", "[control][transitions]") {
    ServiceEntry old = web();
    REQUIRE(transitions::backendAdminState(old, Colour::Blue, ep("127.0.0.1:9001"), AdminState::Drain, {}, kT0).ok);
    old.pool(Colour::Blue).find(ep("127.0.0.1:9002"))->healthy = false;
    REQUIRE(transitions::split(old, {50, 50}, {}, "split", at(kT0)).ok);

    // The new config drops 9002, adds 9004 to green, keeps the split as it was.
    auto c = config::loadConfigString(R"(
services:
  - name: web
    listen: 127.0.0.1:8080
    drain_timeout: 30s
    slow_start: 10s
    pools:
      blue: [ { address: 127.0.0.1:9001 } ]
      green: [ { address: 127.0.0.1:9003 }, { address: 127.0.0.1:9004 } ]
)", "test.yaml");
    REQUIRE(c.ok());
    MergeReport report;
    const auto later = kT0 + std::chrono::seconds(5);
    const ServiceEntry s = transitions::reloaded(&old, c->services.at(0), report, later);
    CHECK(s.split == config::Split{50, 50});                      // the override is kept
    const BackendEntry& drained = *s.pool(Colour::Blue).find(ep("127.0.0.1:9001"));
    CHECK(drained.adminState == AdminState::Drain);
    CHECK(drained.drainDeadline == kT0 + std::chrono::seconds(30));   // not restarted by the reload
    CHECK(drained.handle == old.pool(Colour::Blue).find(ep("127.0.0.1:9001"))->handle);
    const BackendEntry& dropped = *s.pool(Colour::Blue).find(ep("127.0.0.1:9002"));
    CHECK(dropped.removing);
    CHECK(dropped.drainDeadline == later + std::chrono::seconds(30));
    CHECK_FALSE(dropped.healthy);                                   // its health came along
    const BackendEntry& joined = *s.pool(Colour::Green).find(ep("127.0.0.1:9004"));
    CHECK(joined.rampStart == later);                              // a new backend ramps up
    CHECK(s.revision == old.revision + 1);
    CHECK(s.generation == old.generation);
    CHECK(report.kept == std::vector<std::string>{"web: split blue=50 green=50", "web: blue backend 127.0.0.1:9001 drain"});
}

TEST_CASE("withIntent: another member's intent replaces the overrides; live facts stay this member's",
          "[control][transitions][fleet]") {
    ServiceEntry here = web();
    here.pool(Colour::Green).find(ep("127.0.0.1:9003"))->healthy = false;
    here.fallback = FallbackState{true, Colour::Blue, "blue has no healthy backend", 1};
    const auto handle = here.pool(Colour::Blue).find(ep("127.0.0.1:9001"))->handle;

    // What another member wrote: a cutover to green and a drained backend, at generation 7.
    ServiceEntry there = web();
    REQUIRE(transitions::split(there, {0, 100}, {std::nullopt, true}, "cutover", at(kT0)).ok);   // forced
    REQUIRE(transitions::backendAdminState(there, Colour::Blue, ep("127.0.0.1:9002"), AdminState::Drain, {}, kT0).ok);
    there.generation = 7;
    Overrides intent = overridesOf(there);
    intent.fallback = overridesOf(here).fallback;   // what the control plane does: fallback stays local

    MergeReport report;
    const auto later = kT0 + std::chrono::seconds(1);
    const ServiceEntry s =
        transitions::withIntent(&here, here.config, intent, transitions::IntentSource::Fleet, report, later);
    CHECK(s.split == config::Split{0, 100});
    CHECK(s.generation == 7);
    CHECK(s.revision == here.revision + 1);
    CHECK(s.pool(Colour::Blue).find(ep("127.0.0.1:9002"))->adminState == AdminState::Drain);
    CHECK(s.pool(Colour::Blue).find(ep("127.0.0.1:9001"))->handle == handle);   // the same backend, not a new one
    CHECK_FALSE(s.pool(Colour::Green).find(ep("127.0.0.1:9003"))->healthy);      // health is judged here
    CHECK(s.fallback.active);
    CHECK(s.fallback.reason == "blue has no healthy backend");
}

TEST_CASE("withIntent: a drain or remove from another member drains over drain_timeout, not at once",
          "[control][transitions][fleet]") {
    ServiceEntry here = web();
    ServiceEntry there = web();
    REQUIRE(transitions::backendAdminState(there, Colour::Green, ep("127.0.0.1:9003"), AdminState::Drain, {}, kT0).ok);
    REQUIRE(transitions::removeBackend(there, Colour::Blue, ep("127.0.0.1:9002"), {}, kT0).ok);
    MergeReport report;
    const auto later = kT0 + std::chrono::seconds(2);
    const ServiceEntry s = transitions::withIntent(&here, here.config, overridesOf(there),
                                                   transitions::IntentSource::Fleet, report, later);
    const BackendEntry& drained = *s.pool(Colour::Green).find(ep("127.0.0.1:9003"));
    CHECK(drained.adminState == AdminState::Drain);
    CHECK(drained.drainDeadline == later + std::chrono::seconds(30));
    const BackendEntry& removed = *s.pool(Colour::Blue).find(ep("127.0.0.1:9002"));
    CHECK(removed.removing);
    CHECK(removed.drainDeadline == later + std::chrono::seconds(30));
    // Applied again (the watch echoing the member's own change): the deadline does not move.
    const ServiceEntry again = transitions::withIntent(&s, s.config, overridesOf(s), transitions::IntentSource::Fleet,
                                                       report, later + std::chrono::seconds(5));
    CHECK(again.pool(Colour::Green).find(ep("127.0.0.1:9003"))->drainDeadline == later + std::chrono::seconds(30));
    CHECK(again.pool(Colour::Blue).find(ep("127.0.0.1:9002"))->drainDeadline == later + std::chrono::seconds(30));
}
