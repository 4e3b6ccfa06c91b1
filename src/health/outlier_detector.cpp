#include "switchyard/health/outlier_detector.h"

#include <algorithm>
#include <unordered_set>

#include "switchyard/routing/outlier_trip.h"

namespace switchyard::health {
namespace {

constexpr uint32_t kMaxLevel = 20;

void release(routing::BackendState& b) {
    // A fresh run: the backend gets `consecutive_failures` chances again.
    b.consecutiveFailures.store(0, std::memory_order_relaxed);
    b.ejected.store(false, std::memory_order_relaxed);
}

} // namespace

std::vector<OutlierEvent> OutlierDetector::poll(const control::ServiceEntry& service, routing::TimePoint now) {
    std::vector<OutlierEvent> events;
    const config::OutlierDetectionConfig& cfg = service.config.outlierDetection;
    for (const control::PoolEntry& pool : service.pools) {
        // Ends first, so that a slot freed now can take a new ejection.
        uint32_t formal = 0;
        for (const control::BackendEntry& b : pool.backends) {
            auto it = records_.find(b.handle.get());
            if (it == records_.end() || !it->second.ejected) continue;
            Record& r = it->second;
            if (!cfg.enabled || now >= r.until) {
                r.ejected = false;
                r.returnedAt = now;
                release(*b.handle);
                events.push_back({OutlierEvent::Kind::Returned, b.handle, {}, b.handle->ejections.load()});
            } else {
                ++formal;
            }
        }
        const uint32_t cap = routing::maxEjected(pool.backends.size(), cfg.maxEjectionPercent);
        for (const control::BackendEntry& b : pool.backends) {
            if (!b.handle->ejected.load(std::memory_order_relaxed)) continue;
            Record& r = records_[b.handle.get()];
            if (r.ejected) continue;
            if (!cfg.enabled || formal + 1 > cap) {
                // Two workers raced past the cap, or detection was switched off.
                release(*b.handle);
                events.push_back({OutlierEvent::Kind::Refused, b.handle, {}, b.handle->ejections.load()});
                continue;
            }
            r.backend = b.handle;
            if (r.returnedAt != routing::TimePoint{} && cfg.baseEjection.count() > 0) {
                const auto quiet = (now - r.returnedAt) / cfg.baseEjection;
                r.level = quiet >= r.level ? 0 : r.level - static_cast<uint32_t>(quiet);
            }
            auto length = cfg.baseEjection;
            for (uint32_t i = 0; i < r.level && length < cfg.maxEjection; ++i) length *= 2;
            length = std::min(length, cfg.maxEjection);
            r.level = std::min(r.level + 1, kMaxLevel);
            r.ejected = true;
            r.until = now + length;
            ++formal;
            const uint32_t count = b.handle->ejections.fetch_add(1, std::memory_order_relaxed) + 1;
            events.push_back({OutlierEvent::Kind::Ejected, b.handle, length, count});
        }
    }
    return events;
}

bool OutlierDetector::ejected(const routing::BackendState* backend) const {
    auto it = records_.find(backend);
    return it != records_.end() && it->second.ejected;
}

routing::TimePoint OutlierDetector::ejectedUntil(const routing::BackendState* backend) const {
    auto it = records_.find(backend);
    return it != records_.end() && it->second.ejected ? it->second.until : routing::TimePoint{};
}

bool OutlierDetector::anyEjected(const control::ServiceEntry& service) const {
    if (records_.empty()) return false;
    for (const control::PoolEntry& pool : service.pools)
        for (const control::BackendEntry& b : pool.backends)
            if (ejected(b.handle.get())) return true;
    return false;
}

void OutlierDetector::dropGone() {
    // The record's own handle is the last one: no state, snapshot or session has the backend.
    std::erase_if(records_, [](const auto& entry) { return entry.second.backend.use_count() == 1; });
}

} // namespace switchyard::health
