#include "admin_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

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

    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socketPath_.size() >= sizeof addr.sun_path)
        return fail(AdminReply::Status::Unreachable, "socket path too long");
    std::memcpy(addr.sun_path, socketPath_.c_str(), socketPath_.size() + 1);

    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
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

    std::string out = line + "\n";
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
