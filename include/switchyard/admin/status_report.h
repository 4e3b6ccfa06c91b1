#pragma once

// The JSON of `status` (docs/admin-protocol.md shows a real reply).

#include <string_view>

#include <nlohmann/json.hpp>

#include "switchyard/control/control_plane.h"

namespace switchyard::admin {

// One service: intent and health from its entry, what traffic gets (effective
// weights, after fallback, panic and slow start) from the route the workers use.
nlohmann::json serviceStatus(const control::ServiceEntry& service, const routing::ServiceRoute& route);

// All services, or just `service` when it is not empty.
nlohmann::json statusReport(const control::ControlPlane& control, std::string_view service);

} // namespace switchyard::admin
