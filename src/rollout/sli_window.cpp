#include "switchyard/rollout/sli_window.h"

namespace switchyard::rollout {
namespace {

uint64_t delta(uint64_t end, uint64_t start) { return end >= start ? end - start : end; }

} // namespace

PoolSample samplePool(const telemetry::PoolCounters& counters) {
    const telemetry::TrafficTotals t = counters.traffic.totals();
    PoolSample s;
    s.attempts = t.connectAttempts;
    s.failures = t.connectFailures;
    s.earlyCloses = t.earlyCloses;
    s.connections = t.connections;
    s.connect = counters.connectHistogram();
    s.ttfb = counters.ttfbHistogram();
    return s;
}

PoolSli windowSli(const PoolSample& start, const PoolSample& end) {
    PoolSli w;
    const bool reset = end.attempts < start.attempts;
    const PoolSample empty;
    const PoolSample& from = reset ? empty : start;
    w.attempts = delta(end.attempts, from.attempts);
    w.errors = delta(end.failures, from.failures) + delta(end.earlyCloses, from.earlyCloses);
    w.connections = delta(end.connections, from.connections);
    // A removed backend takes its ejections along: never count that as negative.
    w.ejections = end.ejections > start.ejections ? end.ejections - start.ejections : 0;
    const telemetry::HistogramData connect = end.connect.minus(from.connect);
    const telemetry::HistogramData ttfb = end.ttfb.minus(from.ttfb);
    w.connectSamples = connect.count;
    w.ttfbSamples = ttfb.count;
    w.connectP50Ms = connect.quantile(0.50) / 1000.0;
    w.connectP99Ms = connect.quantile(0.99) / 1000.0;
    w.ttfbP50Ms = ttfb.quantile(0.50) / 1000.0;
    w.ttfbP99Ms = ttfb.quantile(0.99) / 1000.0;
    return w;
}

} // namespace switchyard::rollout
