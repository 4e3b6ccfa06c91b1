#include "switchyard/control/snapshot_builder.h"

#include <catch2/catch.hpp>

#include "switchyard/config/config_loader.h"

using namespace switchyard;
using namespace switchyard::control;
using namespace std::chrono_literals;

namespace {

ServiceEntry webEntry() {
    auto c = config::loadConfigString(R"(
services:
  - name: web
    listen: 127.0.0.1:8080
    drain_timeout: 30s
    pools:
      blue: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002, weight: 50 } ]
      green: [ { address: 127.0.0.1:9003 } ]
)",
                                      "t.yaml");
    REQUIRE(c.ok());
    ServiceEntry e = makeServiceEntry(c->services[0]);
    for (auto& p : e.pools) p.lastEffectiveWeight = e.effectiveSplit().weight(p.colour);
    return e;
}

} // namespace

TEST_CASE("A pool whose effective weight falls to 0 drains until drain_timeout", "[control][snapshot]") {
    ServiceEntry web = webEntry();
    const auto now = routing::Clock::now();
    web.split = {0, 100};
    updatePoolDrains(web, now);
    CHECK(web.pool(config::Colour::Blue).drainDeadline == now + 30s);
    CHECK(web.pool(config::Colour::Green).drainDeadline == routing::kNoDeadline);

    MasterState state;
    state.services.push_back(web);
    auto snapshot = buildSnapshot(state);
    const auto& blue = snapshot->services[0].pool(config::Colour::Blue);
    CHECK(blue.weight == 0);
    CHECK(blue.draining);
    for (const auto& b : blue.backends) {
        CHECK(b.draining);
        CHECK(b.drainDeadline == now + 30s);
        CHECK(b.weight == (b.handle->key == "127.0.0.1:9001" ? 100u : 50u));
    }
}

TEST_CASE("A pool that comes back before its deadline stops draining", "[control][snapshot]") {
    ServiceEntry web = webEntry();
    const auto now = routing::Clock::now();
    web.split = {0, 100};
    updatePoolDrains(web, now);
    web.split = {100, 0};
    updatePoolDrains(web, now + 1s);
    CHECK(web.pool(config::Colour::Blue).drainDeadline == routing::kNoDeadline);
    CHECK(web.pool(config::Colour::Green).drainDeadline == now + 1s + 30s);
}

TEST_CASE("An operator-drained backend stays draining and takes no new connections", "[control][snapshot]") {
    ServiceEntry web = webEntry();
    const auto now = routing::Clock::now();
    BackendEntry* b = web.pool(config::Colour::Blue).find(*config::parseEndpoint("127.0.0.1:9001"));
    b->adminState = AdminState::Drain;
    b->drainDeadline = now + 30s;
    MasterState state;
    state.services.push_back(web);
    auto snapshot = buildSnapshot(state);
    const auto& route = snapshot->services[0].pool(config::Colour::Blue).backends[0];
    CHECK(route.weight == 0);
    CHECK(route.draining);
    CHECK(route.drainDeadline == now + 30s);
    CHECK(snapshot->services[0].pool(config::Colour::Blue).backends[1].weight == 50);
    CHECK_FALSE(snapshot->services[0].pool(config::Colour::Blue).backends[1].draining);
}

TEST_CASE("An offline pool carries no weight, not even its split share", "[control][snapshot]") {
    ServiceEntry web = webEntry();
    web.split = {50, 50};
    web.pool(config::Colour::Green).offline = true;
    CHECK(web.effectiveSplit() == config::Split{50, 0});
    MasterState state;
    state.services.push_back(web);
    auto snapshot = buildSnapshot(state);
    CHECK(snapshot->services[0].pool(config::Colour::Green).offline);
    CHECK(snapshot->services[0].pool(config::Colour::Green).weight == 0);
}

TEST_CASE("The snapshot carries the outlier threshold; disabled detection carries 0", "[control][snapshot]") {
    auto outlier = [](bool enabled) {
        ServiceEntry web = webEntry();
        web.config.outlierDetection.enabled = enabled;
        web.config.outlierDetection.maxEjectionPercent = 50;
        MasterState state;
        state.services.push_back(web);
        const auto snapshot = buildSnapshot(state);
        const routing::ServiceRoute& s = snapshot->services[0];
        return std::pair{s.outlierConsecutiveFailures, s.outlierMaxEjectionPercent};
    };
    CHECK(outlier(true) == std::pair{5u, 50u});
    CHECK(outlier(false).first == 0u);
}

TEST_CASE("A retiring generation's snapshot drains every backend to one deadline, spread", "[control][snapshot]") {
    MasterState state;
    state.services.push_back(webEntry());
    auto snapshot = buildSnapshot(state);
    const auto deadline = routing::Clock::now() + 1h;
    auto retiring = drainingEverything(*snapshot, deadline, 60s);
    REQUIRE(retiring->services.size() == 1);
    const auto& web = retiring->services[0];
    CHECK(web.drainSpread == 60s);
    std::size_t backends = 0;
    for (const auto& pool : web.pools) {
        CHECK(pool.weight == 0);
        for (const auto& b : pool.backends) {
            ++backends;
            CHECK(b.draining);
            CHECK(b.drainDeadline == deadline);
            CHECK(b.weight == 0);
        }
    }
    CHECK(backends == 3);
    // The very same backends (their sessions are found by handle), and the original is untouched.
    CHECK(web.pool(config::Colour::Blue).backends[0].handle == snapshot->services[0].pool(config::Colour::Blue).backends[0].handle);
    CHECK_FALSE(snapshot->services[0].pool(config::Colour::Blue).backends[0].draining);
    CHECK(retiring->index == nullptr);   // workers look at every route again
}

TEST_CASE("The next generation's drains close a retired generation's backends by the earlier deadline",
          "[control][snapshot]") {
    MasterState state;
    state.services.push_back(webEntry());
    const auto now = routing::Clock::now();
    const auto deadline = now + 1h;
    auto retiring = drainingEverything(*buildSnapshot(state), deadline, 60s);
    const auto soon = now + 30s;
    SuccessorDrains drains;
    drains["web"] = ServiceDrains{3s, {{config::Colour::Blue, "127.0.0.1:9001", soon},
                                       {config::Colour::Green, "127.0.0.1:9001", now},       // not in green
                                       {config::Colour::Blue, "127.0.0.1:9002", now + 2h}}};   // later: no change
    drains["gone"] = ServiceDrains{1s, {{config::Colour::Blue, "127.0.0.1:9001", now}}};
    const auto after = withSuccessorDrains(*retiring, drains);
    const auto& web = after->services[0];
    CHECK(web.drainSpread == 3s);
    CHECK(web.pool(config::Colour::Blue).backends[0].drainDeadline == soon);
    CHECK(web.pool(config::Colour::Blue).backends[1].drainDeadline == deadline);
    CHECK(web.pool(config::Colour::Green).backends[0].drainDeadline == deadline);
    CHECK(after->index == nullptr);
    // Without drains (a backend enabled again), the retired snapshot's deadlines come back.
    const auto none = withSuccessorDrains(*retiring, {});
    CHECK(none->services.ptr(0) == retiring->services.ptr(0));
    // A retirement after an earlier one (a second upgrade) keeps an earlier deadline.
    const auto again = drainingEverything(*after, now + 2h, 1s);
    CHECK(again->services[0].pool(config::Colour::Blue).backends[0].drainDeadline == soon);
    CHECK(again->services[0].pool(config::Colour::Blue).backends[1].drainDeadline == deadline);
}
