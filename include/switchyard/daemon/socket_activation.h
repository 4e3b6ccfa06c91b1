#pragma once

// Listening sockets inherited from systemd (LISTEN_FDS, socket activation).
// Connections that arrive while the daemon restarts wait in these sockets'
// backlog, which systemd keeps open, for the next process.

#include <string>
#include <vector>

#include "switchyard/config/config.h"

namespace switchyard::daemon {

class InheritedSockets {
public:
    // Takes over the fds systemd passed (and unsets LISTEN_* for children).
    static InheritedSockets fromEnvironment();

    // The inherited socket for a service: one whose FileDescriptorName= is the
    // service name, else one bound to the service's listen address; -1 if none.
    int find(const config::ServiceConfig& service) const;

    std::size_t size() const { return sockets_.size(); }
    // Inherited sockets no service claimed (worth a warning).
    std::vector<std::string> unclaimed(const config::Config& config) const;

private:
    struct Socket {
        int fd;
        std::string name;
        std::string address;   // "127.0.0.1:8080", as Endpoint::toString
    };
    std::vector<Socket> sockets_;
};

} // namespace switchyard::daemon
