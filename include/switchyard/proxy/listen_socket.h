#pragma once

// Listening sockets, opened by the control side before a service is published,
// so a port that cannot be bound fails the start or the reload, not a worker.

#include "switchyard/config/endpoint.h"
#include "switchyard/util/result.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::proxy {

// A non-blocking listening TCP socket. With reusePort each worker gets its own
// socket on the same address and the kernel spreads connections between them.
Result<UniqueFd> openListenSocket(const config::Endpoint& endpoint, bool reusePort, int backlog = 4096);

} // namespace switchyard::proxy
