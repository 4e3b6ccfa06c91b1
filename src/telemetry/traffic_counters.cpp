#include "switchyard/telemetry/traffic_counters.h"

namespace switchyard::telemetry {
namespace {
std::atomic<unsigned> g_slots{1};
}

void setWorkerSlots(unsigned slots) { g_slots.store(slots == 0 ? 1 : slots); }
unsigned workerSlots() { return g_slots.load(); }

TrafficCounters::TrafficCounters() : count_(workerSlots()), slots_(new TrafficSlot[count_]) {}

TrafficTotals TrafficCounters::totals() const {
    TrafficTotals t;
    for (unsigned i = 0; i < count_; ++i) {
        const TrafficSlot& s = slots_[i];
        t.connectAttempts += s.connectAttempts.get();
        t.connectFailures += s.connectFailures.get();
        t.localErrors += s.localErrors.get();
        t.connections += s.connections.get();
        t.earlyCloses += s.earlyCloses.get();
        t.bytesIn += s.bytesIn.get();
        t.bytesOut += s.bytesOut.get();
        for (int r = 0; r < kCloseReasonSlots; ++r) t.closed[static_cast<std::size_t>(r)] += s.closed[static_cast<std::size_t>(r)].get();
    }
    return t;
}

PoolCounters::PoolCounters() : count_(workerSlots()), latency_(new PoolLatencySlot[count_]) {}

HistogramData PoolCounters::connectHistogram() const {
    HistogramData d;
    for (unsigned i = 0; i < count_; ++i) latency_[i].connect.addTo(d);
    return d;
}

HistogramData PoolCounters::ttfbHistogram() const {
    HistogramData d;
    for (unsigned i = 0; i < count_; ++i) latency_[i].ttfb.addTo(d);
    return d;
}

} // namespace switchyard::telemetry
