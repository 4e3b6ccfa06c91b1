#include "switchyard/rollout/sli_window.h"

#include <catch2/catch.hpp>

#include "fake_pool.h"

using namespace switchyard;
using namespace switchyard::rollout;

TEST_CASE("a window holds only what happened between its two samples", "[rollout][sli]") {
    test::FakePool pool;
    pool.traffic(100, 0, 500);   // before the window: slow and clean
    const PoolSample start = pool.sample;
    pool.traffic(200, 10, 2);
    pool.sample.earlyCloses += 10;
    const PoolSli w = windowSli(start, pool.sample);
    CHECK(w.attempts == 200);
    CHECK(w.errors == 20);
    CHECK(w.errorRate() == Approx(0.1));
    CHECK(w.ttfbSamples == 190);
    CHECK(w.ttfbP99Ms == Approx(2.0).epsilon(0.05));   // the earlier 500 ms are outside
}

TEST_CASE("an empty window has no error rate and no latency", "[rollout][sli]") {
    test::FakePool pool;
    pool.traffic(10);
    const PoolSli w = windowSli(pool.sample, pool.sample);
    CHECK(w.attempts == 0);
    CHECK(w.errorRate() == 0.0);
    CHECK(w.ttfbP99Ms == 0.0);
}

TEST_CASE("counters that went backwards start the window from zero", "[rollout][sli]") {
    test::FakePool before;
    before.traffic(500);
    test::FakePool after;
    after.traffic(7, 1);
    const PoolSli w = windowSli(before.sample, after.sample);
    CHECK(w.attempts == 7);
    CHECK(w.errors == 1);
}

TEST_CASE("samplePool sums the workers' counters of a pool", "[rollout][sli]") {
    telemetry::setWorkerSlots(2);
    telemetry::PoolCounters counters;
    counters.traffic.slot(0).connectAttempts.add(3);
    counters.traffic.slot(1).connectAttempts.add(4);
    counters.traffic.slot(1).connectFailures.add(1);
    counters.traffic.slot(0).localErrors.add(5);   // never the backend's fault
    counters.latency(1).ttfb.record(3000);
    const PoolSample s = samplePool(counters);
    CHECK(s.attempts == 7);
    CHECK(s.failures == 1);
    CHECK(s.ttfb.count == 1);
    telemetry::setWorkerSlots(1);
}
