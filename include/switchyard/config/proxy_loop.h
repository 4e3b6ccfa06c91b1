#pragma once

// A backend that is one of the daemon's own listeners (SPEC "Bounds"): one
// client connection would loop through the proxy until max_connections fills.
// The config loader and the `add`/`backend` admin commands both ask here.

#include <optional>
#include <string>
#include <vector>

#include "switchyard/config/config.h"
#include "switchyard/config/endpoint.h"

namespace switchyard::config {

// Why `backend` reaches one of the services' listeners, or nullopt. Caught: the
// same address and port; a wildcard backend (0.0.0.0, ::) on a listener's port;
// a loopback backend on the port of a wildcard listener. IPv4 and IPv6
// wildcards are treated alike (a [::] listener is dual-stack by default).
std::optional<std::string> proxyLoopReason(const Endpoint& backend, const std::vector<ServiceConfig>& services);

} // namespace switchyard::config
