#pragma once

// The services' listening sockets: one SO_REUSEPORT socket per service and
// worker, or, under socket activation, the socket systemd handed over shared
// by every worker (closing a per-worker SO_REUSEPORT listener would reset the
// connections queued on it).

#include <functional>
#include <map>
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

    // Upgrade: the listener a previous generation handed over for a service's
    // worker (an invalid fd when it handed none: that one is bound anew).
    using AdoptedLookup = std::function<UniqueFd(const config::ServiceConfig&, std::size_t worker)>;
    // `from`: where they come from, for the log ("the previous generation handed over").
    void setAdopted(AdoptedLookup lookup, std::string from) {
        adopted_ = std::move(lookup);
        adoptedFrom_ = std::move(from);
    }

    // A listening socket as the next generation gets it (daemon/handover.h).
    struct HandoverFd {
        std::string service;
        std::string address;
        unsigned worker;
        int fd;        // owned by this set (or the inherited sockets)
        bool shared;   // one socket every worker accepts on (socket activation)
    };
    // Every service's per-worker listeners, to hand to the next generation.
    std::vector<HandoverFd> handoverFds() const;

    // Binds (or takes over) the service's listeners and hands one to each worker.
    Result<bool> open(const config::ServiceConfig& service);
    void close(const std::string& service);
    // Every worker stops accepting (SIGTERM).
    void stopAccepting();

private:
    std::vector<std::unique_ptr<proxy::Worker>>& workers_;
    InheritedLookup inherited_;
    AdoptedLookup adopted_;
    std::string adoptedFrom_;
    // A duplicate of each worker's listener per service, kept for a hand-over:
    // the very socket (and its queue) goes to the next generation.
    struct Kept {
        config::ServiceConfig service;   // name and listen address
        std::vector<UniqueFd> fds;       // by worker; none for an inherited socket
    };
    std::map<std::string, Kept> kept_;
};

} // namespace switchyard::control
