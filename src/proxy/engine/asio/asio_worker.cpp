#include "switchyard/proxy/engine/asio/asio_worker.h"

#include <cerrno>

#include <sys/socket.h>

#include "switchyard/proxy/local_error.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::proxy {

std::unique_ptr<Worker> makeAsioWorker(unsigned index) {
    return std::make_unique<asio_engine::AsioWorker>(index);
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

AsioWorker::AsioWorker(unsigned index) : index_(index) {}

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
    net::post(context_, [this] {
        closeAllSessionsNow();
    });
    work_.reset();
    context_.stop();
    thread_.join();
}

void AsioWorker::addListener(std::string service, UniqueFd listenFd) {
    auto fd = std::make_shared<UniqueFd>(std::move(listenFd));
    net::post(context_, [this, service = std::move(service), fd] {
        error_code ec;
        const int raw = fd->get();
        auto listener = std::make_shared<Listener>(Listener{service, static_cast<std::size_t>(-1),
                                                            tcp::acceptor(context_)});
        listener->acceptor.assign(protocolOf(raw), raw, ec);
        if (ec) {
            telemetry::logger("proxy")->error("worker {}: cannot adopt listener of {}: {}", index_, service,
                                              ec.message());
            return;
        }
        fd->release();
        if (snapshot_) {
            for (std::size_t i = 0; i < snapshot_->services.size(); ++i)
                if (snapshot_->services[i].name == service) listener->serviceIndex = i;
        }
        listeners_.push_back(listener);
        net::co_spawn(context_, acceptLoop(listener), net::detached);
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
    for (auto& [id, session] : sessions_) session->close(CloseReason::Shutdown);
}

void AsioWorker::publish(routing::SnapshotPtr snapshot) {
    net::post(context_, [this, snapshot = std::move(snapshot)]() mutable { applySnapshot(std::move(snapshot)); });
}

net::awaitable<void> AsioWorker::acceptLoop(std::shared_ptr<Listener> listener) {
    static const auto log = telemetry::logger("proxy");
    net::steady_timer backoff(context_);
    for (;;) {
        error_code ec;
        tcp::socket socket = co_await listener->acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
        if (ec == net::error::operation_aborted || !listener->acceptor.is_open()) co_return;
        if (ec) {
            // Out of fds or memory: the connection stays queued; back off
            // instead of spinning on a listener that stays readable.
            if (isLocalError(ec.value())) {
                log->warn("worker {}: accept on {} failed: {}; pausing accepts for 100ms", index_,
                          listener->service, ec.message());
                backoff.expires_after(std::chrono::milliseconds(100));
                co_await backoff.async_wait(net::redirect_error(net::use_awaitable, ec));
            }
            continue;
        }
        if (listener->serviceIndex == static_cast<std::size_t>(-1)) {
            socket.close(ec);
            continue;
        }
        const uint64_t id = (static_cast<uint64_t>(index_) << 48) | nextSessionId_++;
        auto session = std::make_unique<AsioSession>(*this, std::move(socket), id, listener->serviceIndex);
        AsioSession* raw = session.get();
        sessions_.emplace(id, std::move(session));
        sessionCount_.store(sessions_.size(), std::memory_order_relaxed);
        net::co_spawn(context_, raw->run(), [this, id](std::exception_ptr e) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    telemetry::logger("proxy")->error("conn {}: ended by exception: {}", id, ex.what());
                }
            }
            sessionEnded(id);
        });
    }
}

void AsioWorker::sessionConnected(AsioSession& session) {
    routing::BackendState* backend = session.backend().get();
    byBackend_[backend].push_back(session);
    // Routed just before its backend started draining: it drains too.
    if (auto it = draining_.find(backend); it != draining_.end()) {
        session.setScheduledDrain(it->second.first);
        drainQueue_.push({it->second.first, session.id(), it->second.first});
        armDrainTimer();
    }
}

void AsioWorker::sessionEnded(uint64_t id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    routing::BackendState* backend = it->second->backend().get();
    sessions_.erase(it);   // the auto-unlink hook leaves its backend list
    if (backend) {
        if (auto list = byBackend_.find(backend); list != byBackend_.end() && list->second.empty())
            byBackend_.erase(list);
    }
    sessionCount_.store(sessions_.size(), std::memory_order_relaxed);
}

void AsioWorker::applySnapshot(routing::SnapshotPtr snapshot) {
    snapshot_ = std::move(snapshot);
    selector_.update(*snapshot_);
    for (auto& l : listeners_) {
        l->serviceIndex = static_cast<std::size_t>(-1);
        for (std::size_t i = 0; i < snapshot_->services.size(); ++i)
            if (snapshot_->services[i].name == l->service) l->serviceIndex = i;
    }
    draining_.clear();
    for (const auto& service : snapshot_->services)
        for (const auto& pool : service.pools)
            for (const auto& backend : pool.backends)
                if (backend.draining && backend.drainDeadline != routing::kNoDeadline)
                    draining_[backend.handle.get()] = {backend.drainDeadline, service.drainSpread};
    for (const auto& [backend, drain] : draining_) scheduleDrain(backend, drain.first, drain.second);
}

void AsioWorker::scheduleDrain(routing::BackendState* backend, routing::TimePoint deadline,
                               std::chrono::milliseconds spread) {
    auto it = byBackend_.find(backend);
    if (it == byBackend_.end()) return;
    std::vector<AsioSession*> pending;
    for (AsioSession& s : it->second)
        if (s.scheduledDrain() != deadline) pending.push_back(&s);
    if (pending.empty()) return;
    // Closes spread evenly over [deadline - spread, deadline] so the clients
    // do not all reconnect in the same instant.
    const auto n = static_cast<int64_t>(pending.size());
    for (int64_t i = 0; i < n; ++i) {
        const auto at = deadline - spread + spread * (i + 1) / n;
        pending[static_cast<std::size_t>(i)]->setScheduledDrain(deadline);
        drainQueue_.push({at, pending[static_cast<std::size_t>(i)]->id(), deadline});
    }
    armDrainTimer();
}

void AsioWorker::armDrainTimer() {
    if (drainQueue_.empty()) return;
    const auto next = drainQueue_.top().at;
    if (next >= drainTimerAt_ && drainTimerAt_ != routing::kNoDeadline) return;
    drainTimerAt_ = next;
    drainTimer_.expires_at(next);
    drainTimer_.async_wait([this](const error_code& ec) {
        if (ec == net::error::operation_aborted) return;
        drainTimerAt_ = routing::kNoDeadline;
        onDrainTimer();
    });
}

void AsioWorker::onDrainTimer() {
    const auto now = routing::Clock::now();
    std::size_t closed = 0;
    while (!drainQueue_.empty() && drainQueue_.top().at <= now) {
        const DrainEntry entry = drainQueue_.top();
        drainQueue_.pop();
        auto it = sessions_.find(entry.sessionId);
        if (it == sessions_.end() || it->second->scheduledDrain() != entry.deadline) continue;
        // Still draining with that deadline? A pool that came back stops its drain.
        auto drain = draining_.find(it->second->backend().get());
        if (drain == draining_.end() || drain->second.first != entry.deadline) {
            it->second->setScheduledDrain(routing::kNoDeadline);
            continue;
        }
        it->second->close(CloseReason::DrainDeadline);
        ++closed;
    }
    if (closed > 0)
        telemetry::logger("proxy")->info("worker {}: drain deadline closed {} connection(s)", index_, closed);
    armDrainTimer();
}

} // namespace asio_engine
} // namespace switchyard::proxy
