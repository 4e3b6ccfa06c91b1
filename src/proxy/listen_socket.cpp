#include "switchyard/proxy/listen_socket.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fmt/format.h>

namespace switchyard::proxy {

Result<UniqueFd> openListenSocket(const config::Endpoint& endpoint, bool reusePort, int backlog) {
    sockaddr_storage addr{};
    const socklen_t len = endpoint.toSockaddr(addr);
    UniqueFd fd(::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid())
        return Result<UniqueFd>::failure(
            fmt::format("cannot create a socket for {}: {}", endpoint.toString(), std::strerror(errno)));
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reusePort) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (endpoint.ipv6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
        return Result<UniqueFd>::failure(
            fmt::format("cannot listen on {}: {}", endpoint.toString(), std::strerror(errno)));
    if (::listen(fd.get(), backlog) != 0)
        return Result<UniqueFd>::failure(
            fmt::format("cannot listen on {}: {}", endpoint.toString(), std::strerror(errno)));
    return fd;
}

} // namespace switchyard::proxy
