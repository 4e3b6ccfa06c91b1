#pragma once

// Automatic fallback and panic mode, decided from a service's master state.
// Pure (the clock is passed in) so tests drive it with a fake clock.
//
// A pool's condition:
//   Unknown  some backend that counts has no check result yet: no decision
//   Healthy  at least fallback.min_healthy backends pass and are not ejected
//   Failed   fewer than that (an empty pool is always Failed)
// Backends that count: not disabled (maintenance, unchecked) and not being removed.
//
//            failed pool F carries weight, other pool T online and Healthy
//            (or F has no healthy backend and T has some: the least bad)
//   inactive ───────────────────────────────────────────────────────────> active F→T
//   active F→T ──> inactive when
//     - restore: auto and F has been Healthy for `hold`, or
//     - T went offline, or T is no longer Healthy while F is Healthy (or F has
//       healthy backends and T none), or
//     - F carries no weight in the split any more.
//   An operator's split/cutover/rollback clears it too (restore: manual).
//
// Panic: after the overlay, no pool with effective weight has a backend that
// takes connections by health; then snapshots ignore health (Envoy's panic mode).

#include <cstdint>
#include <optional>
#include <string>

#include "switchyard/control/master_state.h"
#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::health {

enum class PoolCondition { Unknown, Healthy, Failed };
const char* toString(PoolCondition c);

struct PoolHealth {
    uint32_t members = 0;       // backends that count (not disabled, not being removed)
    uint32_t healthy = 0;       // of those: passing checks and not ejected
    uint32_t unchecked = 0;     // of those: no check result yet
    bool offline = false;
    uint32_t weight = 0;        // intent weight, 0 when offline
    PoolCondition condition = PoolCondition::Unknown;
};

PoolHealth assessPool(const control::ServiceEntry& service, config::Colour colour);

// True if `healthy` of `members` meets min_healthy.
bool meetsMinHealthy(uint32_t healthy, uint32_t members, const config::MinHealthy& min);

struct FallbackDecision {
    enum class Action { Keep, Engage, Lift };
    Action action = Action::Keep;
    config::Colour from = config::Colour::Blue;   // Engage: the pool that failed
    std::string reason;
};

// One per service; remembers since when the failed pool is healthy again.
class FallbackPolicy {
public:
    FallbackDecision evaluate(const control::ServiceEntry& service, routing::TimePoint now);

private:
    std::optional<routing::TimePoint> recoveredSince_;
};

// Whether `service` (with its fallback overlay as it is) needs panic mode.
bool needsPanic(const control::ServiceEntry& service);

} // namespace switchyard::health
