#include "switchyard/routing/outlier_trip.h"

namespace switchyard::routing {

bool noteBackendFailure(const ServiceRoute& service, BackendState& backend, uint32_t failuresInARow) {
    const uint32_t threshold = service.outlierConsecutiveFailures;
    if (threshold == 0 || failuresInARow < threshold) return false;
    if (backend.ejected.load(std::memory_order_relaxed)) return false;
    // Rare (a run reached the threshold), so a scan of the pool is fine here.
    const PoolRoute& pool = service.pool(backend.colour);
    bool member = false;
    uint32_t ejected = 0;
    for (const BackendRoute& b : pool.backends) {
        if (b.handle.get() == &backend)
            member = true;
        else if (b.handle->ejected.load(std::memory_order_relaxed))
            ++ejected;
    }
    // A session routed by an older snapshot may hold a backend that left.
    if (!member) return false;
    if (ejected + 1 > maxEjected(pool.backends.size(), service.outlierMaxEjectionPercent)) return false;
    bool expected = false;
    if (!backend.ejected.compare_exchange_strong(expected, true, std::memory_order_relaxed)) return false;
    if (service.state) service.state->outlierTrips.fetch_add(1, std::memory_order_relaxed);
    return true;
}

} // namespace switchyard::routing
