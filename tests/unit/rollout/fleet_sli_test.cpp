#include "switchyard/rollout/fleet_sli.h"

#include <catch2/catch.hpp>

#include "fake_pool.h"
#include "switchyard/config/config.h"
#include "switchyard/rollout/rollout_json.h"

using namespace switchyard;
using namespace switchyard::rollout;

namespace {

PoolSamples greenOnly(const test::FakePool& green) {
    PoolSamples s;
    s[config::index(config::Colour::Green)] = green.sample;
    return s;
}

const PoolSample& green(const PoolSamples& s) { return s[config::index(config::Colour::Green)]; }

} // namespace

TEST_CASE("fleet SLIs sum what every member counted since its first sample, this member's live", "[rollout][fleet]") {
    FleetSli fleet;
    test::FakePool a, b;
    b.traffic(1000, 500);   // before the rollout: not the rollout's
    fleet.observe("lb-b", {{"web", greenOnly(b)}});
    a.traffic(100);
    fleet.observe("lb-a", {{"web", greenOnly(a)}});   // its own published copy: not counted twice
    b.traffic(40, 10);
    fleet.observe("lb-b", {{"web", greenOnly(b)}});
    const PoolSamples total = fleet.sum("web", "lb-a", greenOnly(a));
    CHECK(green(total).attempts == 140);
    CHECK(green(total).failures == 10);
    CHECK(green(total).connect.count == 130);
    CHECK(green(fleet.sum("api", "lb-a", {})).attempts == 0);
}

TEST_CASE("fleet SLIs never go back: a member gone, restarted or done keeps its counts", "[rollout][fleet]") {
    FleetSli fleet;
    test::FakePool b, c, d;
    fleet.observe("lb-b", {{"web", greenOnly(b)}});
    fleet.observe("lb-c", {{"web", greenOnly(c)}});
    fleet.observe("lb-d", {{"web", greenOnly(d)}});
    b.traffic(40, 10);
    c.traffic(30, 3);
    d.traffic(7, 7);
    fleet.observe("lb-b", {{"web", greenOnly(b)}});
    fleet.observe("lb-c", {{"web", greenOnly(c)}});
    fleet.observe("lb-d", {{"web", greenOnly(d)}});
    fleet.forget("lb-b");
    test::FakePool cRestarted;
    cRestarted.traffic(5, 1);
    fleet.observe("lb-c", {{"web", greenOnly(cRestarted)}});
    fleet.observe("lb-d", {});   // its rollout ended there: stops publishing
    const PoolSamples total = fleet.sum("web", "lb-a", {});
    CHECK(green(total).attempts == 82);
    CHECK(green(total).failures == 21);
}

TEST_CASE("a pool sample survives its published JSON", "[rollout][fleet][json]") {
    test::FakePool p;
    p.traffic(12, 2, 7, 3);
    p.sample.earlyCloses = 4;
    p.sample.ejections = 1;
    const PoolSample back = sampleFrom(nlohmann::json::parse(sampleJson(p.sample).dump()));
    CHECK(back.attempts == 12);
    CHECK(back.failures == 2);
    CHECK(back.earlyCloses == 4);
    CHECK(back.connections == 10);
    CHECK(back.ejections == 1);
    CHECK(back.ttfb.buckets == p.sample.ttfb.buckets);
    CHECK(back.connect.sumMicros == p.sample.connect.sumMicros);
    CHECK_THROWS(sampleFrom(nlohmann::json::parse(R"({"attempts": 1})")));
    nlohmann::json bad = sampleJson(p.sample);
    bad["ttfb"]["buckets"] = nlohmann::json::array({nlohmann::json::array({100000, 1})});
    CHECK_THROWS(sampleFrom(bad));
}
