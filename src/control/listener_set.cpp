#include "switchyard/control/listener_set.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>

#include <fmt/format.h>

#include "switchyard/proxy/listen_socket.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::control {

Result<bool> ListenerSet::open(const config::ServiceConfig& service) {
    std::vector<UniqueFd> fds;
    if (const int inherited = inherited_ ? inherited_(service) : -1; inherited >= 0) {
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            UniqueFd fd(::fcntl(inherited, F_DUPFD_CLOEXEC, 0));
            if (!fd.valid())
                return Result<bool>::failure(fmt::format("service {}: cannot share the inherited socket: {}",
                                                         service.name, std::strerror(errno)));
            ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
            fds.push_back(std::move(fd));
        }
        telemetry::logger("control")->info("service {}: accepting on the socket inherited from systemd", service.name);
    }
    for (std::size_t i = fds.size(); i < workers_.size(); ++i) {
        auto fd = proxy::openListenSocket(service.listen, /*reusePort=*/true);
        if (!fd) return Result<bool>::failure(fmt::format("service {}: {}", service.name, fd.errorText()));
        fds.push_back(std::move(fd).value());
    }
    for (std::size_t i = 0; i < workers_.size(); ++i) workers_[i]->addListener(service.name, std::move(fds[i]));
    return true;
}

void ListenerSet::close(const std::string& service) {
    for (auto& w : workers_) w->removeListener(service);
}

void ListenerSet::stopAccepting() {
    for (auto& w : workers_) w->stopAccepting();
}

} // namespace switchyard::control
