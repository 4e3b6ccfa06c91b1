#pragma once

// What the metrics scrape reads: an immutable picture of the control thread's
// state (names, weights, health, generation) plus shared pointers to the live
// per-worker counters. The control thread builds a new view on every publish
// (anew only for the services that changed) and on a short timer; the scrape
// thread only loads the pointer and reads
// atomics, so it never races the one writer of runtime state and the data
// path pays nothing for it.
//
// telemetry/ is the ground floor: the view holds no routing or control types.
// Live atomics are reached through aliasing shared_ptrs that keep their owner
// (a BackendState, a ServiceState) alive for as long as the view exists.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "switchyard/telemetry/health_check_counters.h"
#include "switchyard/telemetry/traffic_counters.h"
#include "switchyard/util/shared_list.h"

namespace switchyard::telemetry {

struct BackendMetricsView {
    std::string address;                                    // "127.0.0.1:9001"
    std::shared_ptr<const TrafficCounters> traffic;         // live
    std::shared_ptr<const std::atomic<int64_t>> active;     // live: open proxied connections
    std::shared_ptr<const std::atomic<bool>> ejected;       // live: outlier detection
    bool healthy = true;
    bool draining = false;             // its pool or the backend itself drains
    uint32_t weight = 0;               // after operator overrides
    std::string adminState;            // "enabled" | "drain" | "disabled"
    uint64_t ejections = 0;            // ejections seen by the control thread
    uint32_t maxConnections = 0;       // 0: no per-backend limit
    std::shared_ptr<const std::atomic<uint64_t>> limitSkips;   // live: picks that passed it over at its limit
    std::shared_ptr<const HealthCheckCounters> checks;         // live: active health checks
};

struct PoolMetricsView {
    std::string colour;                // "blue" | "green"
    PoolCountersPtr counters;          // live; may be null
    uint32_t weight = 0;               // intent (split)
    uint32_t effectiveWeight = 0;      // after offline pools and fallback
    bool offline = false;
    std::vector<BackendMetricsView> backends;
};

// Rollout figures for one service. Zero until a rollout exists: the rollout
// controller fills these (see daemon/metrics_view_builder.h, fillRolloutMetrics).
struct RolloutMetricsView {
    bool active = false;
    uint32_t step = 0;                 // 1-based index of the current step, 0 when none
    uint32_t targetWeight = 0;         // the current step's share of the target pool, 0..100
    // Rollouts that ended, by outcome word ("promoted", "rolled_back", "aborted").
    std::vector<std::pair<std::string, uint64_t>> outcomes;
};

struct ServiceMetricsView {
    std::string name;
    uint64_t generation = 0;
    uint64_t revision = 0;
    bool fallbackActive = false;
    uint64_t fallbacks = 0;            // fallbacks started, seen by the control thread
    std::shared_ptr<const std::atomic<int64_t>> active;          // live: accepted, not yet closed
    std::shared_ptr<const std::atomic<uint64_t>> accepted;       // live
    // live: connections that ended before reaching a backend, by close-reason slot
    std::shared_ptr<const std::array<std::atomic<uint64_t>, 16>> closedWithoutBackend;
    std::array<PoolMetricsView, 2> pools;
    RolloutMetricsView rollout;
    bool panic = false;                // every backend takes traffic regardless of health
    uint32_t maxConnections = 0;
    // live, may be null: refused at max_connections, found every backend at its
    // limit, PROXY headers that failed (and, of those, came too late)
    std::shared_ptr<const std::atomic<uint64_t>> refusedAtLimit;
    std::shared_ptr<const std::atomic<uint64_t>> backendsFull;
    std::shared_ptr<const std::atomic<uint64_t>> proxyHeaderErrors;
    std::shared_ptr<const std::atomic<uint64_t>> proxyHeaderTimeouts;
};

// A close reason: the counter slot it is counted in and its label word.
struct CloseReasonLabel {
    int slot = 0;
    std::string name;
};

struct MetricsView {
    // Shared between views: a service whose state did not change keeps its
    // view from the last build (metrics_view_builder.h).
    SharedList<ServiceMetricsView> services;
    // Reasons a connected session can end with (counted per backend) and
    // reasons a session ends with before any backend (counted per service).
    std::vector<CloseReasonLabel> backendCloseReasons;
    std::vector<CloseReasonLabel> serviceCloseReasons;
    uint64_t reloadsOk = 0;
    uint64_t reloadsFailed = 0;
    uint64_t saveFailures = 0;
    // An older generation still draining after `upgrade` (0 pid: none).
    int64_t drainingGenerationPid = 0;
    int64_t drainingGenerationConnections = 0;
    int64_t drainingGenerationDeadlineUnixMs = 0;
};

using MetricsViewPtr = std::shared_ptr<const MetricsView>;

} // namespace switchyard::telemetry
