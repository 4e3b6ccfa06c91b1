#include "switchyard/daemon/socket_activation.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <fmt/format.h>

namespace switchyard::daemon {
namespace {

std::string boundAddress(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {};
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
        ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        return fmt::format("{}:{}", text, ntohs(in->sin_port));
    }
    if (addr.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        return fmt::format("[{}]:{}", text, ntohs(in6->sin6_port));
    }
    return {};
}

constexpr std::string_view kStorePrefix = "sy-listener-";

} // namespace

std::string fdStoreName(std::string_view service, unsigned worker) {
    return fmt::format("{}{}-{}", kStorePrefix, worker, service);
}

std::vector<HandoverSocket> InheritedSockets::takeStored() {
    std::vector<HandoverSocket> out;
    std::erase_if(sockets_, [&out](const Socket& s) {
        if (!s.name.starts_with(kStorePrefix)) return false;
        // "sy-listener-<worker>-<service>"
        const std::string_view rest = std::string_view(s.name).substr(kStorePrefix.size());
        const std::size_t dash = rest.find('-');
        unsigned worker = 0;
        const auto [end, ec] = std::from_chars(rest.data(), rest.data() + std::min(dash, rest.size()), worker);
        if (dash == std::string_view::npos || ec != std::errc() || end != rest.data() + dash) return false;
        ::fcntl(s.fd, F_SETFD, FD_CLOEXEC);
        ::fcntl(s.fd, F_SETFL, ::fcntl(s.fd, F_GETFL) | O_NONBLOCK);
        out.push_back({"listener", std::string(rest.substr(dash + 1)), s.address, worker, UniqueFd(s.fd), false});
        return true;
    });
    return out;
}

InheritedSockets InheritedSockets::fromEnvironment() {
    InheritedSockets result;
    char** names = nullptr;
    const int n = ::sd_listen_fds_with_names(/*unset_environment=*/1, &names);
    for (int i = 0; i < n; ++i) {
        const int fd = SD_LISTEN_FDS_START + i;
        if (::sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) continue;
        result.sockets_.push_back({fd, names && names[i] ? names[i] : "", boundAddress(fd)});
    }
    if (names) {
        for (int i = 0; i < n; ++i) std::free(names[i]);
        std::free(names);
    }
    return result;
}

int InheritedSockets::find(const config::ServiceConfig& service) const {
    for (const auto& s : sockets_)
        if (s.name == service.name) return s.fd;
    const std::string wanted = service.listen.toString();
    for (const auto& s : sockets_)
        if (s.address == wanted) return s.fd;
    return -1;
}

std::vector<std::string> InheritedSockets::unclaimed(const config::Config& config) const {
    std::vector<std::string> out;
    for (const auto& s : sockets_) {
        bool claimed = false;
        for (const auto& service : config.services) claimed |= find(service) == s.fd;
        if (!claimed) out.push_back(s.name.empty() ? s.address : s.name + " (" + s.address + ")");
    }
    return out;
}

} // namespace switchyard::daemon
