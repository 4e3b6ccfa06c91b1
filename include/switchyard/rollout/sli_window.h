#pragma once

// SLIs of one pool over a window: the difference of two cumulative samples of
// the pool's counters (telemetry::PoolCounters). Sampling sums the workers'
// copies on the control thread; the data path only ever bumps its own slot.

#include <cstdint>

#include "switchyard/telemetry/histogram.h"
#include "switchyard/telemetry/traffic_counters.h"

namespace switchyard::rollout {

// Cumulative counters of one pool at one instant.
struct PoolSample {
    uint64_t attempts = 0;       // upstream connects tried
    uint64_t failures = 0;       // ... that failed for the backend's reason (local errors never count)
    uint64_t earlyCloses = 0;    // backend closed or reset before its first byte
    uint64_t connections = 0;    // upstream connections established
    uint64_t ejections = 0;      // outlier ejections of the pool's backends (filled by the control plane)
    telemetry::HistogramData connect;
    telemetry::HistogramData ttfb;
};

PoolSample samplePool(const telemetry::PoolCounters& counters);

// What a pool did within a window.
struct PoolSli {
    uint64_t attempts = 0;
    uint64_t errors = 0;         // failures + early closes
    uint64_t connections = 0;
    uint64_t ejections = 0;
    uint64_t connectSamples = 0;
    uint64_t ttfbSamples = 0;
    double connectP50Ms = 0;
    double connectP99Ms = 0;
    double ttfbP50Ms = 0;
    double ttfbP99Ms = 0;

    // (failed connects + early closes) / attempts; 0 without attempts.
    double errorRate() const { return attempts == 0 ? 0.0 : static_cast<double>(errors) / static_cast<double>(attempts); }
};

// The window from `start` to `end`. Counters never go backwards; if they
// appear to (a pool's counters replaced), the window starts from zero.
PoolSli windowSli(const PoolSample& start, const PoolSample& end);

} // namespace switchyard::rollout
