#pragma once

// The data path's half of passive outlier detection. A worker calls this after
// counting a failure against a backend (a connect failure that is not a local
// error, or a close/reset before the backend's first byte) with the run length
// its fetch_add produced. When the run reaches the service's threshold the
// backend's `ejected` flag is set at once, so the very next pick on any worker
// skips it (RouteSelector), unless that would eject more than
// max_ejection_percent of its pool. The control thread then makes the ejection
// formal (OutlierDetector): logged, counted, timed, published.
//
// Lives in routing/ so that both proxy/ (the data path) and health/ (the
// control thread's OutlierDetector) use it without including each other.

#include <cstdint>

#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::routing {

// Returns true if this call ejected the backend.
bool noteBackendFailure(const ServiceRoute& service, BackendState& backend, uint32_t failuresInARow);

// How many of a pool of `members` backends may be ejected at once (rounded down).
inline uint32_t maxEjected(std::size_t members, uint32_t maxEjectionPercent) {
    return static_cast<uint32_t>(members * maxEjectionPercent / 100);
}

} // namespace switchyard::routing
