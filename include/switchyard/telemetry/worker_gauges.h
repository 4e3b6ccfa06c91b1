#pragma once

// Gauges one worker keeps about itself (splice pipes), one cache line per
// worker: the worker stores, the metrics scrape loads. Sized by
// setWorkerSlots() (traffic_counters.h), before any worker starts.

#include <atomic>
#include <cstdint>

namespace switchyard::telemetry {

struct alignas(64) WorkerGauges {
    std::atomic<int64_t> splicePipesInUse{0};   // pipes a bulk flow holds now
    std::atomic<int64_t> splicePipesPooled{0};  // empty pipes kept for the next bulk flow
};

WorkerGauges& workerGauges(unsigned worker);

} // namespace switchyard::telemetry
