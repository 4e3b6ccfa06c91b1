#pragma once

// Hand-written cumulative pool samples for the rollout tests.

#include "switchyard/rollout/rollout_controller.h"
#include "switchyard/telemetry/histogram.h"

namespace switchyard::rollout::test {

// A pool's cumulative counters that a test bumps like the data path would.
struct FakePool {
    PoolSample sample;

    // n connections: `errors` of them fail, the rest take `ttfbMs` to their first byte.
    FakePool& traffic(uint64_t n, uint64_t errors = 0, uint64_t ttfbMs = 1, uint64_t connectMs = 1) {
        sample.attempts += n;
        sample.failures += errors;
        sample.connections += n - errors;
        for (uint64_t i = 0; i < n - errors; ++i) {
            record(sample.connect, connectMs * 1000);
            record(sample.ttfb, ttfbMs * 1000);
        }
        return *this;
    }

    static void record(telemetry::HistogramData& h, uint64_t micros) {
        h.buckets[static_cast<std::size_t>(telemetry::histogramBucket(micros))] += 1;
        h.count += 1;
        h.sumMicros += micros;
    }
};

} // namespace switchyard::rollout::test
