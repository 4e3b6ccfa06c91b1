#include "switchyard/telemetry/histogram.h"

#include <bit>
#include <cmath>

namespace switchyard::telemetry {

int histogramBucket(uint64_t v) {
    if (v < static_cast<uint64_t>(kSubBuckets)) return static_cast<int>(v);
    const int exponent = 63 - std::countl_zero(v);   // >= kSubBucketBits
    const int octave = exponent - kSubBucketBits;
    if (octave >= kOctaves) return kHistogramBuckets - 1;
    const int sub = static_cast<int>((v >> octave) & (kSubBuckets - 1));
    return kSubBuckets + octave * kSubBuckets + sub;
}

uint64_t histogramBucketLow(int bucket) {
    if (bucket < kSubBuckets) return static_cast<uint64_t>(bucket);
    const int octave = (bucket - kSubBuckets) / kSubBuckets;
    const int sub = (bucket - kSubBuckets) % kSubBuckets;
    return (static_cast<uint64_t>(kSubBuckets + sub)) << octave;
}

uint64_t histogramBucketHigh(int bucket) {
    if (bucket + 1 >= kHistogramBuckets) return UINT64_MAX;
    return histogramBucketLow(bucket + 1) - 1;
}

void HistogramData::add(const HistogramData& other) {
    for (std::size_t i = 0; i < buckets.size(); ++i) buckets[i] += other.buckets[i];
    count += other.count;
    sumMicros += other.sumMicros;
}

HistogramData HistogramData::minus(const HistogramData& earlier) const {
    HistogramData out;
    for (std::size_t i = 0; i < buckets.size(); ++i)
        out.buckets[i] = buckets[i] >= earlier.buckets[i] ? buckets[i] - earlier.buckets[i] : 0;
    out.count = count >= earlier.count ? count - earlier.count : 0;
    out.sumMicros = sumMicros >= earlier.sumMicros ? sumMicros - earlier.sumMicros : 0;
    return out;
}

double HistogramData::quantile(double q) const {
    uint64_t total = 0;
    for (uint64_t b : buckets) total += b;
    if (total == 0) return 0;
    // The rank of the q-th observation (1-based), as Prometheus and HdrHistogram do.
    const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
    uint64_t seen = 0;
    for (int i = 0; i < kHistogramBuckets; ++i) {
        seen += buckets[static_cast<std::size_t>(i)];
        if (seen >= std::max<uint64_t>(rank, 1)) {
            const double low = static_cast<double>(histogramBucketLow(i));
            const double high = static_cast<double>(histogramBucketHigh(i));
            return i < kSubBuckets ? low : (low + high) / 2.0;
        }
    }
    return static_cast<double>(histogramBucketLow(kHistogramBuckets - 1));
}

uint64_t HistogramData::countAtMost(uint64_t micros) const {
    uint64_t n = 0;
    for (int i = 0; i < kHistogramBuckets; ++i) {
        if (histogramBucketHigh(i) > micros) break;
        n += buckets[static_cast<std::size_t>(i)];
    }
    return n;
}

void Histogram::addTo(HistogramData& out) const {
    for (std::size_t i = 0; i < buckets_.size(); ++i) out.buckets[i] += buckets_[i].load(std::memory_order_relaxed);
    out.count += count_.load(std::memory_order_relaxed);
    out.sumMicros += sum_.load(std::memory_order_relaxed);
}

} // namespace switchyard::telemetry
