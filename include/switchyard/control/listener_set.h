#pragma once

// The services' listening sockets: one SO_REUSEPORT socket per service and
// worker, or, under socket activation, the socket systemd handed over shared
// by every worker (closing a per-worker SO_REUSEPORT listener would reset the
// connections queued on it).

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "switchyard/config/config.h"
#include "switchyard/proxy/worker.h"
#include "switchyard/util/result.h"

namespace switchyard::control {

class ListenerSet {
public:
    explicit ListenerSet(std::vector<std::unique_ptr<proxy::Worker>>& workers) : workers_(workers) {}

    // Socket activation: the inherited listening fd for a service, or -1.
    using InheritedLookup = std::function<int(const config::ServiceConfig&)>;
    void setInherited(InheritedLookup lookup) { inherited_ = std::move(lookup); }

    // Binds (or takes over) the service's listeners and hands one to each worker.
    Result<bool> open(const config::ServiceConfig& service);
    void close(const std::string& service);
    // Every worker stops accepting (SIGTERM).
    void stopAccepting();

private:
    std::vector<std::unique_ptr<proxy::Worker>>& workers_;
    InheritedLookup inherited_;
};

} // namespace switchyard::control
