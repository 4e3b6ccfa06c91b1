#pragma once

// --wait in fleet mode: after a change was committed in etcd, polls the
// member's `status SERVICE` until every live member of the fleet applied it
// (fleet.converged). It only reads; stopping it changes nothing.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "admin_client.h"

namespace switchyard::ctl {

// True when a status reply shows a fleet whose live members all applied the newest intent.
bool fleetConverged(const nlohmann::json& status);

// Returns the exit code: 0 converged, 1 timed out or failed, 3 unreachable, 130 interrupted.
int waitForFleet(const AdminClient& client, const std::string& service, std::optional<Clock::time_point> deadline,
                 bool humanOutput);

} // namespace switchyard::ctl
