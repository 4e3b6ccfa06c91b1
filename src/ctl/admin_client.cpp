#include "admin_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include <nlohmann/json.hpp>

#include "switchyard/config/endpoint.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::ctl {

namespace {

// A status reply of a large fleet is big, but never this big; a peer that keeps
// sending without a newline is not a switchyard.
constexpr std::size_t kMaxReply = 64 * 1024 * 1024;

int msLeft(Clock::time_point deadline) {
    // Rounded up, so a poll that times out has really reached the deadline.
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 1'000'000'000));
}

std::string errnoText(int err) { return std::strerror(err); }

} // namespace

AdminReply AdminClient::request(const std::string& line, Clock::time_point deadline) const {
    AdminReply reply;
    auto fail = [&](AdminReply::Status status, std::string error) {
        reply.status = status;
        reply.error = std::move(error);
        return reply;
    };
    auto stopRequested = [&] { return interrupted_ && interrupted_(); };

    UniqueFd fd;
    if (!target_.tcp()) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const std::string& socketPath = target_.socketPath;
        if (socketPath.size() >= sizeof addr.sun_path)
            return fail(AdminReply::Status::Unreachable, "socket path too long");
        std::memcpy(addr.sun_path, socketPath.c_str(), socketPath.size() + 1);

        fd = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd.valid()) return fail(AdminReply::Status::Unreachable, errnoText(errno));

        // A blocking connect on a Unix socket only waits when the daemon's backlog is
        // full; SO_SNDTIMEO bounds that wait (Linux honours it for AF_UNIX connect).
        int ms = std::max(msLeft(deadline), 1);
        timeval tv{ms / 1000, (ms % 1000) * 1000};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
            if (errno == EINTR && !stopRequested()) continue;
            if (errno == EINTR) return fail(AdminReply::Status::Interrupted, "interrupted");
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS)
                return fail(AdminReply::Status::Unreachable, "timed out connecting (the daemon is not accepting)");
            return fail(AdminReply::Status::Unreachable, errnoText(errno));
        }
    } else {
        config::Endpoint endpoint{target_.tcpHost, target_.tcpPort, target_.tcpHost.find(':') != std::string::npos};
        sockaddr_storage addr{};
        const socklen_t len = endpoint.toSockaddr(addr);
        fd = UniqueFd(::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd.valid()) return fail(AdminReply::Status::Unreachable, errnoText(errno));
        if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
            if (errno != EINPROGRESS && errno != EINTR) return fail(AdminReply::Status::Unreachable, errnoText(errno));
            for (;;) {
                pollfd pfd{fd.get(), POLLOUT, 0};
                const int n = ::poll(&pfd, 1, msLeft(deadline));
                if (n > 0) break;
                if (n == 0) return fail(AdminReply::Status::Unreachable, "timed out connecting");
                if (errno != EINTR) return fail(AdminReply::Status::Unreachable, errnoText(errno));
                if (stopRequested()) return fail(AdminReply::Status::Interrupted, "interrupted");
            }
            int err = 0;
            socklen_t errLen = sizeof err;
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &errLen);
            if (err != 0) return fail(AdminReply::Status::Unreachable, errnoText(err));
        }
    }

    // Wait for readiness with poll() against the deadline, then do one blocking call
    // that cannot block because poll said it would not.
    auto waitFor = [&](short events) -> std::optional<AdminReply> {
        while (true) {
            pollfd pfd{fd.get(), events, 0};
            int left = msLeft(deadline);
            int n = ::poll(&pfd, 1, left);
            if (n > 0) return std::nullopt;
            if (n == 0) return fail(AdminReply::Status::Failed, "timed out waiting for a reply");
            if (errno != EINTR) return fail(AdminReply::Status::Failed, errnoText(errno));
            if (stopRequested()) return fail(AdminReply::Status::Interrupted, "interrupted");
        }
    };

    // Over TCP the token goes first; its reply is one more line to read.
    std::string out = target_.tcp() ? "auth " + target_.token + "\n" + line + "\n" : line + "\n";
    bool authPending = target_.tcp();
    std::size_t sent = 0;
    while (sent < out.size()) {
        if (auto stop = waitFor(POLLOUT)) return *stop;
        ssize_t n = ::send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return fail(AdminReply::Status::Failed, "sending the command: " + errnoText(errno));
        }
        sent += static_cast<std::size_t>(n);
    }

    std::string in;
    char buf[16384];
    while (true) {
        if (auto nl = in.find('\n'); nl != std::string::npos && authPending) {
            // An accepted token gets {"ok":true,...}; a refusal is the answer to show.
            const auto parsed = nlohmann::json::parse(in.substr(0, nl), nullptr, false);
            const bool accepted = parsed.is_object() && parsed.value("ok", false);
            if (accepted) {
                in.erase(0, nl + 1);
                authPending = false;
                continue;
            }
        }
        if (auto nl = in.find('\n'); nl != std::string::npos) {
            in.resize(nl);
            if (!in.empty() && in.back() == '\r') in.pop_back();
            reply.status = AdminReply::Status::Ok;
            reply.line = std::move(in);
            return reply;
        }
        if (in.size() > kMaxReply) return fail(AdminReply::Status::Failed, "reply too long");
        if (auto stop = waitFor(POLLIN)) return *stop;
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return fail(AdminReply::Status::Failed, "reading the reply: " + errnoText(errno));
        }
        if (n == 0) {
            // A last line without its newline is still a reply.
            if (!in.empty()) {
                reply.status = AdminReply::Status::Ok;
                reply.line = std::move(in);
                return reply;
            }
            return fail(AdminReply::Status::Failed, "the daemon closed the connection without a reply");
        }
        in.append(buf, static_cast<std::size_t>(n));
    }
}

} // namespace switchyard::ctl
