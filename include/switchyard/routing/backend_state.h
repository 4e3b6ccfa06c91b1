#pragma once

// What outlives routing snapshots for one backend: its identity, its resolved
// socket address and its live connection count. Sessions hold a BackendHandle,
// not a snapshot, so long-lived connections do not pin old snapshots.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <sys/socket.h>

#include "switchyard/config/config.h"

namespace switchyard::routing {

struct BackendState {
    BackendState(std::string serviceName, config::Colour poolColour, config::Endpoint endpoint);

    const std::string service;
    const config::Colour colour;
    const config::Endpoint address;
    const std::string key;          // "127.0.0.1:9001": unique within a service
    sockaddr_storage sockaddr{};
    socklen_t sockaddrLen = 0;

    // Open proxied connections on this backend, all workers. One RMW per
    // connection open and close (never per read): leastconn and status read it.
    std::atomic<int64_t> active{0};
    // Upstream connect attempts and failures, all workers (per connection).
    std::atomic<uint64_t> connectAttempts{0};
    std::atomic<uint64_t> connectFailures{0};
};

using BackendHandle = std::shared_ptr<BackendState>;

} // namespace switchyard::routing
