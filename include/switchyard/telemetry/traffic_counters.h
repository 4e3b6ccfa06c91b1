#pragma once

// Traffic counters of one backend and of one pool, one copy per worker so
// that a worker only ever writes its own cache lines (relaxed load + store,
// no contended read-modify-write; ThreadSanitizer stays quiet). Readers —
// the metrics scrape and the rollout gates — sum the copies.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "switchyard/telemetry/histogram.h"

namespace switchyard::telemetry {

// Set once at start, before any counters exist: how many workers write.
void setWorkerSlots(unsigned slots);
unsigned workerSlots();

// A counter with one writer.
class Counter {
public:
    void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

inline constexpr int kCloseReasonSlots = 16;   // >= proxy::kCloseReasonCount

// What one worker counted for one backend or pool.
struct alignas(64) TrafficSlot {
    Counter connectAttempts;          // upstream connects tried
    Counter connectFailures;          // ... that failed for a reason of the backend's
    Counter localErrors;              // ... that failed for a reason of this host's (EMFILE, EADDRNOTAVAIL)
    Counter connectTimeouts;          // ... of connectFailures: timed out (timeouts.connect)
    Counter connectRefused;           // ... of connectFailures: refused (ECONNREFUSED)
    Counter retries;                  // connects tried after an earlier one of the same client failed
    Counter connections;              // upstream connections established
    Counter earlyCloses;              // backend closed or reset before sending a byte
    Counter bytesIn;                  // client -> backend
    Counter bytesOut;                 // backend -> client
    std::array<Counter, kCloseReasonSlots> closed;   // by proxy::CloseReason
};

// The sum over workers.
struct TrafficTotals {
    uint64_t connectAttempts = 0;
    uint64_t connectFailures = 0;
    uint64_t localErrors = 0;
    uint64_t connectTimeouts = 0;
    uint64_t connectRefused = 0;
    uint64_t retries = 0;
    uint64_t connections = 0;
    uint64_t earlyCloses = 0;
    uint64_t bytesIn = 0;
    uint64_t bytesOut = 0;
    std::array<uint64_t, kCloseReasonSlots> closed{};
};

class TrafficCounters {
public:
    TrafficCounters();
    TrafficSlot& slot(unsigned worker) { return slots_[worker % count_]; }
    TrafficTotals totals() const;

private:
    unsigned count_;
    std::unique_ptr<TrafficSlot[]> slots_;
};

// Per pool: the counters plus the latency histograms rollout gates read.
struct alignas(64) PoolLatencySlot {
    Histogram connect;   // upstream connect time
    Histogram ttfb;      // first backend byte after the first client byte
    Histogram duration;  // upstream connection established to closed
};

// A worker's latency slot (26 KiB) is made by that worker at its first
// observation in the pool: a pool that carries no traffic on a worker holds
// none, so a configuration of thousands of idle pools costs little memory.
class PoolCounters {
public:
    PoolCounters();
    ~PoolCounters();
    PoolCounters(const PoolCounters&) = delete;
    PoolCounters& operator=(const PoolCounters&) = delete;

    TrafficCounters traffic;
    // Worker `worker` only (it is the slot's one writer).
    PoolLatencySlot& latency(unsigned worker) {
        std::atomic<PoolLatencySlot*>& slot = latency_[worker % count_];
        PoolLatencySlot* s = slot.load(std::memory_order_acquire);
        if (s == nullptr) [[unlikely]] {
            s = new PoolLatencySlot();
            slot.store(s, std::memory_order_release);
        }
        return *s;
    }
    HistogramData connectHistogram() const;
    HistogramData ttfbHistogram() const;
    HistogramData durationHistogram() const;

private:
    template <class Pick>
    HistogramData sum(Pick pick) const;

    unsigned count_;
    std::unique_ptr<std::atomic<PoolLatencySlot*>[]> latency_;
};

using PoolCountersPtr = std::shared_ptr<PoolCounters>;

} // namespace switchyard::telemetry
