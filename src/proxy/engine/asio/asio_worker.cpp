#include "switchyard/proxy/engine/asio/asio_worker.h"

#include <cerrno>

#include <sys/socket.h>
#include <unistd.h>

#include "switchyard/telemetry/logging.h"

namespace switchyard::proxy {

std::unique_ptr<Worker> makeAsioWorker(unsigned index, WorkerOptions options) {
    return std::make_unique<asio_engine::AsioWorker>(index, options);
}

namespace asio_engine {
namespace {

using boost::system::error_code;

tcp protocolOf(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    return addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
}

} // namespace

AsioWorker::AsioWorker(unsigned index, WorkerOptions options) : index_(index), core_(index) {
    if (options.splice) pipes_.emplace(options.fdShare, &telemetry::workerGauges(index));
}

AsioWorker::~AsioWorker() { stop(); }

void AsioWorker::start() {
    work_.emplace(context_.get_executor());
    thread_ = std::thread([this] {
        const auto log = telemetry::logger("proxy");
        for (;;) {
            try {
                context_.run();
                return;
            } catch (const std::exception& e) {
                // Can't happen by design (the data path uses error codes); keep serving.
                log->critical("worker {}: unexpected exception in event loop: {}", index_, e.what());
            }
        }
    });
}

void AsioWorker::stop() {
    if (!thread_.joinable()) return;
    // Let every session and accept loop end on its own loop, so coroutine
    // frames finish normally instead of being destroyed after the sessions
    // they point into. A hard stop after 2 s guards against anything stuck.
    auto guard = std::make_shared<net::steady_timer>(context_);
    net::post(context_, [this, guard] {
        for (auto& l : listeners_) {
            error_code ec;
            l->acceptor.close(ec);
        }
        listeners_.clear();
        closeAllSessionsNow();
        drainTimer_.cancel();
        guard->expires_after(std::chrono::seconds(2));
        guard->async_wait([this](const error_code& ec) {
            if (!ec) context_.stop();
        });
    });
    work_.reset();
    // The guard timer is the last piece of work: cancelled as the last session
    // goes (sessionEnded), or at once if none is left.
    net::post(context_, [this, guard] {
        if (core_.openSessions() == 0) guard->cancel();
        else stopGuard_ = guard;
    });
    thread_.join();
    stopGuard_.reset();
}

void AsioWorker::addListener(std::string service, UniqueFd listenFd) {
    auto fd = std::make_shared<UniqueFd>(std::move(listenFd));
    net::post(context_, [this, service = std::move(service), fd] {
        error_code ec;
        const int raw = fd->get();
        const tcp protocol = protocolOf(raw);
        auto listener = std::make_shared<Listener>(Listener{service, routing::RoutingSnapshot::kNoService,
                                                            tcp::acceptor(context_), protocol, false, {}});
        listener->acceptor.assign(protocol, raw, ec);
        if (ec) {
            telemetry::logger("proxy")->error("worker {}: cannot adopt listener of {}: {}", index_, service,
                                              ec.message());
            return;
        }
        fd->release();
        if (core_.snapshot) listener->serviceIndex = core_.snapshot->indexOf(service);
        listeners_.push_back(listener);
        if (listener->serviceIndex != routing::RoutingSnapshot::kNoService) startAccepting(listener);
    });
}

void AsioWorker::removeListener(const std::string& service) {
    net::post(context_, [this, service] {
        std::erase_if(listeners_, [&](const std::shared_ptr<Listener>& l) {
            if (l->service != service) return false;
            error_code ec;
            l->acceptor.close(ec);
            return true;
        });
    });
}

void AsioWorker::stopAccepting() {
    net::post(context_, [this] {
        for (auto& l : listeners_) {
            error_code ec;
            l->acceptor.close(ec);
        }
        listeners_.clear();
    });
}

void AsioWorker::closeAllSessions() {
    net::post(context_, [this] { closeAllSessionsNow(); });
}

void AsioWorker::closeAllSessionsNow() {
    for (AsioSession* session : core_.sessions()) session->close(CloseReason::Shutdown);
}

void AsioWorker::publish(routing::SnapshotPtr snapshot) {
    net::post(context_, [this, snapshot = std::move(snapshot)]() mutable { applySnapshot(std::move(snapshot)); });
}

void AsioWorker::startAccepting(const std::shared_ptr<Listener>& listener) {
    if (listener->accepting || !listener->acceptor.is_open()) return;
    listener->accepting = true;
    net::co_spawn(context_, acceptLoop(listener), net::detached);
}

net::awaitable<void> AsioWorker::acceptLoop(std::shared_ptr<Listener> listener) {
    net::steady_timer backoff(context_);
    // The reactor reports a listener once per new arrival (edge-triggered):
    // connections already queued (an inherited socket's backlog, a batch cut
    // at kAcceptBatch, a pause) are taken without waiting for another.
    bool queued = true;
    for (;;) {
        error_code ec;
        if (!queued) {
            co_await listener->acceptor.async_wait(tcp::acceptor::wait_read, net::redirect_error(net::use_awaitable, ec));
            if (ec == net::error::operation_aborted || !listener->acceptor.is_open()) co_return;
        }
        const AcceptError end = acceptFrom(*listener);
        // A connection accepted just before the listener closed (SIGTERM, a
        // restart) is served, never dropped: its client already counts on it.
        if (!listener->acceptor.is_open()) co_return;
        queued = end != AcceptError::Drained;
        if (end == AcceptError::Pause) {
            backoff.expires_after(kAcceptBackoff);
            co_await backoff.async_wait(net::redirect_error(net::use_awaitable, ec));
        } else if (queued) {
            co_await net::post(context_, net::use_awaitable);   // the sessions' events first
        }
        if (!listener->acceptor.is_open()) co_return;
    }
}

AcceptError AsioWorker::acceptFrom(Listener& listener) {
    for (unsigned taken = 0; taken < kAcceptBatch; ++taken) {
        const int fd = ::accept4(listener.acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            const int err = errno;
            const AcceptError kind = classifyAcceptError(err);
            if (kind == AcceptError::Next) continue;
            if (kind == AcceptError::Pause)
                logAcceptPause(index_, listener.service, err, listener.backoffLog, std::chrono::steady_clock::now());
            return kind;
        }
        if (listener.serviceIndex == routing::RoutingSnapshot::kNoService) {
            ::close(fd);
            continue;
        }
        error_code ec;
        tcp::socket socket(context_);
        socket.assign(listener.protocol, fd, ec);   // registers it with the reactor
        if (ec) {   // epoll_ctl out of memory or watches: a local shortage, not this client's
            ::close(fd);
            logAcceptPause(index_, listener.service, ec.value(), listener.backoffLog, std::chrono::steady_clock::now());
            return AcceptError::Pause;
        }
        core_.add(std::make_unique<AsioSession>(*this, std::move(socket), core_.nextSessionId(), listener.serviceIndex))
            .start();
    }
    return AcceptError::Next;   // a full batch: more may be queued
}

void AsioWorker::sessionConnected(AsioSession& session) {
    core_.connected(session);
    armDrainTimer();
}

void AsioWorker::sessionEnded(uint64_t id) {
    core_.remove(id);   // the auto-unlink hook leaves its backend list
    if (stopGuard_ && core_.openSessions() == 0) stopGuard_->cancel();
}

void AsioWorker::applySnapshot(routing::SnapshotPtr snapshot) {
    core_.applySnapshot(std::move(snapshot), listeners_, [this](const std::shared_ptr<Listener>& l) { startAccepting(l); });
    armDrainTimer();
}

void AsioWorker::armDrainTimer() {
    const auto timer = core_.drainTimerDue();
    if (!timer.arm) return;
    drainTimer_.expires_at(timer.at);   // cancels the wait for a later one
    drainTimer_.async_wait([this](const error_code& ec) {
        if (ec == net::error::operation_aborted) return;
        core_.runDrains([](AsioSession& s) { s.close(CloseReason::DrainDeadline); });
        armDrainTimer();
    });
}

} // namespace asio_engine
} // namespace switchyard::proxy
