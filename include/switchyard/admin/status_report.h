#pragma once

// The JSON of `status` (docs/admin-protocol.md shows a real reply).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "switchyard/control/control_plane.h"
#include "switchyard/util/json_writer.h"

namespace switchyard::admin {

// One service: intent and health from its entry, what traffic gets (effective
// weights, after fallback, panic and slow start) from the route the workers use.
// With `control`, a rollout's window is the one its gates see (summed over a fleet).
void serviceStatus(JsonWriter& out, const control::ServiceEntry& service, const routing::ServiceRoute& route,
                   const control::ControlPlane* control = nullptr);
nlohmann::json serviceStatus(const control::ServiceEntry& service, const routing::ServiceRoute& route);

// An older generation of the daemon still serving the connections it had
// when `upgrade` handed over (daemon/upgrader.h).
struct DrainingGeneration {
    int pid = 0;
    int64_t connections = 0;
    int64_t deadlineUnixMs = 0;
};

// All services, or just `service` when it is not empty, as JSON text (written
// as a stream: a full status of 40,000 backends is ~16 MB). `draining`: the
// older generation still draining, if any (field draining_generation).
std::string statusReportText(const control::ControlPlane& control, std::string_view service,
                             const std::optional<DrainingGeneration>& draining = std::nullopt);
// The same as a JSON value, for callers that pick fields from it.
nlohmann::json statusReport(const control::ControlPlane& control, std::string_view service);

} // namespace switchyard::admin
