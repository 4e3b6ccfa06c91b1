#pragma once

// MasterState -> RoutingSnapshot. Also where pool drains begin and end: a pool
// whose effective weight falls to 0 starts draining; one that comes back stops.

#include <chrono>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "switchyard/control/master_state.h"
#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::control {

// Updates pool drain deadlines for the effective split at `now`.
void updatePoolDrains(ServiceEntry& service, routing::TimePoint now);

// The route of one service; `now` places slow-start ramps (tests pass a fake clock).
routing::RoutePtr buildRoute(const ServiceEntry& service, routing::TimePoint now = routing::Clock::now());

// Every service's route built anew (start, tests).
routing::SnapshotPtr buildSnapshot(const MasterState& state, routing::TimePoint now = routing::Clock::now());

// The snapshot of `state` after `previous` (built from `previousState`): a
// service that is the very same object in both states keeps its route, so a
// change of one service builds one route, whatever the number of services.
routing::SnapshotPtr buildSnapshot(const MasterState& state, const MasterState& previousState,
                                   const routing::RoutingSnapshot& previous,
                                   routing::TimePoint now = routing::Clock::now());

// A retiring generation (after `upgrade`): `snapshot` with every backend
// draining to `deadline`, so each worker closes what is still open spread over
// [deadline - spread, deadline] (proxy/drain_schedule.h) and routes nothing new.
// A backend that already drained to an earlier deadline keeps it.
routing::SnapshotPtr drainingEverything(const routing::RoutingSnapshot& snapshot, routing::TimePoint deadline,
                                        std::chrono::milliseconds spread);

// The drains of the next generation (a backend drained, disabled or removed,
// a pool leaving traffic after `upgrade`), by service: its drain_spread and
// the deadline of each draining backend by pool and address key.
struct ServiceDrains {
    std::chrono::milliseconds spread{0};
    std::vector<std::tuple<config::Colour, std::string, routing::TimePoint>> backends;
};
using SuccessorDrains = std::unordered_map<std::string, ServiceDrains>;

// A retired generation's snapshot (drainingEverything) with the next
// generation's drains: each backend closes by the earlier of the two
// deadlines, as it would in that generation, and a service with such a drain
// spreads its closes over the shorter of the two spreads.
routing::SnapshotPtr withSuccessorDrains(const routing::RoutingSnapshot& retired, const SuccessorDrains& drains);

} // namespace switchyard::control
