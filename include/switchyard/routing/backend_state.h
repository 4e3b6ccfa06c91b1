#pragma once

// What outlives routing snapshots for one backend: its identity, its resolved
// socket address and its live connection count. Sessions hold a BackendHandle,
// not a snapshot, so long-lived connections do not pin old snapshots.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <sys/socket.h>

#include "switchyard/config/config.h"
#include "switchyard/telemetry/health_check_counters.h"
#include "switchyard/telemetry/traffic_counters.h"

namespace switchyard::routing {

struct BackendState {
    // `poolCounters` is shared by every backend of the pool; null gives the
    // backend counters of its own (tests).
    BackendState(std::string serviceName, config::Colour poolColour, config::Endpoint endpoint,
                 telemetry::PoolCountersPtr poolCounters = nullptr);

    const std::string service;
    const config::Colour colour;
    const config::Endpoint address;
    const std::string key;          // "127.0.0.1:9001": unique within a service
    sockaddr_storage sockaddr{};
    socklen_t sockaddrLen = 0;

    // Open proxied connections on this backend, all workers. One RMW per
    // connection open and close (never per read): leastconn and status read it.
    std::atomic<int64_t> active{0};
    // Connect failures and resets before the first byte in a row, all workers;
    // a success stores 0 only when it is not 0 already (passive outlier detection).
    std::atomic<uint32_t> consecutiveFailures{0};
    // Picks that passed this backend over because it was at its max_connections.
    std::atomic<uint64_t> limitSkips{0};
    // Set when outlier detection ejects the backend: by the worker whose failure
    // completes the run (so the next pick skips it at once), or cleared by the
    // control thread when the ejection ends or was one too many.
    std::atomic<bool> ejected{false};
    // Ejections recorded by the control thread, ever (status, metrics, rollout gates).
    std::atomic<uint32_t> ejections{0};

    // Active health checks of this backend (the control thread writes).
    telemetry::HealthCheckCounters checks;

    // Per-worker traffic counters of this backend, and of its pool.
    telemetry::TrafficCounters traffic;
    const telemetry::PoolCountersPtr pool;
};

using BackendHandle = std::shared_ptr<BackendState>;

} // namespace switchyard::routing
