#pragma once

#include <cstdint>

#include "switchyard/config/config.h"

namespace switchyard::daemon {

// Descriptors kept out of the data path so that the admin socket, health
// checks and the state save still work when clients take everything else.
uint64_t descriptorReserve(const config::Config& config, unsigned workers);

// Raises the soft open-file limit to the hard one and warns when the limit,
// less the reserve (at most half of it), cannot hold every service's
// max_connections (two fds per connection). Returns the sessions the data
// path may hold at once: (limit - reserve) / 2, for proxy::setSessionLimit().
uint64_t raiseFileLimit(const config::Config& config, unsigned workers);

// The soft open-file limit now (after raiseFileLimit).
uint64_t openFileLimit();

} // namespace switchyard::daemon
