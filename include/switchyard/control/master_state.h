#pragma once

// The control thread's model of every service: operator intent (split,
// backend weights and admin states, offline pools), what health and fallback
// overlay on it, and the drain deadlines that follow. Only the control thread
// touches it; workers see it as RoutingSnapshots (snapshot_builder.h).

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/config/config.h"
#include "switchyard/rollout/rollout_controller.h"
#include "switchyard/routing/routing_snapshot.h"
#include "switchyard/routing/service_index.h"
#include "switchyard/util/shared_list.h"

namespace switchyard::control {

// Operator state of a backend, kept apart from health (HAProxy keeps
// maintenance/drain apart from check results the same way).
enum class AdminState { Enabled, Drain, Disabled };
const char* toString(AdminState s);

inline constexpr routing::TimePoint kNoRamp = routing::TimePoint::min();

struct BackendEntry {
    config::Endpoint address;
    uint32_t configWeight = 100;          // the config file's value ("made against")
    uint32_t weight = 100;                // current, after operator overrides
    AdminState adminState = AdminState::Enabled;
    bool addedAtRuntime = false;          // `add`, not in the config file
    bool removing = false;                // `remove`: drains, then disappears
    routing::TimePoint drainDeadline = routing::kNoDeadline;   // set by drain/disable/remove
    routing::BackendHandle handle;
    uint32_t maxConnections = 0;          // per-backend limit from the config; 0 = unlimited
    // Slow start: when the backend joined or came back; kNoRamp once the ramp is over.
    routing::TimePoint rampStart = kNoRamp;

    // Health (issue: active checks). Backends start assumed up.
    bool healthy = true;
    bool checked = false;                 // has at least one check result
    std::string lastFailure;

    bool takesNewConnections() const {
        return adminState == AdminState::Enabled && !removing && healthy && weight > 0;
    }
    // What panic mode routes to: health (and outlier ejection) ignored.
    bool takesNewConnectionsIgnoringHealth() const {
        return adminState == AdminState::Enabled && !removing && weight > 0;
    }
};

struct PoolEntry {
    config::Colour colour = config::Colour::Blue;
    std::vector<BackendEntry> backends;
    bool offline = false;
    // Config backends an operator removed: a restart must not bring them back.
    std::vector<config::BackendConfig> removed;
    routing::TimePoint drainDeadline = routing::kNoDeadline;   // effective weight fell to 0
    uint32_t lastEffectiveWeight = 0;

    BackendEntry* find(const config::Endpoint& address);
    const BackendEntry* find(const config::Endpoint& address) const;
    std::size_t routableBackends() const;
};

struct FallbackState {
    bool active = false;
    config::Colour from = config::Colour::Blue;   // the pool that failed
    std::string reason;
    int64_t sinceUnixMs = 0;
};

struct ServiceEntry {
    config::ServiceConfig config;                 // as last loaded
    config::Split split;                          // operator intent
    std::optional<config::Split> rollbackSplit;   // split before the latest split change
    uint64_t generation = 1;
    uint64_t revision = 1;
    std::array<PoolEntry, 2> pools;
    std::shared_ptr<routing::ServiceState> state = std::make_shared<routing::ServiceState>();
    // Traffic counters per pool; they outlive snapshots and reloads.
    std::array<telemetry::PoolCountersPtr, 2> poolCounters;
    FallbackState fallback;
    // Panic mode (health/fallback_policy.h): no pool carrying traffic has a
    // healthy backend, so snapshots route to enabled backends regardless of health.
    bool panic = false;
    // The active rollout, or the last one (kept for rollout-status); see rollout/.
    std::optional<rollout::Rollout> rollout;
    bool rolloutActive() const { return rollout && rollout->active(); }

    PoolEntry& pool(config::Colour c) { return pools[config::index(c)]; }
    const PoolEntry& pool(config::Colour c) const { return pools[config::index(c)]; }

    // What traffic gets now: the split after offline pools and the fallback overlay.
    config::Split effectiveSplit() const;
};

// Services are shared by structure: copying the state copies one pointer per
// service, and a transition copies only the services it edits.
struct MasterState {
    SharedList<ServiceEntry> services;            // config order
    uint64_t revision = 0;                        // every published snapshot

    const ServiceEntry* find(std::string_view name) const;
    std::size_t indexOf(std::string_view name) const;   // routing::ServiceIndex::kNone if absent
    // Copy-on-write access to one service for a transition; nullptr if absent.
    ServiceEntry* edit(std::string_view name);
    // Appends a service (start, reload); the name index grows with it.
    void add(ServiceEntry service);
    // The name index, shared with every snapshot published from this state.
    routing::ServiceIndexPtr index() const { return index_; }

private:
    std::shared_ptr<routing::ServiceIndex> index_ = std::make_shared<routing::ServiceIndex>();
};

// Slow start (service key slow_start). Call when a backend joins (add, reload)
// or returns to service (health up again, enabled again): its effective weight
// then ramps from a tenth to its full weight over slow_start. Harmless when
// slow_start is 0. The control plane re-publishes once a second during a ramp.
void markBackendReturned(BackendEntry& backend, routing::TimePoint now);

// weight x max(0.1, elapsed / slowStart), at least 1 for a non-zero weight;
// the full weight when there is no ramp or it is over.
uint32_t slowStartWeight(uint32_t weight, routing::TimePoint rampStart, config::Duration slowStart,
                         routing::TimePoint now);

// What a backend's new connections are weighted by now: 0 if it takes none,
// else its weight after slow start. Snapshots and status use this.
uint32_t effectiveBackendWeight(const BackendEntry& backend, config::Duration slowStart, routing::TimePoint now);

// True while the backend's ramp is still running at `now`.
bool ramping(const BackendEntry& backend, config::Duration slowStart, routing::TimePoint now);

// `now + after`, saturating at kNoDeadline instead of overflowing.
routing::TimePoint deadlineAfter(routing::TimePoint now, config::Duration after);

// What a backend carries from one entry to the next when a reset, reload or
// restore rebuilds it: its identity (open connections, counters), its health
// and its slow-start ramp. Operator settings are not copied.
void keepLiveFacts(BackendEntry& fresh, const BackendEntry& old);

// A service entry straight from its config (no overrides).
ServiceEntry makeServiceEntry(const config::ServiceConfig& config);
BackendEntry makeBackendEntry(const ServiceEntry& service, config::Colour colour, const config::BackendConfig& backend);

} // namespace switchyard::control
