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
    if (fds.empty() && adopted_) {
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            UniqueFd fd = adopted_(service, i);
            if (!fd.valid()) break;
            fds.push_back(std::move(fd));
        }
        if (!fds.empty())
            telemetry::logger("control")->info("service {}: accepting on {} listener(s) {}", service.name, fds.size(),
                                               adoptedFrom_);
    }
    for (std::size_t i = fds.size(); i < workers_.size(); ++i) {
        auto fd = proxy::openListenSocket(service.listen, /*reusePort=*/true);
        if (!fd) return Result<bool>::failure(fmt::format("service {}: {}", service.name, fd.errorText()));
        fds.push_back(std::move(fd).value());
    }
    // An inherited socket stays open in the InheritedSockets for good: nothing to keep.
    Kept kept;
    kept.service.name = service.name;
    kept.service.listen = service.listen;
    if (!(inherited_ && inherited_(service) >= 0))
        for (const auto& fd : fds) kept.fds.emplace_back(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
    kept_[service.name] = std::move(kept);
    for (std::size_t i = 0; i < workers_.size(); ++i) workers_[i]->addListener(service.name, std::move(fds[i]));
    return true;
}

void ListenerSet::close(const std::string& service) {
    for (auto& w : workers_) w->removeListener(service);
    kept_.erase(service);
}

void ListenerSet::stopAccepting() {
    for (auto& w : workers_) w->stopAccepting();
    kept_.clear();
}

std::vector<ListenerSet::HandoverFd> ListenerSet::handoverFds() const {
    std::vector<HandoverFd> out;
    for (const auto& [service, kept] : kept_) {
        const std::string address = kept.service.listen.toString();
        if (kept.fds.empty()) {
            // Socket activation: every worker accepts on the one inherited socket.
            if (const int fd = inherited_ ? inherited_(kept.service) : -1; fd >= 0)
                out.push_back({service, address, 0, fd, /*shared=*/true});
            continue;
        }
        for (std::size_t i = 0; i < kept.fds.size(); ++i)
            if (kept.fds[i].valid())
                out.push_back({service, address, static_cast<unsigned>(i), kept.fds[i].get(), false});
    }
    return out;
}

} // namespace switchyard::control
