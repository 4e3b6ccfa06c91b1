#include "switchyard/proxy/engine/asio/asio_session.h"

#include <array>
#include <cerrno>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchyard/proxy/engine/asio/asio_worker.h"
#include "switchyard/proxy/reset_relay.h"

namespace switchyard::proxy::asio_engine {
namespace {

using boost::system::error_code;
using Kind = SessionAction::Kind;
constexpr Direction kClientToBackend = Direction::ClientToBackend;
constexpr Direction kBackendToClient = Direction::BackendToClient;

void setNoDelay(int fd) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool wouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

SteadyTime now() { return std::chrono::steady_clock::now(); }

// A connecting socket reported writable: 0 (connected), its errno, or
// EINPROGRESS for a spurious wake (a stale event of a reused descriptor state
// in the reactor). A peer address means connected; else SO_ERROR tells.
int connectOutcome(int fd) {
    sockaddr_storage peer{};
    socklen_t peerLen = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peerLen) == 0) return 0;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err == 0 ? EINPROGRESS : err;
}

} // namespace

AsioSession::AsioSession(AsioWorker& worker, tcp::socket client, uint64_t id, std::size_t serviceIndex)
    : worker_(worker), client_(std::move(client)), upstream_(worker.context()), timer_(worker.context()),
      core_(worker.sessionContext(), id, serviceIndex) {}

void AsioSession::start() {
    const SessionAction a = core_.on(SessionEvent::accepted(client_.native_handle()));
    if (a.kind != Kind::Close) setNoDelay(client_.native_handle());
    perform(a);
    completed();
}

void AsioSession::close(CloseReason reason) {
    perform(core_.on(SessionEvent::closeRequested(reason)));
    completed();
}

void AsioSession::closeSockets() {
    error_code ignored;
    client_.close(ignored);
    upstream_.close(ignored);
    timer_.cancel();
}

void AsioSession::perform(const SessionAction& a) {
    switch (a.kind) {
    case Kind::None: return;
    case Kind::ReadHeader:
        if (!timerArmed_) armTimer(a.at);
        readHeader(kClientToBackend);
        return;
    case Kind::Connect: connectTo(*a.backend, a.timeout); return;
    case Kind::SendPreamble: sendPreamble(kClientToBackend); return;
    case Kind::Relay:
        armTimer(a.at);   // the idle deadline replaces the connect timeout
        // The client's request is usually there already; the backend's answer
        // is not yet: a read would only say EAGAIN. (A wait re-arms the socket
        // in the reactor, so bytes already there are reported too.)
        pump(kClientToBackend);
        if (!core_.closing()) waitThen(Side::Backend, tcp::socket::wait_read, kBackendToClient, &AsioSession::pump);
        return;
    case Kind::ArmTimer: armTimer(a.at); return;
    case Kind::ShutdownWrite:
        releasePipe(a.direction);   // empty by now: a half-closed flow need not hold its descriptors
        // Both ways ended: close() sends the FIN, a shutdown before it would only cost a system call.
        if (a.thenClose) {
            closeSockets();
            return;
        }
        ::shutdown(fdOf(sinkOf(a.direction)), SHUT_WR);
        if (a.moveTimer) armTimer(a.at);
        return;
    case Kind::Close:
        if (a.reset) resetOnClose(fdOf(a.resetSide));
        closeSockets();
        return;
    }
}

void AsioSession::completed() {
    if (pending_ > 0 || !core_.closing()) return;
    closeSockets();
    for (const Direction d : {kClientToBackend, kBackendToClient}) {
        flow(d).buffer.release();
        releasePipe(d);
    }
    core_.finish();
    worker_.sessionEnded(core_.id());   // frees this
}

void AsioSession::waitThen(Side side, tcp::socket::wait_type wait, Direction direction, Step next) {
    ++pending_;
    socketOf(side).async_wait(wait, [this, side, direction, next](const error_code& ec) {
        --pending_;
        // Once Closing, every wait ends with operation_aborted and changes nothing.
        if (!core_.closing()) {
            if (ec) perform(core_.on(SessionEvent::failed(side)));
            else (this->*next)(direction);
        }
        completed();
    });
}

void AsioSession::armTimer(routing::TimePoint at) {
    ++pending_;
    timerArmed_ = true;
    const uint8_t arming = ++timerArming_;
    timer_.expires_at(at);   // a wait for an earlier arming ends with operation_aborted
    timer_.async_wait([this, arming](const error_code& ec) {
        --pending_;
        // An expiry already queued when the timer was armed again is not this arming's.
        if (!ec && arming == timerArming_) {
            timerArmed_ = false;
            if (!core_.closing()) timerFired();
        }
        completed();
    });
}

void AsioSession::timerFired() {
    if (core_.state() == SessionState::Connecting) {   // connectTo armed the timer for timeouts.connect
        ++connectAttempt_;
        error_code ignored;
        upstream_.close(ignored);
        perform(core_.on(SessionEvent::connectFailed(ETIMEDOUT)));
        return;
    }
    perform(core_.on(SessionEvent::timerFired(now())));
}

void AsioSession::readHeader(Direction) {
    // Tried at once: a balancer in front sends the header with its connect.
    std::array<uint8_t, 1024> buffer;
    const ssize_t n = ::recv(fdOf(Side::Client), buffer.data(), buffer.size(), 0);
    if (n < 0 && wouldBlock(errno)) {
        waitThen(Side::Client, tcp::socket::wait_read, kClientToBackend, &AsioSession::readHeader);
        return;
    }
    if (n <= 0) {
        perform(core_.on(SessionEvent::headerEnded(n == 0 ? 0 : errno)));
        return;
    }
    perform(core_.on(SessionEvent::headerBytes({buffer.data(), static_cast<std::size_t>(n)})));
}

void AsioSession::connectTo(routing::BackendState& b, std::chrono::milliseconds timeout) {
    // Opened by Asio rather than adopted: a socket it opened itself is closed
    // without an epoll_ctl(DEL) first. Non-blocking through Asio, which then
    // never sets it again at the first wait.
    error_code ec;
    upstream_.open(b.sockaddr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), ec);
    if (!ec) upstream_.non_blocking(true, ec);
    if (ec) {
        const int err = ec.value();   // EMFILE and the like: a local error, not the backend's
        upstream_.close(ec);
        perform(core_.on(SessionEvent::connectFailed(err)));
        return;
    }
    const int fd = upstream_.native_handle();
    setNoDelay(fd);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&b.sockaddr), b.sockaddrLen) != 0 && errno != EINPROGRESS) {
        const int err = errno;
        upstream_.close(ec);
        perform(core_.on(SessionEvent::connectFailed(err)));
        return;
    }
    armTimer(std::chrono::steady_clock::now() + timeout);
    waitConnected(++connectAttempt_);
}

void AsioSession::waitConnected(uint8_t attempt) {
    ++pending_;
    upstream_.async_wait(tcp::socket::wait_write, [this, attempt](const error_code& ec) {
        --pending_;
        // Aborted: the timeout closed the socket (and moved on), or the session closed.
        if (!core_.closing() && attempt == connectAttempt_ && ec != net::error::operation_aborted) connectDone(ec.value());
        completed();
    });
}

void AsioSession::connectDone(int err) {
    if (err == 0) err = connectOutcome(fdOf(Side::Backend));
    if (err == EINPROGRESS) {
        waitConnected(connectAttempt_);
        return;
    }
    if (err == 0) {
        const SessionAction a = core_.on(SessionEvent::connectOk(now()));
        worker_.sessionConnected(*this);
        perform(a);
        return;
    }
    ++connectAttempt_;
    error_code ignored;
    upstream_.close(ignored);
    perform(core_.on(SessionEvent::connectFailed(err)));
}

void AsioSession::sendPreamble(Direction) {
    // The core keeps the preamble until the relay starts.
    const std::string_view rest = core_.preamble();
    const ssize_t n = ::send(fdOf(Side::Backend), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && wouldBlock(errno)) {
        waitThen(Side::Backend, tcp::socket::wait_write, kClientToBackend, &AsioSession::sendPreamble);
        return;
    }
    perform(core_.on(n < 0 ? SessionEvent::failed(Side::Backend)
                           : SessionEvent::preambleSent(static_cast<std::size_t>(n))));
}

void AsioSession::pump(Direction direction) {
    const int from = fdOf(sourceOf(direction));
    const int to = fdOf(sinkOf(direction));
    for (;;) {
        // Read first, wait only on EAGAIN: a busy stream skips the reactor and
        // an idle one holds no buffer.
        BufferPool::Lease buffer = worker_.buffers().acquire();
        const ssize_t n = ::recv(from, buffer.data(), buffer.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (wouldBlock(errno)) {
                buffer.release();
                waitThen(sourceOf(direction), tcp::socket::wait_read, direction, &AsioSession::pump);
            } else {
                perform(core_.on(SessionEvent::failed(sourceOf(direction))));
            }
            return;
        }
        if (n == 0) {
            perform(core_.on(SessionEvent::eof(direction, now())));
            return;
        }
        const auto length = static_cast<uint32_t>(n);
        core_.noteRead(direction, length, length == buffer.size(), now());
        // Write first too: the socket usually takes it all, and the reactor is only for the rest.
        ssize_t written = ::send(to, buffer.data(), length, MSG_NOSIGNAL);
        if (written < 0) {
            if (!wouldBlock(errno)) {
                perform(core_.on(SessionEvent::failed(sinkOf(direction))));   // the receiving side failed
                return;
            }
            written = 0;
        }
        if (static_cast<uint32_t>(written) < length) {
            Flow& f = flow(direction);
            f.buffer = std::move(buffer);
            f.offset = static_cast<uint32_t>(written);
            f.length = length;
            waitThen(sinkOf(direction), tcp::socket::wait_write, direction, &AsioSession::flushWrite);
            return;
        }
        buffer.release();
        if (toSplice(direction)) return;
        if (length < BufferPool::kBufferSize) {
            // A short read emptied the socket: the next read would only say
            // EAGAIN. The wait re-arms the socket, so bytes that came since are reported.
            waitThen(sourceOf(direction), tcp::socket::wait_read, direction, &AsioSession::pump);
            return;
        }
    }
}

void AsioSession::flushWrite(Direction direction) {
    Flow& f = flow(direction);
    const ssize_t n = ::send(fdOf(sinkOf(direction)), f.buffer.data() + f.offset, f.length - f.offset, MSG_NOSIGNAL);
    if (n < 0 && !wouldBlock(errno)) {
        f.buffer.release();
        perform(core_.on(SessionEvent::failed(sinkOf(direction))));
        return;
    }
    if (n > 0) f.offset += static_cast<uint32_t>(n);
    if (f.offset < f.length) {
        waitThen(sinkOf(direction), tcp::socket::wait_write, direction, &AsioSession::flushWrite);
        return;
    }
    f.buffer.release();
    if (!toSplice(direction)) pump(direction);
}

bool AsioSession::toSplice(Direction direction) {
    if (!startSplicing(flow(direction).spliced, worker_.pipes(), core_, direction, worker_.openSessions())) return false;
    splice(direction);
    return true;
}

void AsioSession::releasePipe(Direction direction) { stopSplicing(flow(direction).spliced, worker_.pipes()); }

void AsioSession::splice(Direction d) {
    switch (pumpSplice(flow(d).spliced, fdOf(sourceOf(d)), fdOf(sinkOf(d)), core_, d, now())) {
    case SpliceNext::WaitReadable: waitThen(sourceOf(d), tcp::socket::wait_read, d, &AsioSession::splice); return;
    case SpliceNext::WaitWritable: waitThen(sinkOf(d), tcp::socket::wait_write, d, &AsioSession::splice); return;
    case SpliceNext::Ended: perform(core_.on(SessionEvent::eof(d, now()))); return;
    case SpliceNext::SourceFailed: perform(core_.on(SessionEvent::failed(sourceOf(d)))); return;
    case SpliceNext::SinkFailed: perform(core_.on(SessionEvent::failed(sinkOf(d)))); return;
    case SpliceNext::BackToBuffers:
        releasePipe(d);
        pump(d);
        return;
    }
}

} // namespace switchyard::proxy::asio_engine
