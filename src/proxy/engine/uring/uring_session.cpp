#include "switchyard/proxy/engine/uring/uring_session.h"

#include <cerrno>

#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchyard/proxy/engine/uring/uring_worker.h"
#include "switchyard/proxy/no_delay.h"
#include "switchyard/proxy/reset_relay.h"

namespace switchyard::proxy::uring_engine {
namespace {

using Kind = SessionAction::Kind;
constexpr Direction kClientToBackend = Direction::ClientToBackend;
constexpr Direction kBackendToClient = Direction::BackendToClient;

uint16_t bufferIdOf(const io_uring_cqe& cqe) { return static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT); }

Op recvOp(Direction d) { return d == kClientToBackend ? Op::Recv0 : Op::Recv1; }
Op sendOp(Direction d) { return d == kClientToBackend ? Op::Send0 : Op::Send1; }
Op pollOp(Direction d) { return d == kClientToBackend ? Op::Poll0 : Op::Poll1; }

} // namespace

UringSession::UringSession(UringWorker& worker, int clientFd, uint64_t id, std::size_t serviceIndex)
    : worker_(worker), clientFd_(clientFd), core_(worker.sessionContext(), id, serviceIndex) {}

UringSession::~UringSession() {
    if (clientFd_ >= 0) ::close(clientFd_);
    if (backendFd_ >= 0) ::close(backendFd_);
}

void UringSession::start() {
    const SessionAction a = core_.on(SessionEvent::accepted(clientFd_));
    if (a.kind != Kind::Close) setNoDelay(clientFd_);
    perform(a);
    maybeFinish();
}

void UringSession::onCompletion(Op op, const io_uring_cqe& cqe) {
    --pending_;
    switch (op) {
    case Op::Recv0:
        if (core_.state() == SessionState::Header) onHeaderBytes(cqe);
        else onRecv(kClientToBackend, cqe);
        break;
    case Op::Recv1: onRecv(kBackendToClient, cqe); break;
    case Op::Send0: onSend(kClientToBackend, cqe.res); break;
    case Op::Send1: onSend(kBackendToClient, cqe.res); break;
    case Op::SendPreamble:
        if (!core_.closing())
            perform(core_.on(cqe.res < 0 ? SessionEvent::failed(Side::Backend)
                                         : SessionEvent::preambleSent(static_cast<std::size_t>(cqe.res))));
        break;
    case Op::Connect: onConnect(cqe.res); break;
    case Op::Timer: onTimer(cqe.res); break;
    // Errors and hang-ups show up as the splice's own result.
    case Op::Poll0:
        if (!core_.closing() && cqe.res != -ECANCELED) pumpSplice(kClientToBackend);
        break;
    case Op::Poll1:
        if (!core_.closing() && cqe.res != -ECANCELED) pumpSplice(kBackendToClient);
        break;
    default: break;   // ConnectTimeout: the connect's own completion says what happened; CancelFd
    }
    maybeFinish();
}

void UringSession::closeFromOutside(CloseReason reason) {
    perform(core_.on(SessionEvent::closeRequested(reason)));
    maybeFinish();
}

void UringSession::bufferAvailable(Direction direction) {
    flow(direction).waitingBuffer = false;
    --pending_;
    if (!core_.closing()) submitRecv(direction);
    maybeFinish();
}

void UringSession::perform(const SessionAction& a) {
    switch (a.kind) {
    case Kind::None: return;
    case Kind::ReadHeader:
        if (!timerArmed_) armTimer(a.at);
        submitRecv(kClientToBackend);
        return;
    case Kind::Connect: connectTo(*a.backend, a.timeout); return;
    case Kind::SendPreamble: submitPreamble(); return;
    case Kind::Relay:
        if (!timerArmed_) armTimer(a.at);
        submitRecv(kClientToBackend);
        submitRecv(kBackendToClient, true);   // the backend has not answered yet
        return;
    case Kind::ArmTimer: armTimer(a.at); return;
    case Kind::ShutdownWrite:
        releasePipe(a.direction);   // empty by now: a half-closed flow need not hold its descriptors
        // Both ways ended: the close sends the FIN, a shutdown before it would only cost a system call.
        if (a.thenClose) {
            cancelAll();
            return;
        }
        ::shutdown(fdOf(sinkOf(a.direction)), SHUT_WR);
        if (a.moveTimer && timerArmed_) {
            // Move the armed idle timer to the earlier deadline (if it fired meanwhile, onTimer re-arms).
            io_uring_sqe* sqe = worker_.sqe();
            io_uring_prep_timeout_update(sqe, worker_.timespecAt(a.at), encodeUserData(this, Op::Timer),
                                         IORING_TIMEOUT_ABS);
            io_uring_sqe_set_data64(sqe, encodeUserData(nullptr, Op::Ignore));
        }
        return;
    case Kind::Close:
        if (a.reset) resetOnClose(fdOf(a.resetSide));   // the fds close when the last op completed
        cancelAll();
        return;
    }
}

// Cancel is how work ends: every op in flight completes (most with
// -ECANCELED) and the last one frees the session, closing its fds. A cancel
// names its fd by number and the kernel looks the number up only when the SQE
// is submitted, so each cancel is an op the session waits for too: else an op
// that completes on its own in the same batch could free the session, and the
// cancel, still queued, would meet whatever socket reused the number.
void UringSession::cancelAll() {
    // Most connections end with both directions at EOF and only the timer in
    // flight: then there is nothing on the sockets to cancel.
    const int waits = (flows_[0].waitingBuffer ? 1 : 0) + (flows_[1].waitingBuffer ? 1 : 0);
    const bool socketOps = pending_ > (timerArmed_ ? 1 : 0) + waits;
    for (const int fd : {clientFd_, backendFd_}) {
        if (fd < 0 || !socketOps) continue;
        io_uring_sqe* sqe = worker_.sqe();
        io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, encodeUserData(this, Op::CancelFd));
        ++pending_;
    }
    if (timerArmed_) {
        io_uring_sqe* sqe = worker_.sqe();
        io_uring_prep_timeout_remove(sqe, encodeUserData(this, Op::Timer), 0);
        io_uring_sqe_set_data64(sqe, encodeUserData(nullptr, Op::Ignore));
    }
    for (const Direction d : {kClientToBackend, kBackendToClient}) {
        if (!flow(d).waitingBuffer) continue;
        worker_.cancelBufferWait(this, d);
        flow(d).waitingBuffer = false;
        --pending_;
    }
}

void UringSession::maybeFinish() {
    if (core_.closing() && pending_ == 0) finish();
}

void UringSession::finish() {
    for (const Direction d : {kClientToBackend, kBackendToClient}) {
        releaseBuffer(d);
        releasePipe(d);
    }
    core_.finish();
    worker_.sessionEnded(this);   // frees this
}

void UringSession::submitRecv(Direction d, bool pollFirst) {
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_recv(sqe, fdOf(sourceOf(d)), nullptr, worker_.buffers().bufferSize(), 0);
    // Nothing expected yet: skip the attempt that would fail with EAGAIN and wait for data at once.
    if (pollFirst) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = worker_.buffers().group();
    io_uring_sqe_set_data64(sqe, encodeUserData(this, recvOp(d)));
    ++pending_;
}

void UringSession::submitSend(Direction d) {
    const Flow& f = flow(d);
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_send(sqe, fdOf(sinkOf(d)), worker_.buffers().data(static_cast<uint16_t>(f.buffer)) + f.offset,
                       f.length - f.offset, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, encodeUserData(this, sendOp(d)));
    ++pending_;
}

void UringSession::submitPreamble() {
    // The core keeps the preamble until the relay starts, so it outlives the send.
    const std::string_view rest = core_.preamble();
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_send(sqe, backendFd_, rest.data(), rest.size(), MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, encodeUserData(this, Op::SendPreamble));
    ++pending_;
}

void UringSession::armTimer(routing::TimePoint at) {
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_timeout(sqe, worker_.timespecAt(at), 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, encodeUserData(this, Op::Timer));
    timerArmed_ = true;
    ++pending_;
}

void UringSession::releaseBuffer(Direction d) {
    Flow& f = flow(d);
    if (f.buffer < 0) return;
    worker_.recycle(static_cast<uint16_t>(f.buffer));
    f.buffer = -1;
}

void UringSession::dropSelectedBuffer(const io_uring_cqe& cqe) {
    if (!(cqe.flags & IORING_CQE_F_BUFFER)) return;
    const uint16_t id = bufferIdOf(cqe);
    worker_.buffers().take(id);
    worker_.recycle(id);
}

bool UringSession::dropped(Direction d, const io_uring_cqe& cqe) {
    if (core_.closing()) {
        dropSelectedBuffer(cqe);
        return true;
    }
    if (cqe.res == -ENOBUFS) {
        // Every buffer is in flight: wait for one to come back.
        flow(d).waitingBuffer = true;
        ++pending_;
        worker_.waitForBuffer(this, d);
        return true;
    }
    if (cqe.res <= 0) dropSelectedBuffer(cqe);
    return false;
}

void UringSession::onHeaderBytes(const io_uring_cqe& cqe) {
    if (dropped(kClientToBackend, cqe)) return;
    if (cqe.res <= 0) {
        perform(core_.on(SessionEvent::headerEnded(-cqe.res)));
        return;
    }
    const uint16_t id = bufferIdOf(cqe);
    const auto* data = reinterpret_cast<const uint8_t*>(worker_.buffers().take(id));
    // The core copies what came after the header: the buffer goes back at once.
    const SessionAction a = core_.on(SessionEvent::headerBytes({data, static_cast<std::size_t>(cqe.res)}));
    worker_.recycle(id);
    perform(a);
}

void UringSession::connectTo(routing::BackendState& b, std::chrono::milliseconds timeout) {
    const int fd = ::socket(b.sockaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perform(core_.on(SessionEvent::connectFailed(errno)));
        return;
    }
    setNoDelay(fd);
    backendFd_ = fd;
    // The connect and its timeout must reach the kernel in one submission to stay linked.
    worker_.reserve(2);
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&b.sockaddr), b.sockaddrLen);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, encodeUserData(this, Op::Connect));
    io_uring_sqe* linked = worker_.sqe();
    io_uring_prep_link_timeout(linked, worker_.timespecIn(timeout), 0);
    io_uring_sqe_set_data64(linked, encodeUserData(this, Op::ConnectTimeout));
    pending_ += 2;
}

void UringSession::onConnect(int res) {
    if (core_.closing()) return;   // its fd closes with the session, after every cancel completed
    if (res == 0) {
        const SessionAction a = core_.on(SessionEvent::connectOk(std::chrono::steady_clock::now()));
        worker_.sessionConnected(*this);
        perform(a);
        return;
    }
    ::close(backendFd_);
    backendFd_ = -1;
    // -ECANCELED: the linked timeout fired first.
    perform(core_.on(SessionEvent::connectFailed(res == -ECANCELED ? ETIMEDOUT : -res)));
}

void UringSession::onRecv(Direction d, const io_uring_cqe& cqe) {
    if (dropped(d, cqe)) return;
    const int res = cqe.res;
    if (res <= 0) {
        perform(core_.on(res == 0 ? SessionEvent::eof(d, worker_.now()) : SessionEvent::failed(sourceOf(d))));
        return;
    }
    const uint16_t id = bufferIdOf(cqe);
    worker_.buffers().take(id);
    Flow& f = flow(d);
    f.buffer = id;
    f.offset = 0;
    f.length = static_cast<uint32_t>(res);
    core_.noteRead(d, f.length, f.length == worker_.buffers().bufferSize(), worker_.now());
    submitSend(d);
}

void UringSession::onSend(Direction d, int res) {
    Flow& f = flow(d);
    if (core_.closing()) {
        releaseBuffer(d);
        return;
    }
    if (res < 0) {
        releaseBuffer(d);
        // The receiving side failed: that side is the one that reset.
        perform(core_.on(SessionEvent::failed(sinkOf(d))));
        return;
    }
    f.offset += static_cast<uint32_t>(res);
    if (f.offset < f.length) {
        submitSend(d);
        return;
    }
    releaseBuffer(d);
    if (core_.directionDone(d)) return;
    if (startSplice(d)) return;
    submitRecv(d, f.length < worker_.buffers().bufferSize());   // a short read emptied the socket
}

void UringSession::releasePipe(Direction d) { stopSplicing(flow(d).spliced, worker_.pipes()); }

bool UringSession::startSplice(Direction d) {
    if (!startSplicing(flow(d).spliced, worker_.pipes(), core_, d, worker_.openSessions())) return false;
    pumpSplice(d);
    return true;
}

void UringSession::pumpSplice(Direction d) {
    const int source = fdOf(sourceOf(d));
    const int sink = fdOf(sinkOf(d));
    switch (proxy::pumpSplice(flow(d).spliced, source, sink, core_, d, worker_.now())) {
    case SpliceNext::WaitReadable: armPoll(d, source, POLLIN); return;
    case SpliceNext::WaitWritable: armPoll(d, sink, POLLOUT); return;
    case SpliceNext::Ended: perform(core_.on(SessionEvent::eof(d, worker_.now()))); return;
    case SpliceNext::SourceFailed: perform(core_.on(SessionEvent::failed(sourceOf(d)))); return;
    case SpliceNext::SinkFailed: perform(core_.on(SessionEvent::failed(sinkOf(d)))); return;
    case SpliceNext::BackToBuffers:
        releasePipe(d);
        submitRecv(d);
        return;
    }
}

void UringSession::armPoll(Direction d, int fd, unsigned events) {
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, encodeUserData(this, pollOp(d)));
    ++pending_;
}

void UringSession::onTimer(int res) {
    timerArmed_ = false;
    if (core_.closing() || res == -ECANCELED) return;
    perform(core_.on(SessionEvent::timerFired(std::chrono::steady_clock::now())));
}

} // namespace switchyard::proxy::uring_engine
