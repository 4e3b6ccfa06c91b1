#pragma once

// The Asio (epoll) engine's worker: one io_context on one thread, its own
// listeners, the sessions it accepted, and the drain schedule for them.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio.hpp>

#include "switchyard/proxy/accept_backoff_log.h"
#include "switchyard/proxy/buffer_pool.h"
#include "switchyard/proxy/drain_schedule.h"
#include "switchyard/proxy/engine/asio/asio_session.h"
#include "switchyard/proxy/splice_pipe.h"
#include "switchyard/proxy/worker.h"
#include "switchyard/routing/route_selector.h"

namespace switchyard::proxy::asio_engine {

class AsioWorker final : public Worker {
public:
    AsioWorker(unsigned index, WorkerOptions options);
    ~AsioWorker() override;

    void start() override;
    void addListener(std::string service, UniqueFd listenFd) override;
    void removeListener(const std::string& service) override;
    void publish(routing::SnapshotPtr snapshot) override;
    void stopAccepting() override;
    void closeAllSessions() override;
    std::size_t sessionCount() const override { return sessionCount_.load(std::memory_order_relaxed); }
    void post(std::function<void()> task) override { net::post(context_, std::move(task)); }
    void stop() override;

    // Used by sessions, on this worker's thread only.
    const routing::SnapshotPtr& snapshot() const { return snapshot_; }
    routing::RouteSelector& selector() { return selector_; }
    BufferPool& buffers() { return buffers_; }
    // Pipes for splice relays; null when splice is off.
    SplicePipePool* pipes() { return pipes_ ? &*pipes_ : nullptr; }
    std::size_t openSessions() const { return sessions_.size(); }
    net::io_context& context() { return context_; }
    unsigned index() const { return index_; }
    void sessionConnected(AsioSession& session);
    void sessionEnded(uint64_t id);

private:
    struct Listener {
        std::string service;
        std::size_t serviceIndex = routing::RoutingSnapshot::kNoService;
        tcp::acceptor acceptor;
        // Accepting starts once a snapshot names the service: connections
        // queued in an inherited socket's backlog must not meet a worker that
        // cannot route them yet.
        bool accepting = false;
        AcceptBackoffLog backoffLog;
    };
    void startAccepting(const std::shared_ptr<Listener>& listener);
    net::awaitable<void> acceptLoop(std::shared_ptr<Listener> listener);
    void applySnapshot(routing::SnapshotPtr snapshot);
    void closeAllSessionsNow();
    void armDrainTimer();
    void onDrainTimer();

    const unsigned index_;
    net::io_context context_{1};
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
    std::thread thread_;
    routing::SnapshotPtr snapshot_;
    routing::RouteSelector selector_;
    BufferPool buffers_;
    std::optional<SplicePipePool> pipes_;
    std::shared_ptr<net::steady_timer> stopGuard_;   // set while stop() waits for the last session
    std::vector<std::shared_ptr<Listener>> listeners_;
    std::unordered_map<uint64_t, std::unique_ptr<AsioSession>> sessions_;
    DrainSchedule<AsioSession> drains_;
    net::steady_timer drainTimer_{context_};
    routing::TimePoint drainTimerAt_ = routing::kNoDeadline;
    uint64_t nextSessionId_ = 1;
    std::atomic<std::size_t> sessionCount_{0};
};

} // namespace switchyard::proxy::asio_engine
