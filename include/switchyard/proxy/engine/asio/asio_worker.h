#pragma once

// The Asio (epoll) engine's worker: one io_context on one thread, its own
// listeners, the sessions it accepted, and the drain schedule for them.

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

#include "switchyard/proxy/accept_backoff_log.h"
#include "switchyard/proxy/buffer_pool.h"
#include "switchyard/proxy/engine/asio/asio_session.h"
#include "switchyard/proxy/splice_pipe.h"
#include "switchyard/proxy/worker.h"
#include "switchyard/proxy/worker_core.h"

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
    std::size_t sessionCount() const override { return core_.sessionCount(); }
    void post(std::function<void()> task) override { net::post(context_, std::move(task)); }
    void stop() override;

    // Used by sessions, on this worker's thread only.
    SessionContext& sessionContext() { return core_; }
    BufferPool& buffers() { return buffers_; }
    // Pipes for splice relays; null when splice is off.
    SplicePipePool* pipes() { return pipes_ ? &*pipes_ : nullptr; }
    std::size_t openSessions() const { return core_.openSessions(); }
    net::io_context& context() { return context_; }
    unsigned index() const { return index_; }
    void sessionConnected(AsioSession& session);
    void sessionEnded(uint64_t id);

private:
    struct Listener {
        std::string service;
        std::size_t serviceIndex = routing::RoutingSnapshot::kNoService;
        tcp::acceptor acceptor;
        tcp protocol;
        // Accepting starts once a snapshot names the service: connections
        // queued in an inherited socket's backlog must not meet a worker that
        // cannot route them yet.
        bool accepting = false;
        AcceptBackoffLog backoffLog;
    };
    void startAccepting(const std::shared_ptr<Listener>& listener);
    net::awaitable<void> acceptLoop(std::shared_ptr<Listener> listener);
    // Takes up to kAcceptBatch connections from the listener with accept4
    // (non-blocking from the start), each a new session.
    AcceptError acceptFrom(Listener& listener);
    void applySnapshot(routing::SnapshotPtr snapshot);
    void closeAllSessionsNow();
    void armDrainTimer();

    const unsigned index_;
    net::io_context context_{1};
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
    std::thread thread_;
    BufferPool buffers_;
    std::optional<SplicePipePool> pipes_;
    std::shared_ptr<net::steady_timer> stopGuard_;   // set while stop() waits for the last session
    std::vector<std::shared_ptr<Listener>> listeners_;
    WorkerCore<AsioSession> core_;
    net::steady_timer drainTimer_{context_};
};

} // namespace switchyard::proxy::asio_engine
