#pragma once

// Log-linear latency histogram in microseconds: 32 linear sub-buckets per
// power of two, so a quantile read from bucket midpoints is within ~1.6%.
// One writer (a worker) stores with relaxed atomics, no read-modify-write
// shared between threads; readers (scrapes, rollout gates) sum the workers'
// copies into HistogramData.

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace switchyard::telemetry {

inline constexpr int kSubBucketBits = 5;
inline constexpr int kSubBuckets = 1 << kSubBucketBits;            // 32
inline constexpr int kOctaves = 33;                               // up to ~2^37 us (~38 h)
inline constexpr int kHistogramBuckets = kSubBuckets + kOctaves * kSubBuckets;

int histogramBucket(uint64_t micros);
uint64_t histogramBucketLow(int bucket);    // smallest value in the bucket
uint64_t histogramBucketHigh(int bucket);   // largest value in the bucket

// A plain copy for arithmetic: sums over workers, window differences.
struct HistogramData {
    std::vector<uint64_t> buckets = std::vector<uint64_t>(kHistogramBuckets, 0);
    uint64_t count = 0;
    uint64_t sumMicros = 0;

    void add(const HistogramData& other);
    HistogramData minus(const HistogramData& earlier) const;
    // q in [0,1]; 0 when empty. Returns microseconds.
    double quantile(double q) const;
    // Observations <= micros (for Prometheus `le` buckets).
    uint64_t countAtMost(uint64_t micros) const;
};

class Histogram {
public:
    void record(uint64_t micros) {
        bump(buckets_[static_cast<std::size_t>(histogramBucket(micros))], 1);
        bump(count_, 1);
        bump(sum_, micros);
    }
    void addTo(HistogramData& out) const;

private:
    static void bump(std::atomic<uint64_t>& a, uint64_t n) {
        a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    std::array<std::atomic<uint64_t>, kHistogramBuckets> buckets_{};
    std::atomic<uint64_t> count_{0};
    std::atomic<uint64_t> sum_{0};
};

} // namespace switchyard::telemetry
