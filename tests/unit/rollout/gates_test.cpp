#include "switchyard/rollout/gates.h"

#include <catch2/catch.hpp>

using namespace switchyard::rollout;
using namespace std::chrono_literals;

namespace {

PoolSli sli(uint64_t attempts, uint64_t errors, double ttfbP99 = 1, double connectP99 = 1) {
    PoolSli s;
    s.attempts = attempts;
    s.errors = errors;
    s.connections = attempts - errors;
    s.connectSamples = s.ttfbSamples = attempts - errors;
    s.connectP99Ms = connectP99;
    s.ttfbP99Ms = ttfbP99;
    return s;
}

const GateResult& gate(const GateReport& r, const std::string& name) {
    for (const auto& g : r.gates)
        if (g.gate == name) return g;
    FAIL("no gate " << name);
    return r.gates.front();
}

} // namespace

TEST_CASE("without min_connections samples every gate is pending, never failed", "[rollout][gates]") {
    Gates g;
    g.minConnections = 100;
    g.maxErrorRate = 0.01;
    const GateReport r = evaluateGates(g, sli(99, 50), sli(1000, 0));
    CHECK_FALSE(r.enoughSamples);
    CHECK_FALSE(r.failed);
    CHECK(gate(r, "min_connections").verdict == Verdict::Pending);
    CHECK(gate(r, "max_error_rate").verdict == Verdict::Pending);
}

TEST_CASE("max_error_rate compares failed connects plus early closes with attempts", "[rollout][gates]") {
    Gates g;
    g.minConnections = 10;
    g.maxErrorRate = 0.01;
    CHECK_FALSE(evaluateGates(g, sli(200, 2), {}).failed);   // exactly 1% passes
    const GateReport r = evaluateGates(g, sli(200, 3), {});
    CHECK(r.failed);
    CHECK(gate(r, "max_error_rate").observed == Approx(0.015));
    CHECK(gate(r, "max_error_rate").samples == 200);
    CHECK(r.failureSummary().find("max_error_rate 0.015 > 0.01 (200 attempts") != std::string::npos);
}

TEST_CASE("latency gates compare the window's p99 in milliseconds", "[rollout][gates]") {
    Gates g;
    g.minConnections = 10;
    g.maxTtfbP99 = 200ms;
    g.maxConnectP99 = 50ms;
    CHECK_FALSE(evaluateGates(g, sli(100, 0, 150, 10), {}).failed);
    const GateReport r = evaluateGates(g, sli(100, 0, 310, 10), {});
    CHECK(r.failed);
    CHECK(gate(r, "max_ttfb_p99").verdict == Verdict::Fail);
    CHECK(gate(r, "max_connect_p99").verdict == Verdict::Pass);
    CHECK(r.failureSummary() == "max_ttfb_p99 310.0ms > 200.0ms (100 samples)");
}

TEST_CASE("a latency gate without samples is skipped", "[rollout][gates]") {
    Gates g;
    g.minConnections = 10;
    g.maxTtfbP99 = 200ms;
    PoolSli t = sli(100, 0);
    t.ttfbSamples = 0;
    const GateReport r = evaluateGates(g, t, {});
    CHECK_FALSE(r.failed);
    CHECK(gate(r, "max_ttfb_p99").verdict == Verdict::Skipped);
}

TEST_CASE("the baseline ratio gate floors the baseline and waits for its samples", "[rollout][gates]") {
    Gates g;
    g.minConnections = 100;
    g.maxErrorRateVsBaseline = 2.0;
    // Baseline clean: the floor 0.001 makes the limit 0.002.
    CHECK_FALSE(evaluateGates(g, sli(1000, 2), sli(1000, 0)).failed);
    CHECK(evaluateGates(g, sli(1000, 3), sli(1000, 0)).failed);
    // Baseline at 1%: target may reach 2%.
    CHECK_FALSE(evaluateGates(g, sli(1000, 20), sli(1000, 10)).failed);
    CHECK(evaluateGates(g, sli(1000, 21), sli(1000, 10)).failed);
    // Too little baseline traffic: skipped, not failed.
    const GateReport r = evaluateGates(g, sli(1000, 500), sli(99, 0));
    CHECK_FALSE(r.failed);
    CHECK(gate(r, "max_error_rate_vs_baseline").verdict == Verdict::Skipped);
}
