#pragma once

#include <cstdint>

#include "switchyard/config/config.h"

namespace switchyard::daemon {

// Raises the soft open-file limit to the hard one and warns when the hard
// limit cannot hold every service's max_connections (two fds per connection).
// Returns the connections the limit allows at once.
uint64_t raiseFileLimit(const config::Config& config);

// The soft open-file limit now (after raiseFileLimit).
uint64_t openFileLimit();

} // namespace switchyard::daemon
