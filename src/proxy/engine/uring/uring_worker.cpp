#include "switchyard/proxy/engine/uring/uring_worker.h"

#include <cerrno>
#include <cstring>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchyard/proxy/engine/uring/uring_engine.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::proxy {

std::unique_ptr<Worker> makeUringWorker(unsigned index, WorkerOptions options) {
    return std::make_unique<uring_engine::UringWorker>(index, options);
}

namespace uring_engine {
namespace {

const auto& log() {
    static const auto logger = telemetry::logger("proxy");
    return logger;
}

} // namespace

int initRing(io_uring& ring, RingSetup& setup) {
    // Fastest first: one submitter thread, completions' task work run only when
    // the loop asks for events; older kernels refuse the flags (EINVAL).
    const unsigned attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (const unsigned flags : attempts) {
        io_uring_params params{};
        params.flags = flags | IORING_SETUP_CQSIZE;
        params.cq_entries = setup.entries * 4;
        rc = io_uring_queue_init_params(setup.entries, &ring, &params);
        if (rc == 0) {
            setup.singleIssuer = (flags & IORING_SETUP_SINGLE_ISSUER) != 0;
            return 0;
        }
        if (rc != -EINVAL) return rc;
    }
    return rc;
}

UringWorker::UringWorker(unsigned index, WorkerOptions options) : index_(index), core_(index) {
    acceptPoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (options.splice) pipes_.emplace(options.fdShare, &telemetry::workerGauges(index));
}

UringWorker::~UringWorker() { stop(); }

void UringWorker::start() {
    running_.store(true);
    thread_ = std::thread([this] { run(); });
}

void UringWorker::stop() {
    if (!thread_.joinable()) return;
    post([this] {
        closeAllSessionsNow();
        stopping_ = true;
    });
    thread_.join();
}

void UringWorker::addListener(std::string service, UniqueFd listenFd) {
    auto fd = std::make_shared<UniqueFd>(std::move(listenFd));
    post([this, service = std::move(service), fd] {
        auto listener = std::make_unique<Listener>();
        listener->service = service;
        listener->fd = std::move(*fd);
        if (core_.snapshot) listener->serviceIndex = core_.snapshot->indexOf(service);
        if (listener->serviceIndex != routing::RoutingSnapshot::kNoService) startAccepting(*listener);
        listeners_.push_back(std::move(listener));
    });
}

void UringWorker::removeListener(const std::string& service) {
    post([this, service] {
        std::erase_if(listeners_, [&](std::unique_ptr<Listener>& l) {
            if (l->service != service) return false;
            retireListener(*l);
            retiring_.push_back(std::move(l));
            return true;
        });
    });
}

void UringWorker::stopAccepting() {
    post([this] {
        for (auto& l : listeners_) {
            retireListener(*l);
            retiring_.push_back(std::move(l));
        }
        listeners_.clear();
    });
}

void UringWorker::closeAllSessions() {
    post([this] { closeAllSessionsNow(); });
}

void UringWorker::publish(routing::SnapshotPtr snapshot) {
    post([this, snapshot = std::move(snapshot)]() mutable { applySnapshot(std::move(snapshot)); });
}

io_uring_sqe* UringWorker::sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (!sqe) {
        // Full: hand what is queued to the kernel (timespecs stay alive until the loop's submit).
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
}

void UringWorker::reserve(unsigned n) {
    if (io_uring_sq_space_left(&ring_) < n) io_uring_submit(&ring_);
}

__kernel_timespec* UringWorker::timespecAt(routing::TimePoint at) {
    // Absolute CLOCK_MONOTONIC, which is what steady_clock reads.
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
    return &timespecs_.emplace_back(__kernel_timespec{ns / 1'000'000'000, ns % 1'000'000'000});
}

__kernel_timespec* UringWorker::timespecIn(std::chrono::milliseconds in) {
    const auto ms = in.count();
    return &timespecs_.emplace_back(__kernel_timespec{ms / 1000, (ms % 1000) * 1'000'000});
}

bool UringWorker::setUp() {
    if (!tasks_.valid() || !acceptPoll_.valid()) {
        log()->critical("worker {}: io_uring engine: {}: {}", index_, tasks_.valid() ? "epoll_create1" : "eventfd",
                        std::strerror(tasks_.valid() ? errno : tasks_.error()));
        return false;
    }
    if (const int rc = initRing(ring_, setup_); rc < 0) {
        log()->critical("worker {}: io_uring engine: cannot set up the ring: {}", index_, std::strerror(-rc));
        return false;
    }
    ringReady_ = true;
    int err = 0;
    buffers_ = BufferRing::create(ring_, 0, kBufferCount, kBufferSize, &err);
    if (!buffers_) {
        log()->critical("worker {}: io_uring engine: cannot register the buffer ring: {}", index_,
                        std::strerror(err));
        return false;
    }
    log()->debug("worker {}: io_uring ring ready ({}single issuer, defer taskrun)", index_,
                 setup_.singleIssuer ? "" : "no ");
    armWakeup();
    armAcceptPoll();
    return true;
}

void UringWorker::run() {
    if (!setUp()) {
        tearDown();
        return;
    }
    while (!stopping_) {
        const int rc = io_uring_submit_and_wait(&ring_, 1);
        if (rc >= 0) timespecs_.clear();   // else the queued timeouts still have to read theirs
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME)
            log()->error("worker {}: io_uring_submit_and_wait: {}", index_, std::strerror(-rc));
        now_ = std::chrono::steady_clock::now();
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_cqe* cqe = nullptr;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            onCompletion(*cqe);
            ++seen;
        }
        io_uring_cq_advance(&ring_, seen);
        serveBufferWaiters();
        if (!retiring_.empty()) reapListeners();
    }
    tearDown();
}

void UringWorker::tearDown() {
    // Only at exit (after closeAllSessions): what is left is dropped without waiting.
    core_.dropAll();
    pipes_.reset();
    listeners_.clear();
    retiring_.clear();
    buffers_.reset();
    if (ringReady_) io_uring_queue_exit(&ring_);
    ringReady_ = false;
    running_.store(false);
}

void UringWorker::onCompletion(const io_uring_cqe& cqe) {
    const uint64_t data = cqe.user_data;
    const Op op = opOf(data);
    switch (op) {
    case Op::Ignore: return;
    case Op::Wakeup:
        tasks_.runAll();
        if (!stopping_) armWakeup();
        return;
    case Op::DrainTimer:
        if (cqe.res == -ECANCELED) return;   // replaced by an earlier one
        core_.runDrains([](UringSession& s) { s.closeFromOutside(CloseReason::DrainDeadline); });
        armDrainTimer();
        return;
    case Op::Accept:
        if (ownerOf<UringWorker>(data) == this) {
            acceptRoundQueued_ = false;   // the NOP of acceptReady()
        } else if (!(cqe.flags & IORING_CQE_F_MORE) && !stopping_) {
            armAcceptPoll();   // the kernel ended the multishot poll (an overflow, an error)
        }
        acceptReady();
        return;
    case Op::AcceptBackoff: {
        Listener& l = *ownerOf<Listener>(data);
        --l.pending;
        if (l.active) resumeAccepts(l);
        return;
    }
    default: ownerOf<UringSession>(data)->onCompletion(op, cqe); return;
    }
}

void UringWorker::armWakeup() {
    io_uring_sqe* s = sqe();
    io_uring_prep_read(s, tasks_.fd(), &wakeValue_, sizeof wakeValue_, 0);
    io_uring_sqe_set_data64(s, encodeUserData(nullptr, Op::Wakeup));
}

void UringWorker::armAcceptPoll() {
    io_uring_sqe* s = sqe();
    io_uring_prep_poll_multishot(s, acceptPoll_.get(), POLLIN);
    io_uring_sqe_set_data64(s, encodeUserData(nullptr, Op::Accept));
}

void UringWorker::startAccepting(Listener& listener) {
    listener.accepting = true;
    epoll_event ev{};
    ev.events = EPOLLIN;   // level-triggered: a listener left ready is reported again
    ev.data.ptr = &listener;
    if (::epoll_ctl(acceptPoll_.get(), EPOLL_CTL_ADD, listener.fd.get(), &ev) != 0)
        log()->error("worker {}: cannot watch the listener of {}: {}", index_, listener.service, std::strerror(errno));
}

void UringWorker::acceptReady() {
    epoll_event ready[16];
    const int n = ::epoll_wait(acceptPoll_.get(), ready, std::size(ready), 0);
    bool leftReady = n == static_cast<int>(std::size(ready));
    for (int i = 0; i < n; ++i) leftReady |= !acceptFrom(*static_cast<Listener*>(ready[i].data.ptr));
    if (leftReady && !acceptRoundQueued_) {
        // Serve the completions already waiting first, then come back.
        io_uring_sqe* s = sqe();
        io_uring_prep_nop(s);
        io_uring_sqe_set_data64(s, encodeUserData(this, Op::Accept));
        acceptRoundQueued_ = true;
    }
}

bool UringWorker::acceptFrom(Listener& listener) {
    for (unsigned taken = 0; taken < kAcceptBatch; ++taken) {
        const int fd = ::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            startSession(listener, fd);
            continue;
        }
        switch (classifyAcceptError(errno)) {
        case AcceptError::Drained: return true;
        case AcceptError::Next: continue;
        case AcceptError::Pause: pauseAccepts(listener, errno); return true;
        }
    }
    return false;
}

void UringWorker::startSession(Listener& listener, int clientFd) {
    if (listener.serviceIndex == routing::RoutingSnapshot::kNoService) {
        ::close(clientFd);
        return;
    }
    core_.add(std::make_unique<UringSession>(*this, clientFd, core_.nextSessionId(), listener.serviceIndex)).start();
}

void UringWorker::pauseAccepts(Listener& listener, int err) {
    logAcceptPause(index_, listener.service, err, listener.backoffLog, now_);
    epoll_event ev{};
    ev.data.ptr = &listener;   // no events: watched, not reported
    ::epoll_ctl(acceptPoll_.get(), EPOLL_CTL_MOD, listener.fd.get(), &ev);
    io_uring_sqe* s = sqe();
    io_uring_prep_timeout(s, timespecIn(kAcceptBackoff), 0, 0);
    io_uring_sqe_set_data64(s, encodeUserData(&listener, Op::AcceptBackoff));
    ++listener.pending;
}

void UringWorker::resumeAccepts(Listener& listener) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &listener;
    ::epoll_ctl(acceptPoll_.get(), EPOLL_CTL_MOD, listener.fd.get(), &ev);
    acceptReady();
}

void UringWorker::retireListener(Listener& listener) {
    listener.active = false;
    if (listener.accepting) ::epoll_ctl(acceptPoll_.get(), EPOLL_CTL_DEL, listener.fd.get(), nullptr);
}

void UringWorker::reapListeners() {
    // A listener goes once no back-off timer can point at it any more.
    std::erase_if(retiring_, [](const std::unique_ptr<Listener>& l) { return l->pending == 0; });
}

void UringWorker::applySnapshot(routing::SnapshotPtr snapshot) {
    core_.applySnapshot(std::move(snapshot), listeners_, [this](std::unique_ptr<Listener>& l) {
        if (l->active && !l->accepting) startAccepting(*l);
    });
    armDrainTimer();
}

void UringWorker::closeAllSessionsNow() {
    for (UringSession* s : core_.sessions()) s->closeFromOutside(CloseReason::Shutdown);
}

void UringWorker::sessionConnected(UringSession& session) {
    core_.connected(session);
    armDrainTimer();
}

void UringWorker::sessionEnded(UringSession* session) {
    core_.remove(session->id());   // the auto-unlink hook leaves its backend list
}

void UringWorker::armDrainTimer() {
    const auto timer = core_.drainTimerDue();
    if (!timer.arm) return;
    if (timer.replacing) {
        io_uring_sqe* s = sqe();
        io_uring_prep_timeout_remove(s, encodeUserData(nullptr, Op::DrainTimer), 0);
        io_uring_sqe_set_data64(s, encodeUserData(nullptr, Op::Ignore));
    }
    io_uring_sqe* s = sqe();
    io_uring_prep_timeout(s, timespecAt(timer.at), 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(s, encodeUserData(nullptr, Op::DrainTimer));
}

void UringWorker::cancelBufferWait(UringSession* session, Direction direction) {
    std::erase_if(bufferWaiters_, [&](const std::pair<UringSession*, Direction>& w) {
        return w.first == session && w.second == direction;
    });
}

void UringWorker::serveBufferWaiters() {
    // Wake no more recvs than there are buffers; one that loses the race waits again.
    unsigned budget = buffers_->count() - buffers_->outstanding();
    while (budget > 0 && !bufferWaiters_.empty()) {
        const auto [session, direction] = bufferWaiters_.front();
        bufferWaiters_.pop_front();
        --budget;
        session->bufferAvailable(direction);
    }
}

} // namespace uring_engine
} // namespace switchyard::proxy
