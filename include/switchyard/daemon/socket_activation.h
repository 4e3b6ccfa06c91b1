#pragma once

// Listening sockets inherited from systemd (LISTEN_FDS): socket activation,
// and the listeners the daemon stored in systemd's fd store (FDSTORE=1, with
// FileDescriptorStoreMax= in the unit). Connections that arrive while the
// daemon restarts wait in these sockets' backlog, which systemd keeps open,
// for the next process.

#include <string>
#include <string_view>
#include <vector>

#include "switchyard/config/config.h"
#include "switchyard/daemon/handover.h"

namespace switchyard::daemon {

// The FDNAME= of a service's listener for one worker in systemd's fd store.
std::string fdStoreName(std::string_view service, unsigned worker);

class InheritedSockets {
public:
    // Takes over the fds systemd passed (and unsets LISTEN_* for children).
    static InheritedSockets fromEnvironment();

    // The inherited socket for a service: one whose FileDescriptorName= is the
    // service name, else one bound to the service's listen address; -1 if none.
    int find(const config::ServiceConfig& service) const;

    std::size_t size() const { return sockets_.size(); }

    // Listeners this daemon kept in systemd's fd store (FDSTORE=1, named
    // fdStoreName()), passed back at this start: taken out, one per service
    // and worker, to be adopted like a hand-over's.
    std::vector<HandoverSocket> takeStored();
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
