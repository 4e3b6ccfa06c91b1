#pragma once

// The immutable routing state the workers route by. The control thread builds a
// new one for every change and publishes it whole (docs/semantics.md): a new
// connection sees all of the old snapshot or all of the new one. Routes are
// shared between snapshots: a change of one service builds that service's
// route and shares every other (a worker tells them apart by pointer).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/config/config.h"
#include "switchyard/routing/backend_state.h"
#include "switchyard/routing/service_index.h"
#include "switchyard/util/shared_list.h"

namespace switchyard::routing {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
inline constexpr TimePoint kNoDeadline = TimePoint::max();

struct BackendRoute {
    BackendHandle handle;
    // Weight for new connections after admin state, health and slow start:
    // 0 means this backend takes no new connections.
    uint32_t weight = 0;
    // Per-backend max_connections: at handle->active >= this, picks pass the
    // backend over for the pool's others. 0 = unlimited.
    uint32_t maxConnections = 0;
    // Open connections close at drainDeadline (spread over the service's drain_spread).
    bool draining = false;
    TimePoint drainDeadline = kNoDeadline;
};

struct PoolRoute {
    config::Colour colour = config::Colour::Blue;
    std::vector<BackendRoute> backends;
    uint32_t weight = 0;            // effective share of new connections (after fallback)
    bool offline = false;           // takes nothing, not even retries
    bool draining = false;
    TimePoint drainDeadline = kNoDeadline;
    // Equal signatures mean equal backend keys and weights in the same order, so a
    // worker's picker position survives the new snapshot.
    // 0 means "not computed": RouteSelector then computes it itself.
    uint64_t pickSignature = 0;

    void computeSignature();
    // Never 0, so 0 can stand for "not computed".
    static uint64_t signatureOf(const std::vector<BackendRoute>& backends);
};

// Shared across snapshots for one service: the service-wide connection count
// that enforces max_connections (one RMW per connection, never per read).
struct ServiceState {
    std::atomic<int64_t> active{0};
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> refusedAtLimit{0};
    // accept_proxy: headers that were malformed, cut short or late (timeouts
    // are counted in both).
    std::atomic<uint64_t> proxyHeaderErrors{0};
    std::atomic<uint64_t> proxyHeaderTimeouts{0};
    // Connections that found every pickable backend at its max_connections.
    std::atomic<uint64_t> backendsFull{0};
    // Connections that ended before reaching any backend, by proxy::CloseReason.
    std::array<std::atomic<uint64_t>, 16> closedWithoutBackend{};
    // Automatic fallbacks engaged so far (the control thread counts, metrics read).
    std::atomic<uint64_t> fallbacks{0};
    // Outlier ejections workers started (rare: one RMW per ejection). The
    // health monitor looks at a service's backends only when this moved.
    std::atomic<uint64_t> outlierTrips{0};
};

struct ServiceRoute {
    std::string name;
    config::Endpoint listen;
    config::Balance balance = config::Balance::RoundRobin;
    config::Affinity affinity = config::Affinity::None;
    config::ProxyProtocol proxyProtocol = config::ProxyProtocol::None;
    bool acceptProxy = false;
    config::Duration acceptProxyTimeout{3000};
    config::Duration connectTimeout{2000};
    config::Duration idleTimeout{300000};
    config::Duration halfClosedTimeout{30000};   // timeouts.half_closed
    config::Duration drainSpread{3000};
    uint32_t retries = 2;
    uint32_t maxConnections = 20000;
    std::array<PoolRoute, 2> pools;     // indexed by config::index(Colour)
    uint64_t generation = 0;
    uint64_t revision = 0;
    std::shared_ptr<ServiceState> state;
    // Panic mode: no pool carrying traffic has a healthy backend, so health and
    // outlier ejections are ignored (backend weights already say so).
    bool panic = false;
    // Passive outlier detection: a worker that sees a backend's run of failures
    // reach this sets its `ejected` flag (0 = off), keeping at most
    // outlierMaxEjectionPercent of a pool ejected (routing/outlier_trip.h).
    uint32_t outlierConsecutiveFailures = 0;
    uint32_t outlierMaxEjectionPercent = 50;

    PoolRoute& pool(config::Colour c) { return pools[config::index(c)]; }
    const PoolRoute& pool(config::Colour c) const { return pools[config::index(c)]; }
};

using RoutePtr = std::shared_ptr<const ServiceRoute>;

struct RoutingSnapshot {
    SharedList<ServiceRoute> services;
    // Name -> position in `services`; the same object while the set of services
    // is unchanged (see service_index.h). Null: find() scans.
    ServiceIndexPtr index;
    uint64_t revision = 0;

    static constexpr std::size_t kNoService = ServiceIndex::kNone;

    const ServiceRoute* find(std::string_view name) const;
    // The position of service `name` in `services`, or kNoService.
    std::size_t indexOf(std::string_view name) const;
};

using SnapshotPtr = std::shared_ptr<const RoutingSnapshot>;

} // namespace switchyard::routing
