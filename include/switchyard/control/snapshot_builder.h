#pragma once

// MasterState -> RoutingSnapshot. Also where pool drains begin and end: a pool
// whose effective weight falls to 0 starts draining; one that comes back stops.

#include "switchyard/control/master_state.h"
#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::control {

// Updates pool drain deadlines for the effective split at `now`.
void updatePoolDrains(ServiceEntry& service, routing::TimePoint now);

// `now` places slow-start ramps (tests pass a fake clock).
routing::SnapshotPtr buildSnapshot(const MasterState& state, routing::TimePoint now = routing::Clock::now());

} // namespace switchyard::control
