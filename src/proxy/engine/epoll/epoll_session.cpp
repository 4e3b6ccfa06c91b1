#include "switchyard/proxy/engine/epoll/epoll_session.h"

#include <array>
#include <cerrno>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchyard/proxy/engine/epoll/epoll_worker.h"
#include "switchyard/proxy/no_delay.h"
#include "switchyard/proxy/reset_relay.h"

namespace switchyard::proxy::epoll_engine {
namespace {

using Kind = SessionAction::Kind;
constexpr Direction kClientToBackend = Direction::ClientToBackend;
constexpr Direction kBackendToClient = Direction::BackendToClient;

bool wouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// A connecting socket said writable: 0 (connected), its errno, or EINPROGRESS
// for an edge that was not the connect's end. A peer address means
// connected; else SO_ERROR tells.
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

EpollSession::EpollSession(EpollWorker& worker, UniqueFd client, uint64_t id, std::size_t serviceIndex)
    : worker_(worker), client_(std::move(client)), timer_(expireBy<EpollSession, &EpollSession::timerFired>, this),
      core_(worker.sessionContext(), id, serviceIndex) {}

void EpollSession::start() {
    const SessionAction a = core_.on(SessionEvent::accepted(client_.get()));
    if (a.kind != Kind::Close) setNoDelay(client_.get());
    perform(a);
    endIfClosed();
}

void EpollSession::onEvents(Side side, uint32_t events) {
    // Errors and hang-ups are passed on by the next recv or send.
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLHUP | EPOLLERR)) readable(side) = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable(side) = true;
    // The peer's FIN, an error or an urgent mark: a short read no longer proves the socket empty.
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) shortReadsProveNothing_[static_cast<int>(side)] = true;
    resume(side);
}

void EpollSession::resume(Side side) {
    for (const Direction d : {kClientToBackend, kBackendToClient}) {
        Flow& f = flow(d);
        if (core_.closing()) break;
        if (!f.next || f.waitSide != side || !ready(side, f.waitFor)) continue;
        const Step next = f.next;
        f.next = nullptr;
        (this->*next)(d);
    }
    endIfClosed();
}

void EpollSession::close(CloseReason reason) {
    perform(core_.on(SessionEvent::closeRequested(reason)));
    endIfClosed();
}

void EpollSession::closeSockets() {
    // Closing takes a socket out of the epoll set: nothing waits any more.
    client_.reset();
    upstream_.reset();
    worker_.deadlines().cancel(timer_);
    flows_[0].next = flows_[1].next = nullptr;
}

void EpollSession::perform(const SessionAction& a) {
    switch (a.kind) {
    case Kind::None: return;
    case Kind::ReadHeader:
        if (!timer_.armed()) worker_.deadlines().arm(timer_, a.at);
        readHeader(kClientToBackend);
        return;
    case Kind::Connect: connectTo(*a.backend, a.timeout); return;
    case Kind::SendPreamble: sendPreamble(kClientToBackend); return;
    case Kind::Relay:
        worker_.deadlines().arm(timer_, a.at);   // the idle deadline replaces the connect timeout
        // The client's request is usually there already; the backend's answer
        // is not yet: its flow waits for the backend's first edge.
        pump(kClientToBackend);
        if (!core_.closing()) waitThen(Side::Backend, Readiness::Readable, kBackendToClient, &EpollSession::pump);
        return;
    case Kind::ArmTimer: worker_.deadlines().arm(timer_, a.at); return;
    case Kind::ShutdownWrite:
        releasePipe(a.direction);   // empty by now: a half-closed flow need not hold its descriptors
        // Both ways ended: close() sends the FIN, a shutdown before it would only cost a system call.
        if (a.thenClose) {
            closeSockets();
            return;
        }
        ::shutdown(fdOf(sinkOf(a.direction)), SHUT_WR);
        if (a.moveTimer) worker_.deadlines().arm(timer_, a.at);
        return;
    case Kind::Close:
        if (a.reset) resetOnClose(fdOf(a.resetSide));
        closeSockets();
        return;
    }
}

void EpollSession::endIfClosed() {
    if (ended_ || !core_.closing()) return;
    ended_ = true;
    closeSockets();
    for (const Direction d : {kClientToBackend, kBackendToClient}) {
        flow(d).buffer.release();
        releasePipe(d);
    }
    core_.finish();
    worker_.sessionEnded(core_.id());   // frees this
}

void EpollSession::waitThen(Side side, Readiness readiness, Direction direction, Step next) {
    Flow& f = flow(direction);
    f.next = next;
    f.waitSide = side;
    f.waitFor = readiness;
    // Still ready: no edge will come for it. Go on after the other sessions' events.
    if (ready(side, readiness)) worker_.runSoon(core_.id(), side);
}

void EpollSession::timerFired() {
    if (core_.closing()) return;
    if (core_.state() == SessionState::Connecting) {   // connectTo armed the timer for timeouts.connect
        connectFailed(ETIMEDOUT);
    } else {
        perform(core_.on(SessionEvent::timerFired(worker_.now())));
    }
    endIfClosed();
}

void EpollSession::readHeader(Direction) {
    // Tried at once: a balancer in front sends the header with its connect.
    std::array<uint8_t, 1024> buffer;
    const ssize_t n = ::recv(client_.get(), buffer.data(), buffer.size(), 0);
    if (n < 0 && wouldBlock(errno)) {
        readable(Side::Client) = false;
        waitThen(Side::Client, Readiness::Readable, kClientToBackend, &EpollSession::readHeader);
        return;
    }
    if (n <= 0) {
        perform(core_.on(SessionEvent::headerEnded(n == 0 ? 0 : errno)));
        return;
    }
    perform(core_.on(SessionEvent::headerBytes({buffer.data(), static_cast<std::size_t>(n)})));
}

void EpollSession::connectTo(routing::BackendState& b, std::chrono::milliseconds timeout) {
    const int fd = ::socket(b.sockaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {   // EMFILE and the like: a local error, not the backend's
        perform(core_.on(SessionEvent::connectFailed(errno)));
        return;
    }
    upstream_.reset(fd);
    setNoDelay(fd);
    readable(Side::Backend) = writable(Side::Backend) = shortReadsProveNothing_[1] = false;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&b.sockaddr), b.sockaddrLen) != 0 && errno != EINPROGRESS) {
        connectFailed(errno);
        return;
    }
    // Watched after connect(): before it, an unconnected socket reports a hang-up.
    if (const int err = worker_.watch(fd, core_.id(), Side::Backend); err != 0) {
        connectFailed(err);
        return;
    }
    worker_.deadlines().arm(timer_, worker_.now() + timeout);
    waitThen(Side::Backend, Readiness::Writable, kClientToBackend, &EpollSession::connectReady);
}

void EpollSession::connectReady(Direction) {
    const int err = connectOutcome(upstream_.get());
    if (err == EINPROGRESS) {
        writable(Side::Backend) = false;
        waitThen(Side::Backend, Readiness::Writable, kClientToBackend, &EpollSession::connectReady);
        return;
    }
    if (err != 0) {
        connectFailed(err);
        return;
    }
    const SessionAction a = core_.on(SessionEvent::connectOk(worker_.now()));
    worker_.sessionConnected(*this);
    perform(a);
}

void EpollSession::connectFailed(int err) {
    // Closing the socket takes it out of the epoll set; a retry opens a new one.
    upstream_.reset();
    flow(kClientToBackend).next = nullptr;
    perform(core_.on(SessionEvent::connectFailed(err)));
}

void EpollSession::sendPreamble(Direction) {
    // The core keeps the preamble until the relay starts.
    const std::string_view rest = core_.preamble();
    const ssize_t n = ::send(upstream_.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && wouldBlock(errno)) {
        writable(Side::Backend) = false;
        waitThen(Side::Backend, Readiness::Writable, kClientToBackend, &EpollSession::sendPreamble);
        return;
    }
    perform(core_.on(n < 0 ? SessionEvent::failed(Side::Backend)
                           : SessionEvent::preambleSent(static_cast<std::size_t>(n))));
}

void EpollSession::pump(Direction direction) {
    const Side source = sourceOf(direction);
    const Side sink = sinkOf(direction);
    for (;;) {
        // Read first, wait only on EAGAIN: a busy stream skips epoll and an
        // idle one holds no buffer.
        BufferPool::Lease buffer = worker_.buffers().acquire();
        const ssize_t n = ::recv(fdOf(source), buffer.data(), buffer.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (wouldBlock(errno)) {
                buffer.release();
                readable(source) = false;
                waitThen(source, Readiness::Readable, direction, &EpollSession::pump);
            } else {
                perform(core_.on(SessionEvent::failed(source)));
            }
            return;
        }
        if (n == 0) {
            perform(core_.on(SessionEvent::eof(direction, worker_.now())));
            return;
        }
        const auto length = static_cast<uint32_t>(n);
        core_.noteRead(direction, length, length == buffer.size(), worker_.now());
        // Write first too: the socket usually takes it all.
        ssize_t written = ::send(fdOf(sink), buffer.data(), length, MSG_NOSIGNAL);
        if (written < 0) {
            if (!wouldBlock(errno)) {
                perform(core_.on(SessionEvent::failed(sink)));   // the receiving side failed
                return;
            }
            written = 0;
        }
        if (static_cast<uint32_t>(written) < length) {
            Flow& f = flow(direction);
            f.buffer = std::move(buffer);
            f.offset = static_cast<uint32_t>(written);
            f.length = length;
            writable(sink) = false;   // a short write filled the socket: its next edge says when there is room
            waitThen(sink, Readiness::Writable, direction, &EpollSession::flushWrite);
            return;
        }
        buffer.release();
        if (toSplice(direction)) return;
        if (length < BufferPool::kBufferSize && !shortReadsProveNothing_[static_cast<int>(source)]) {
            // A short read emptied the socket (TCP returns all it holds): the
            // next read would only say EAGAIN, and every later arrival is an
            // edge. Not so once the peer's FIN came with an edge (the next
            // read says EOF, and no edge is left to say so), nor past an
            // urgent mark (a read stops short before it, bytes wait behind it).
            readable(source) = false;
            waitThen(source, Readiness::Readable, direction, &EpollSession::pump);
            return;
        }
    }
}

void EpollSession::flushWrite(Direction direction) {
    Flow& f = flow(direction);
    const Side sink = sinkOf(direction);
    const ssize_t n = ::send(fdOf(sink), f.buffer.data() + f.offset, f.length - f.offset, MSG_NOSIGNAL);
    if (n < 0 && !wouldBlock(errno)) {
        f.buffer.release();
        perform(core_.on(SessionEvent::failed(sink)));
        return;
    }
    if (n > 0) f.offset += static_cast<uint32_t>(n);
    if (f.offset < f.length) {
        writable(sink) = false;
        waitThen(sink, Readiness::Writable, direction, &EpollSession::flushWrite);
        return;
    }
    f.buffer.release();
    if (!toSplice(direction)) pump(direction);
}

bool EpollSession::toSplice(Direction direction) {
    if (!startSplicing(flow(direction).spliced, worker_.pipes(), core_, direction, worker_.openSessions())) return false;
    splice(direction);
    return true;
}

void EpollSession::releasePipe(Direction direction) { stopSplicing(flow(direction).spliced, worker_.pipes()); }

void EpollSession::splice(Direction d) {
    SplicedFlow& spliced = flow(d).spliced;
    switch (pumpSplice(spliced, fdOf(sourceOf(d)), fdOf(sinkOf(d)), core_, d, worker_.now())) {
    case SpliceNext::WaitReadable:
        if (spliced.waitsOnEAGAIN) readable(sourceOf(d)) = false;
        waitThen(sourceOf(d), Readiness::Readable, d, &EpollSession::splice);
        return;
    case SpliceNext::WaitWritable:
        if (spliced.waitsOnEAGAIN) writable(sinkOf(d)) = false;
        waitThen(sinkOf(d), Readiness::Writable, d, &EpollSession::splice);
        return;
    case SpliceNext::Ended: perform(core_.on(SessionEvent::eof(d, worker_.now()))); return;
    case SpliceNext::SourceFailed: perform(core_.on(SessionEvent::failed(sourceOf(d)))); return;
    case SpliceNext::SinkFailed: perform(core_.on(SessionEvent::failed(sinkOf(d)))); return;
    case SpliceNext::BackToBuffers:
        releasePipe(d);
        pump(d);
        return;
    }
}

} // namespace switchyard::proxy::epoll_engine
