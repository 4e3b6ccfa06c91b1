#include "switchyard/telemetry/traffic_counters.h"

#include <mutex>
#include <vector>

#include "switchyard/telemetry/worker_gauges.h"

namespace switchyard::telemetry {
namespace {
std::atomic<unsigned> g_slots{1};
// Grown only by setWorkerSlots, before any worker runs; an old array is kept
// so a reference handed out earlier (tests) stays valid.
struct GaugeArray {
    std::unique_ptr<WorkerGauges[]> gauges;
    unsigned size;
};
std::mutex g_gaugesMutex;
std::vector<std::unique_ptr<GaugeArray>> g_allGauges;   // every array ever handed out
GaugeArray g_firstGauges{std::make_unique<WorkerGauges[]>(1), 1};
std::atomic<GaugeArray*> g_gauges{&g_firstGauges};
} // namespace

void setWorkerSlots(unsigned slots) {
    slots = slots == 0 ? 1 : slots;
    std::lock_guard lock(g_gaugesMutex);
    if (slots > g_gauges.load()->size) {
        g_allGauges.push_back(std::make_unique<GaugeArray>(GaugeArray{std::make_unique<WorkerGauges[]>(slots), slots}));
        g_gauges.store(g_allGauges.back().get());
    }
    g_slots.store(slots);
}
unsigned workerSlots() { return g_slots.load(); }

WorkerGauges& workerGauges(unsigned worker) {
    const GaugeArray* a = g_gauges.load();
    return a->gauges[worker % a->size];
}

TrafficCounters::TrafficCounters() : count_(workerSlots()), slots_(new TrafficSlot[count_]) {}

TrafficTotals TrafficCounters::totals() const {
    TrafficTotals t;
    for (unsigned i = 0; i < count_; ++i) {
        const TrafficSlot& s = slots_[i];
        t.connectAttempts += s.connectAttempts.get();
        t.connectFailures += s.connectFailures.get();
        t.localErrors += s.localErrors.get();
        t.connectTimeouts += s.connectTimeouts.get();
        t.connectRefused += s.connectRefused.get();
        t.retries += s.retries.get();
        t.connections += s.connections.get();
        t.earlyCloses += s.earlyCloses.get();
        t.bytesIn += s.bytesIn.get();
        t.bytesOut += s.bytesOut.get();
        for (int r = 0; r < kCloseReasonSlots; ++r) t.closed[static_cast<std::size_t>(r)] += s.closed[static_cast<std::size_t>(r)].get();
    }
    return t;
}

PoolCounters::PoolCounters() : count_(workerSlots()), latency_(new std::atomic<PoolLatencySlot*>[count_]) {
    for (unsigned i = 0; i < count_; ++i) latency_[i].store(nullptr, std::memory_order_relaxed);
}

PoolCounters::~PoolCounters() {
    for (unsigned i = 0; i < count_; ++i) delete latency_[i].load(std::memory_order_acquire);
}

template <class Pick>
HistogramData PoolCounters::sum(Pick pick) const {
    HistogramData d;
    for (unsigned i = 0; i < count_; ++i)
        if (const PoolLatencySlot* s = latency_[i].load(std::memory_order_acquire)) pick(*s).addTo(d);
    return d;
}

HistogramData PoolCounters::connectHistogram() const {
    return sum([](const PoolLatencySlot& s) -> const Histogram& { return s.connect; });
}

HistogramData PoolCounters::durationHistogram() const {
    return sum([](const PoolLatencySlot& s) -> const Histogram& { return s.duration; });
}

HistogramData PoolCounters::ttfbHistogram() const {
    return sum([](const PoolLatencySlot& s) -> const Histogram& { return s.ttfb; });
}

} // namespace switchyard::telemetry
