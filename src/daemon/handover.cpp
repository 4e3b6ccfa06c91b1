#include "switchyard/daemon/handover.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <fmt/format.h>

namespace switchyard::daemon {
namespace {

constexpr std::size_t kMaxMessage = 256 * 1024;

} // namespace

Result<bool> sendHandoverMessage(int channel, const nlohmann::json& body, const std::vector<int>& fds,
                                 std::optional<std::chrono::milliseconds> wait) {
    if (fds.size() > kMaxFdsPerMessage)
        return Result<bool>::failure(fmt::format("{} descriptors in one hand-over message (limit {})", fds.size(),
                                                 kMaxFdsPerMessage));
    const std::string text = body.dump();
    if (text.size() > kMaxMessage) return Result<bool>::failure("hand-over message too large");
    iovec iov{const_cast<char*>(text.data()), text.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    if (!fds.empty()) {
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t sent;
    do sent = ::sendmsg(channel, &msg, MSG_NOSIGNAL | (wait ? MSG_DONTWAIT : 0));
    while (sent < 0 && errno == EINTR);
    if (sent < 0 && errno == EAGAIN && wait && wait->count() > 0) {
        pollfd p{channel, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(wait->count())) > 0)
            return sendHandoverMessage(channel, body, fds, std::chrono::milliseconds(0));
    }
    if (sent < 0) return Result<bool>::failure(fmt::format("hand-over channel: {}", std::strerror(errno)));
    return true;
}

namespace {

// Every field a reader takes with json::value() has the type it expects, so a
// wrongly typed field is refused here instead of throwing in a handler.
bool wellFormed(const nlohmann::json& body) {
    if (body.is_discarded() || !body.is_object()) return false;
    const auto it = body.find("type");
    if (it == body.end() || !it->is_string()) return false;
    const auto is = [&](const char* key, bool (nlohmann::json::*test)() const noexcept) {
        const auto f = body.find(key);
        return f == body.end() || ((*f).*test)();
    };
    using J = nlohmann::json;
    const std::string& type = it->get_ref<const std::string&>();
    if (type == "hello")
        return is("version", &J::is_number_integer) && is("batches", &J::is_number_unsigned) &&
               is("sockets", &J::is_array) && is("health_parts", &J::is_number_unsigned);
    if (type == "health") return is("records", &J::is_array);
    if (type == "ready") return is("version", &J::is_string) && is("pid", &J::is_number_integer);
    if (type == "refused") return is("error", &J::is_string);
    if (type == "counters")
        return is("seq", &J::is_number_unsigned) && is("part", &J::is_number_unsigned) &&
               is("parts", &J::is_number_unsigned) && is("series", &J::is_array);
    if (type == "drains") return is("reset", &J::is_array) && is("spreads", &J::is_object) && is("backends", &J::is_array);
    if (type == "draining") return is("connections", &J::is_number_integer) && is("deadline_unix_ms", &J::is_number_integer);
    return true;
}

} // namespace

Result<HandoverMessage> receiveHandoverMessage(int channel, std::chrono::milliseconds timeout) {
    using R = Result<HandoverMessage>;
    pollfd p{channel, POLLIN, 0};
    int ready;
    do ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    while (ready < 0 && errno == EINTR);
    if (ready == 0) return R::failure(fmt::format("no hand-over message within {} ms", timeout.count()));
    if (ready < 0) return R::failure(fmt::format("hand-over channel: {}", std::strerror(errno)));
    std::string text(kMaxMessage, '\0');
    iovec iov{text.data(), text.size()};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n;
    do n = ::recvmsg(channel, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) return R::failure(fmt::format("hand-over channel: {}", std::strerror(errno)));
    HandoverMessage out;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            out.fds.emplace_back(fd);
        }
    }
    if (n == 0) return R::failure("the other generation closed the hand-over channel");
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return R::failure("hand-over message truncated");
    text.resize(static_cast<std::size_t>(n));
    out.body = nlohmann::json::parse(text, nullptr, false);
    if (!wellFormed(out.body)) return R::failure("malformed hand-over message");
    return out;
}

Result<bool> sendHello(int channel, const std::vector<HandoverSocket>& sockets,
                       const std::vector<nlohmann::json>& health) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& s : sockets)
        list.push_back({{"role", s.role}, {"service", s.service}, {"address", s.address}, {"worker", s.worker},
                        {"shared", s.shared}});
    const std::size_t batches = (sockets.size() + kMaxFdsPerMessage - 1) / kMaxFdsPerMessage;
    nlohmann::json hello = {{"type", "hello"},     {"version", kHandoverVersion}, {"sockets", list},
                            {"batches", batches}, {"health_parts", health.size()}};
    if (auto ok = sendHandoverMessage(channel, hello); !ok) return ok;
    for (std::size_t b = 0; b < batches; ++b) {
        std::vector<int> fds;
        for (std::size_t i = b * kMaxFdsPerMessage; i < sockets.size() && fds.size() < kMaxFdsPerMessage; ++i)
            fds.push_back(sockets[i].fd.get());
        if (auto ok = sendHandoverMessage(channel, {{"type", "fds"}, {"batch", b}}, fds); !ok) return ok;
    }
    for (const auto& records : health)
        if (auto ok = sendHandoverMessage(channel, {{"type", "health"}, {"records", records}}); !ok) return ok;
    return true;
}

Result<Hello> receiveHello(int channel, std::chrono::milliseconds timeout) {
    using R = Result<Hello>;
    auto hello = receiveHandoverMessage(channel, timeout);
    if (!hello) return R::failure(hello.errorText());
    const nlohmann::json& body = hello->body;
    if (body.value("type", "") != "hello") return R::failure("the hand-over did not start with hello");
    const int version = body.value("version", 0);
    if (version != kHandoverVersion)
        return R::failure(fmt::format("the running daemon speaks hand-over version {}, this binary {}", version,
                                      kHandoverVersion));
    std::vector<HandoverSocket> sockets;
    try {
        for (const auto& s : body.at("sockets")) {
            HandoverSocket socket;
            socket.role = s.at("role").get<std::string>();
            socket.service = s.at("service").get<std::string>();
            socket.address = s.at("address").get<std::string>();
            socket.worker = s.at("worker").get<unsigned>();
            socket.shared = s.value("shared", false);
            sockets.push_back(std::move(socket));
        }
    } catch (const nlohmann::json::exception& e) {
        return R::failure(fmt::format("malformed hand-over hello: {}", e.what()));
    }
    std::size_t next = 0;
    const std::size_t batches = body.value("batches", std::size_t{0});
    for (std::size_t b = 0; b < batches; ++b) {
        auto batch = receiveHandoverMessage(channel, timeout);
        if (!batch) return R::failure(batch.errorText());
        for (auto& fd : batch->fds) {
            if (next >= sockets.size()) return R::failure("more descriptors than the hello announced");
            sockets[next++].fd = std::move(fd);
        }
    }
    if (next != sockets.size())
        return R::failure(fmt::format("the hello announced {} descriptors, {} arrived", sockets.size(), next));
    Hello out{std::move(sockets), {}};
    const std::size_t healthParts = body.value("health_parts", std::size_t{0});
    for (std::size_t p = 0; p < healthParts; ++p) {
        auto part = receiveHandoverMessage(channel, timeout);
        if (!part) return R::failure(part.errorText());
        if (part->body.value("type", "") != "health") return R::failure("the hello announced health, another message came");
        out.health.push_back(std::move(part->body["records"]));
    }
    return out;
}

UniqueFd AdoptedSockets::take(std::string_view role) {
    for (auto& s : sockets_)
        if (s.role == role && s.fd.valid()) return std::move(s.fd);
    return UniqueFd();
}

std::vector<std::pair<std::string, unsigned>> AdoptedSockets::leftListeners() const {
    std::vector<std::pair<std::string, unsigned>> out;
    for (const auto& s : sockets_)
        if (s.role == "listener" && s.fd.valid()) out.emplace_back(s.service, s.worker);
    return out;
}

UniqueFd AdoptedSockets::takeListener(std::string_view service, std::string_view address, unsigned worker) {
    // A shared socket serves every worker: each gets its own descriptor of it.
    for (auto& s : sockets_)
        if (s.role == "listener" && s.shared && s.service == service && s.address == address && s.fd.valid())
            return UniqueFd(::fcntl(s.fd.get(), F_DUPFD_CLOEXEC, 0));
    for (auto& s : sockets_)
        if (s.role == "listener" && s.service == service && s.address == address && s.worker == worker && s.fd.valid())
            return std::move(s.fd);
    return UniqueFd();
}

int predecessorPid(int channel) {
    ucred peer{};
    socklen_t length = sizeof peer;
    if (::getsockopt(channel, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) return -1;
    return peer.pid;
}

} // namespace switchyard::daemon
