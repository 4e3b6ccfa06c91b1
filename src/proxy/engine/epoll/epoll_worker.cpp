#include "switchyard/proxy/engine/epoll/epoll_worker.h"

#include <cerrno>
#include <cstring>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchyard/telemetry/logging.h"

namespace switchyard::proxy {

std::unique_ptr<Worker> makeEpollWorker(unsigned index, WorkerOptions options) {
    return std::make_unique<epoll_engine::EpollWorker>(index, options);
}

namespace epoll_engine {
namespace {

// An event's data: a session's id (without the worker's index bits) and the
// side, or a listener's address, or the wake-up eventfd; the low two bits tell.
enum Tag : uint64_t { kClientTag = 0, kBackendTag = 1, kListenerTag = 2, kWakeTag = 3 };
constexpr uint64_t kTagMask = 3;
constexpr uint64_t kSessionBits = (uint64_t{1} << 48) - 1;   // WorkerCore::nextSessionId's counter

uint64_t sessionData(uint64_t id, Side side) {
    return ((id & kSessionBits) << 2) | (side == Side::Client ? kClientTag : kBackendTag);
}

// Batch of events per epoll_wait: enough to amortise the call, small enough to stay in cache.
constexpr int kEventBatch = 128;

const auto& log() {
    static const auto logger = telemetry::logger("proxy");
    return logger;
}

} // namespace

EpollWorker::EpollWorker(unsigned index, WorkerOptions options)
    : index_(index), core_(index), drainTimer_(expireBy<EpollWorker, &EpollWorker::drainDue>, this) {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) setUpError_ = errno;
    if (epoll_.valid() && tasks_.valid()) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kWakeTag;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, tasks_.fd(), &ev);
    }
    if (options.splice) pipes_.emplace(options.fdShare, &telemetry::workerGauges(index));
}

EpollWorker::~EpollWorker() { stop(); }

void EpollWorker::start() {
    thread_ = std::thread([this] { run(); });
}

void EpollWorker::stop() {
    if (!thread_.joinable()) return;
    // Closing a session is immediate here (nothing is in flight): after this
    // task the loop ends with every socket closed.
    post([this] {
        retireAllListeners();
        closeAllSessionsNow();
        stopping_ = true;
    });
    thread_.join();
}

void EpollWorker::run() {
    if (!epoll_.valid() || !tasks_.valid()) {
        log()->critical("worker {}: epoll engine: {}: {}", index_, epoll_.valid() ? "eventfd" : "epoll_create1",
                        std::strerror(epoll_.valid() ? tasks_.error() : setUpError_));
        return;
    }
    epoll_event events[kEventBatch];
    now_ = std::chrono::steady_clock::now();
    while (!stopping_) {
        const int timeout = runSoon_.empty() ? deadlines_.waitMillis(now_) : 0;
        const int n = ::epoll_wait(epoll_.get(), events, kEventBatch, timeout);
        if (n < 0 && errno != EINTR) log()->error("worker {}: epoll_wait: {}", index_, std::strerror(errno));
        now_ = std::chrono::steady_clock::now();
        try {
            for (int i = 0; i < n; ++i) dispatch(events[i].data.u64, events[i].events);
            runYielded();
            deadlines_.runDue(now_);
        } catch (const std::exception& e) {
            // Can't happen by design (the data path uses error codes; an
            // allocation failing is the one way in): keep serving.
            log()->critical("worker {}: unexpected exception in event loop: {}", index_, e.what());
        }
        retired_.clear();
    }
    // Only at exit (after closeAllSessions): what is left is dropped without waiting.
    core_.dropAll();
    listeners_.clear();
    retired_.clear();
}

void EpollWorker::dispatch(uint64_t data, uint32_t events) {
    switch (data & kTagMask) {
    case kWakeTag:
        tasks_.acknowledge();
        tasks_.runAll();
        return;
    case kListenerTag: {
        Listener& l = *reinterpret_cast<Listener*>(data & ~kTagMask);
        if (l.active) acceptFrom(l);
        return;
    }
    default: {
        // A session closed earlier in this batch (or a socket it left in a
        // spawning child) finds nothing.
        const uint64_t id = (static_cast<uint64_t>(index_) << 48) | (data >> 2);
        if (EpollSession* s = core_.find(id))
            s->onEvents((data & kTagMask) == kClientTag ? Side::Client : Side::Backend, events);
        return;
    }
    }
}

void EpollWorker::runYielded() {
    // Those that yield again now wait for the next round. The two lists swap
    // and keep their capacity: a round allocates nothing.
    yielded_.swap(runSoon_);
    for (const auto& [id, side] : yielded_)
        if (EpollSession* s = core_.find(id)) s->resume(side);
    yielded_.clear();
}

int EpollWorker::watch(int fd, uint64_t sessionId, Side side) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
    ev.data.u64 = sessionData(sessionId, side);
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

void EpollWorker::addListener(std::string service, UniqueFd listenFd) {
    auto fd = std::make_shared<UniqueFd>(std::move(listenFd));
    post([this, service = std::move(service), fd] {
        auto listener = std::make_unique<Listener>(*this);
        listener->service = service;
        listener->fd = std::move(*fd);
        if (core_.snapshot) listener->serviceIndex = core_.snapshot->indexOf(service);
        if (listener->serviceIndex != routing::RoutingSnapshot::kNoService) startAccepting(*listener);
        listeners_.push_back(std::move(listener));
    });
}

void EpollWorker::removeListener(const std::string& service) {
    post([this, service] {
        for (auto& l : listeners_)
            if (l->service == service) retireListener(std::move(l));
        std::erase(listeners_, nullptr);
    });
}

void EpollWorker::stopAccepting() {
    post([this] { retireAllListeners(); });
}

void EpollWorker::retireAllListeners() {
    for (auto& l : listeners_) retireListener(std::move(l));
    listeners_.clear();
}

void EpollWorker::retireListener(std::unique_ptr<Listener> listener) {
    listener->active = false;
    deadlines_.cancel(listener->backoff);
    // Out of the set first: the descriptor may have copies (the upgrade's fd store), so a close alone would not.
    if (listener->accepting) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener->fd.get(), nullptr);
    listener->fd.reset();
    retired_.push_back(std::move(listener));
}

void EpollWorker::closeAllSessions() {
    post([this] { closeAllSessionsNow(); });
}

void EpollWorker::closeAllSessionsNow() {
    for (EpollSession* session : core_.sessions()) session->close(CloseReason::Shutdown);   // frees only itself
}

void EpollWorker::publish(routing::SnapshotPtr snapshot) {
    post([this, snapshot = std::move(snapshot)]() mutable { applySnapshot(std::move(snapshot)); });
}

void EpollWorker::startAccepting(Listener& listener) {
    if (listener.accepting || !listener.active) return;
    epoll_event ev{};
    ev.events = EPOLLIN;   // level-triggered: a listener left with connections queued is reported again
    ev.data.u64 = reinterpret_cast<uint64_t>(&listener) | kListenerTag;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener.fd.get(), &ev) != 0) {
        log()->error("worker {}: cannot watch the listener of {}: {}", index_, listener.service, std::strerror(errno));
        return;
    }
    listener.accepting = true;
}

void EpollWorker::acceptFrom(Listener& listener) {
    // A full batch leaves the rest queued: the level-triggered listener is
    // reported again after the sessions' events of this round.
    for (unsigned taken = 0; taken < kAcceptBatch; ++taken) {
        const int fd = ::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            if (!startSession(listener, fd)) return;   // paused: the rest stay queued
            continue;
        }
        const int err = errno;
        switch (classifyAcceptError(err)) {
        case AcceptError::Drained: return;
        case AcceptError::Next: continue;
        case AcceptError::Pause: pauseAccepts(listener, err); return;
        }
    }
}

bool EpollWorker::startSession(Listener& listener, int clientFd) {
    UniqueFd client(clientFd);
    if (listener.serviceIndex == routing::RoutingSnapshot::kNoService) return true;
    const uint64_t id = core_.nextSessionId();
    if (const int err = watch(clientFd, id, Side::Client); err != 0) {
        // epoll_ctl out of memory or watches: a local shortage, not this client's.
        pauseAccepts(listener, err);
        return false;
    }
    core_.add(std::make_unique<EpollSession>(*this, std::move(client), id, listener.serviceIndex)).start();
    return true;
}

void EpollWorker::pauseAccepts(Listener& listener, int err) {
    logAcceptPause(index_, listener.service, err, listener.backoffLog, now_);
    epoll_event ev{};
    ev.data.u64 = reinterpret_cast<uint64_t>(&listener) | kListenerTag;   // no events: watched, not reported
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listener.fd.get(), &ev);
    deadlines_.arm(listener.backoff, now_ + kAcceptBackoff);
}

void EpollWorker::resumeAccepts(Listener& listener) {
    if (!listener.active) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = reinterpret_cast<uint64_t>(&listener) | kListenerTag;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listener.fd.get(), &ev);
}

void EpollWorker::applySnapshot(routing::SnapshotPtr snapshot) {
    core_.applySnapshot(std::move(snapshot), listeners_, [this](std::unique_ptr<Listener>& l) { startAccepting(*l); });
    armDrainTimer();
}

void EpollWorker::sessionConnected(EpollSession& session) {
    core_.connected(session);
    armDrainTimer();
}

void EpollWorker::sessionEnded(uint64_t id) {
    core_.remove(id);   // frees the session; its hook leaves its backend's drain list
}

void EpollWorker::drainDue() {
    core_.runDrains([](EpollSession& s) { s.close(CloseReason::DrainDeadline); });
    armDrainTimer();
}

void EpollWorker::armDrainTimer() {
    const auto timer = core_.drainTimerDue();
    if (timer.arm) deadlines_.arm(drainTimer_, timer.at);
}

} // namespace epoll_engine
} // namespace switchyard::proxy
