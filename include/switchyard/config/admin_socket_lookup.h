#pragma once

// The admin socket a configuration file names, read on its own: switchyardctl
// -c FILE (and so `systemctl reload`) must find the daemon even when the rest
// of the file is invalid, because that is when the daemon's refusal of a
// reload has something to say.

#include <string>

#include "switchyard/util/result.h"

namespace switchyard::config {

// admin.socket of the YAML file at `path`: the path, or "" when the file
// names none (the default socket applies). An error when the file cannot be
// read or parsed as YAML, or admin.socket is not a string.
Result<std::string> lookupAdminSocket(const std::string& path);

} // namespace switchyard::config
