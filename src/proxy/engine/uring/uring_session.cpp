#include "switchyard/proxy/engine/uring/uring_session.h"

#include <algorithm>
#include <cerrno>
#include <span>

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchyard/proxy/engine/uring/uring_worker.h"
#include "switchyard/proxy/reset_relay.h"
#include "switchyard/telemetry/access_log.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::proxy::uring_engine {
namespace {

void setNoDelay(int fd) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

uint16_t bufferIdOf(const io_uring_cqe& cqe) { return static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT); }

const auto& log() {
    static const auto logger = telemetry::logger("proxy");
    return logger;
}

} // namespace

UringSession::UringSession(UringWorker& worker, int clientFd, uint64_t id, std::size_t serviceIndex)
    : worker_(worker), id_(id), clientFd_(clientFd), serviceIndex_(static_cast<uint32_t>(serviceIndex)) {}

UringSession::~UringSession() {
    if (clientFd_ >= 0) ::close(clientFd_);
    if (backendFd_ >= 0) ::close(backendFd_);
}

const routing::ServiceRoute* UringSession::service() const {
    if (!setup_ || !setup_->snapshot) return nullptr;
    return &setup_->snapshot->services[serviceIndex_];
}

void UringSession::sideFailed(int side) {
    reason_.noteReset(side == 0);
    resetOnClose(side == 0 ? backendFd_ : clientFd_);   // the fds close when the last op completed
    close(reason_.reason());
}

void UringSession::start() {
    setup_ = std::make_unique<Setup>();
    setup_->snapshot = worker_.snapshot();
    if (!setup_->snapshot || serviceIndex_ >= setup_->snapshot->services.size()) {
        setup_->snapshot.reset();
        close(CloseReason::NoBackend);
        maybeFinish();
        return;
    }
    const routing::ServiceRoute& svc = *service();
    serviceState_ = svc.state;
    if (telemetry::accessLogEnabled()) {
        access_ = std::make_unique<AccessInfo>();
        startAccessInfo(*access_, clientFd_);
    }
    admitted_ = true;
    if (!admitConnection(svc)) {
        close(CloseReason::ConnectionLimit);
        maybeFinish();
        return;
    }
    setNoDelay(clientFd_);
    idleTimeout_ = svc.idleTimeout;
    halfClosedTimeout_ = svc.halfClosedTimeout;
    setup_->addresses = clientAddressesOf(clientFd_, svc);
    if (svc.acceptProxy) {
        state_ = State::Header;
        setup_->decoder = std::make_unique<ProxyHeaderDecoder>();
        armTimer(std::chrono::steady_clock::now() + svc.acceptProxyTimeout);
        submitRecv(0);
        return;
    }
    connectNext();
    maybeFinish();
}

void UringSession::onCompletion(Op op, const io_uring_cqe& cqe) {
    --pending_;
    switch (op) {
    case Op::Recv0:
        if (state_ == State::Header) onHeaderBytes(cqe);
        else onRecv(0, cqe);
        break;
    case Op::Recv1: onRecv(1, cqe); break;
    case Op::Send0: onSend(0, cqe.res); break;
    case Op::Send1: onSend(1, cqe.res); break;
    case Op::SendPreamble: onPreambleSent(cqe.res); break;
    case Op::Connect: onConnect(cqe.res); break;
    case Op::Timer: onTimer(cqe.res); break;
    case Op::Poll0: onPoll(0, cqe.res); break;
    case Op::Poll1: onPoll(1, cqe.res); break;
    default: break;   // ConnectTimeout: the connect's own completion says what happened; CancelFd
    }
    maybeFinish();
}

void UringSession::closeFromOutside(CloseReason reason) {
    close(reason);
    maybeFinish();
}

void UringSession::bufferAvailable(int direction) {
    flows_[direction].waitingBuffer = false;
    --pending_;
    if (state_ != State::Closing) submitRecv(direction);
    maybeFinish();
}

// Cancel is how work ends: every op in flight completes (most with
// -ECANCELED) and the last one frees the session, closing its fds. A cancel
// names its fd by number and the kernel looks the number up only when the SQE
// is submitted, so each cancel is an op the session waits for too: else an op
// that completes on its own in the same batch could free the session, and the
// cancel, still queued, would meet whatever socket reused the number.
void UringSession::close(CloseReason reason) {
    reason_.note(reason);
    if (state_ == State::Closing) return;
    state_ = State::Closing;
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
    for (int d = 0; d < 2; ++d) {
        if (!flows_[d].waitingBuffer) continue;
        worker_.cancelBufferWait(this, d);
        flows_[d].waitingBuffer = false;
        --pending_;
    }
}

void UringSession::maybeFinish() {
    if (state_ == State::Closing && pending_ == 0) finish();
}

void UringSession::finish() {
    const unsigned worker = worker_.index();
    releaseBuffer(0);
    releaseBuffer(1);
    releasePipe(0);
    releasePipe(1);
    if (backend_) {
        bytes_.flush(*backend_, worker);
        const CloseReason reason = reason_.reason();
        countSessionEnd(*backend_, worker, reason, firstBytes_.sawBackendByte(), worker_.snapshot(), serviceIndex_,
                        connectedAt_);
        log()->debug("conn {}: {} closed ({}), {} bytes in, {} bytes out", id_, backend_->key, toString(reason),
                     bytes_.total(0), bytes_.total(1));
    }
    if (access_) {
        const routing::ServiceRoute* svc = service();
        logSessionAccess(*access_, svc ? std::string_view(svc->name) : std::string_view(), backend_.get(),
                         connectedAt_, bytes_.total(0), bytes_.total(1), reason_.reason(), firstBytes_);
    }
    if (admitted_) releaseConnection(*serviceState_);
    worker_.sessionEnded(this);   // frees this
}

void UringSession::submitRecv(int direction) {
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_recv(sqe, direction == 0 ? clientFd_ : backendFd_, nullptr, worker_.buffers().bufferSize(), 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = worker_.buffers().group();
    io_uring_sqe_set_data64(sqe, encodeUserData(this, direction == 0 ? Op::Recv0 : Op::Recv1));
    ++pending_;
}

void UringSession::submitSend(int direction) {
    const Flow& f = flows_[direction];
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_send(sqe, direction == 0 ? backendFd_ : clientFd_,
                       worker_.buffers().data(static_cast<uint16_t>(f.buffer)) + f.offset, f.length - f.offset,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, encodeUserData(this, direction == 0 ? Op::Send0 : Op::Send1));
    ++pending_;
}

void UringSession::submitPreamble() {
    const Setup& s = *setup_;
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_send(sqe, backendFd_, s.preamble.data() + s.preambleSent, s.preamble.size() - s.preambleSent,
                       MSG_NOSIGNAL);
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

void UringSession::releaseBuffer(int direction) {
    Flow& f = flows_[direction];
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

void UringSession::onHeaderBytes(const io_uring_cqe& cqe) {
    if (state_ == State::Closing) {
        dropSelectedBuffer(cqe);
        return;
    }
    if (cqe.res == -ENOBUFS) {
        flows_[0].waitingBuffer = true;
        ++pending_;
        worker_.waitForBuffer(this, 0);
        return;
    }
    if (cqe.res <= 0) {
        dropSelectedBuffer(cqe);
        headerFailed(cqe.res == 0 && !setup_->headerBytesSeen, false);
        return;
    }
    const uint16_t id = bufferIdOf(cqe);
    const auto* data = reinterpret_cast<const uint8_t*>(worker_.buffers().take(id));
    const auto n = static_cast<std::size_t>(cqe.res);
    setup_->headerBytesSeen = true;
    ProxyHeaderDecoder& decoder = *setup_->decoder;
    switch (decoder.feed({data, n})) {
    case ProxyHeaderDecoder::Status::NeedMore:
        worker_.recycle(id);
        submitRecv(0);
        return;
    case ProxyHeaderDecoder::Status::Error:
        worker_.recycle(id);
        headerFailed(false, false);
        return;
    case ProxyHeaderDecoder::Status::Done:
        // What came after the header is the client's: it goes to the backend first.
        setup_->early.assign(reinterpret_cast<const char*>(data) + decoder.consumed(), n - decoder.consumed());
        worker_.recycle(id);
        adoptProxyHeader(decoder.header(), setup_->addresses, access_.get());
        setup_->decoder.reset();
        state_ = State::Connecting;
        connectNext();
        return;
    }
}

void UringSession::headerFailed(bool clientGone, bool timedOut) {
    if (state_ == State::Closing) return;   // closed from outside (shutdown) meanwhile
    // A client that connects and leaves without a byte (a TCP health check of
    // the balancer in front) is not a protocol error.
    reason_.note(clientGone ? CloseReason::ClientClose : CloseReason::ClientReset);
    countClosedWithoutBackend(*serviceState_, reason_.reason());
    if (!clientGone) {
        countProxyHeaderFailure(*serviceState_, timedOut);
        const routing::ServiceRoute& svc = *service();
        const ProxyHeaderDecoder* decoder = setup_->decoder.get();
        log()->debug("conn {}: service {}: closing: PROXY header {}", id_, svc.name,
                     timedOut ? "not complete within " + config::formatDuration(svc.acceptProxyTimeout)
                     : !decoder || decoder->error().empty() ? std::string("cut short")
                                                            : decoder->error());
    }
    close(reason_.reason());
}

void UringSession::connectNext() {
    Setup& s = *setup_;
    const routing::ServiceRoute& svc = *service();
    const unsigned worker = worker_.index();
    if (s.attemptsMade == 0) s.attempts.clientHash = s.addresses.hash;
    for (;;) {
        if (s.attemptsMade > svc.retries) {
            reason_.note(CloseReason::ConnectFailed);
            connectFailed();
            return;
        }
        const routing::Pick pick = worker_.selector().next(svc, s.attempts);
        if (!pick.backend) {
            reason_.note(s.attemptsMade == 0 ? CloseReason::NoBackend : CloseReason::ConnectFailed);
            connectFailed();
            return;
        }
        ++s.attemptsMade;
        s.trying = pick.backend->handle;
        routing::BackendState& b = *s.trying;
        if (s.attemptsMade > 1) countRetry(b, worker, access_.get());
        countConnectAttempt(b, worker);
        const int fd = ::socket(b.sockaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            countConnectFailure(svc, b, worker, errno);
            continue;
        }
        setNoDelay(fd);
        backendFd_ = fd;
        s.connectStarted = std::chrono::steady_clock::now();
        // The connect and its timeout must reach the kernel in one submission to stay linked.
        worker_.reserve(2);
        io_uring_sqe* sqe = worker_.sqe();
        io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&b.sockaddr), b.sockaddrLen);
        sqe->flags |= IOSQE_IO_LINK;
        io_uring_sqe_set_data64(sqe, encodeUserData(this, Op::Connect));
        io_uring_sqe* timeout = worker_.sqe();
        io_uring_prep_link_timeout(timeout, worker_.timespecIn(svc.connectTimeout), 0);
        io_uring_sqe_set_data64(timeout, encodeUserData(this, Op::ConnectTimeout));
        pending_ += 2;
        return;
    }
}

void UringSession::onConnect(int res) {
    if (state_ == State::Closing) return;
    if (res == 0) {
        connected();
        return;
    }
    // -ECANCELED: the linked timeout fired first.
    const int err = res == -ECANCELED ? ETIMEDOUT : -res;
    countConnectFailure(*service(), *setup_->trying, worker_.index(), err);
    setup_->trying.reset();
    ::close(backendFd_);
    backendFd_ = -1;
    connectNext();
}

void UringSession::connectFailed() {
    countClosedWithoutBackend(*serviceState_, reason_.reason());
    log()->debug("conn {}: service {}: {}", id_, service()->name, toString(reason_.reason()));
    close(reason_.reason());
}

void UringSession::connected() {
    Setup& s = *setup_;
    const routing::ServiceRoute& svc = *service();
    const auto now = std::chrono::steady_clock::now();
    countConnectOk(*s.trying, worker_.index(), now - s.connectStarted);
    backend_ = std::move(s.trying);
    backend_->active.fetch_add(1, std::memory_order_relaxed);
    worker_.sessionConnected(*this);
    connectedAt_ = lastActivity_ = now;
    // The PROXY header goes first, before any client byte, with the bytes that
    // came in with an accepted header.
    s.preamble = buildPreamble(svc.proxyProtocol, s.addresses.proxy, s.early);
    if (!s.early.empty()) {
        bytes_.add(0, s.early.size());
        firstBytes_.clientByte(now);
        s.early = {};
    }
    // The session keeps its backend handle alone, so long-lived connections pin no snapshot.
    s.snapshot.reset();
    if (s.preamble.empty()) {
        startRelay();
        return;
    }
    state_ = State::Preamble;
    submitPreamble();
}

void UringSession::onPreambleSent(int res) {
    if (state_ == State::Closing) return;
    if (res < 0) {
        sideFailed(1);
        return;
    }
    setup_->preambleSent += static_cast<std::size_t>(res);
    if (setup_->preambleSent < setup_->preamble.size()) {
        submitPreamble();
        return;
    }
    startRelay();
}

void UringSession::startRelay() {
    state_ = State::Relaying;
    setup_.reset();
    if (!timerArmed_) armTimer(lastActivity_ + idleTimeout_);
    submitRecv(0);
    submitRecv(1);
}

void UringSession::onRecv(int direction, const io_uring_cqe& cqe) {
    if (state_ == State::Closing) {
        dropSelectedBuffer(cqe);
        return;
    }
    const int res = cqe.res;
    if (res == -ENOBUFS) {
        // Every buffer is in flight: wait for one to come back.
        flows_[direction].waitingBuffer = true;
        ++pending_;
        worker_.waitForBuffer(this, direction);
        return;
    }
    if (res <= 0) {
        dropSelectedBuffer(cqe);
        if (res == 0) {
            finishDirection(direction);
        } else {
            sideFailed(direction);   // the side read from
        }
        return;
    }
    const uint16_t id = bufferIdOf(cqe);
    worker_.buffers().take(id);
    Flow& f = flows_[direction];
    f.buffer = id;
    f.offset = 0;
    f.length = static_cast<uint32_t>(res);
    f.fullReads = static_cast<uint32_t>(res) == worker_.buffers().bufferSize()
                      ? static_cast<uint8_t>(std::min(f.fullReads + 1, 255))
                      : uint8_t{0};
    const unsigned worker = worker_.index();
    if (!firstBytes_.sawBackendByte()) {
        const auto now = std::chrono::steady_clock::now();
        if (direction == 0) firstBytes_.clientByte(now);
        else firstBytes_.backendByte(*backend_, worker, connectedAt_, now);
        lastActivity_ = now;
    } else {
        lastActivity_ = worker_.now();
    }
    bytes_.add(direction, static_cast<uint64_t>(res));
    if (bytes_.wantsFlush()) bytes_.flush(*backend_, worker);
    submitSend(direction);
}

void UringSession::onSend(int direction, int res) {
    Flow& f = flows_[direction];
    if (state_ == State::Closing) {
        releaseBuffer(direction);
        return;
    }
    if (res < 0) {
        releaseBuffer(direction);
        // The receiving side failed: that side is the one that reset.
        sideFailed(1 - direction);
        return;
    }
    f.offset += static_cast<uint32_t>(res);
    if (f.offset < f.length) {
        submitSend(direction);
        return;
    }
    releaseBuffer(direction);
    if (f.done) return;
    if (startSplice(direction)) return;
    submitRecv(direction);
}

void UringSession::releasePipe(int direction) {
    Flow& f = flows_[direction];
    if (!f.pipe) return;
    worker_.pipes()->release(std::move(*f.pipe));
    f.pipe.reset();
    f.lastFillShort = false;
}

void UringSession::finishDirection(int direction) {
    Flow& f = flows_[direction];
    if (f.done) return;
    f.done = true;
    releasePipe(direction);   // empty by now: a half-closed flow need not hold its descriptors
    // Half-close: pass the EOF on and keep the other direction open, for at
    // most timeouts.half_closed without traffic.
    reason_.note(direction == 0 ? CloseReason::ClientClose : CloseReason::BackendClose);
    ::shutdown(direction == 0 ? backendFd_ : clientFd_, SHUT_WR);
    if (flows_[0].done && flows_[1].done) {
        close(reason_.reason());
        return;
    }
    lastActivity_ = worker_.now();
    if (timerArmed_ && halfClosedTimeout_ < idleTimeout_) {
        // Move the armed idle timer to the earlier deadline (if it fired meanwhile, onTimer re-arms).
        io_uring_sqe* sqe = worker_.sqe();
        io_uring_prep_timeout_update(sqe, worker_.timespecAt(lastActivity_ + halfClosedTimeout_),
                                     encodeUserData(this, Op::Timer), IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(sqe, encodeUserData(nullptr, Op::Ignore));
    }
}

bool UringSession::startSplice(int direction) {
    // Two whole buffers in a row: a bulk flow, where splice saves a copy per byte.
    constexpr uint8_t kBulkReads = 2;
    Flow& f = flows_[direction];
    SplicePipePool* pool = worker_.pipes();
    if (!pool || f.fullReads < kBulkReads || state_ != State::Relaying) return false;
    f.pipe = pool->acquire(worker_.openSessions());
    if (!f.pipe) {
        f.fullReads = 0;   // ask again after the next two whole buffers, not per read
        return false;
    }
    pumpSplice(direction);
    return true;
}

void UringSession::pumpSplice(int direction) {
    Flow& f = flows_[direction];
    SplicePipe& pipe = *f.pipe;
    const int source = direction == 0 ? clientFd_ : backendFd_;
    const int sink = direction == 0 ? backendFd_ : clientFd_;
    // A few rounds, then yield to the other sessions: a poll on a readable
    // source completes at once, behind what else is queued.
    for (int round = 0; round < 4; ++round) {
        if (pipe.bytes() > 0) {
            const SpliceResult out = pipe.drain(sink);
            if (out.kind == SpliceResult::Kind::Failed) {
                sideFailed(1 - direction);   // the sink failed
                return;
            }
            // Bytes moving toward a slow reader are activity too (buffer mode sees them per read).
            if (out.bytes > 0) lastActivity_ = worker_.now();
            if (pipe.bytes() > 0) {   // the sink's socket buffer is full: wait for room
                armPoll(direction, sink, POLLOUT);
                return;
            }
        }
        if (f.sourceEnded) {
            finishDirection(direction);
            return;
        }
        if (f.lastFillShort) {   // the source was drained last time: let poll say when there is more
            f.lastFillShort = false;
            armPoll(direction, source, POLLIN);
            return;
        }
        const SpliceResult in = pipe.fill(source);
        switch (in.kind) {
        case SpliceResult::Kind::Moved:
            f.lastFillShort = in.bytes < pipe.capacity();
            lastActivity_ = worker_.now();
            bytes_.add(direction, in.bytes);
            if (bytes_.wantsFlush()) bytes_.flush(*backend_, worker_.index());
            break;
        case SpliceResult::Kind::EndOfStream: f.sourceEnded = true; break;
        case SpliceResult::Kind::WouldBlock: armPoll(direction, source, POLLIN); return;
        case SpliceResult::Kind::NotSpliceable:   // the pipe is empty here: back to buffers
            releasePipe(direction);
            f.fullReads = 0;
            submitRecv(direction);
            return;
        case SpliceResult::Kind::Failed:
            sideFailed(direction);   // the source failed
            return;
        }
    }
    if (pipe.bytes() > 0) armPoll(direction, sink, POLLOUT);
    else if (f.sourceEnded) finishDirection(direction);
    else armPoll(direction, source, POLLIN);
}

void UringSession::armPoll(int direction, int fd, unsigned events) {
    io_uring_sqe* sqe = worker_.sqe();
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, encodeUserData(this, direction == 0 ? Op::Poll0 : Op::Poll1));
    ++pending_;
}

void UringSession::onPoll(int direction, int res) {
    if (state_ == State::Closing || res == -ECANCELED) return;
    // Errors and hang-ups show up as the splice's own result.
    pumpSplice(direction);
}

void UringSession::onTimer(int res) {
    timerArmed_ = false;
    if (state_ == State::Closing || res == -ECANCELED) return;
    switch (state_) {
    case State::Header: headerFailed(false, true); return;
    case State::Relaying: {
        // Reads moved the deadline on without touching the timer: re-arm only now.
        const auto deadline = lastActivity_ + currentIdleTimeout();
        if (std::chrono::steady_clock::now() >= deadline) close(CloseReason::IdleTimeout);
        else armTimer(deadline);
        return;
    }
    default: return;   // connecting: startRelay() arms the idle timer
    }
}

} // namespace switchyard::proxy::uring_engine
