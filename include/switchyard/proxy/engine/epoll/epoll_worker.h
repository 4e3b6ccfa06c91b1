#pragma once

// The epoll engine's worker: one epoll set and one thread, its own loop (the
// io_uring engine has its ring's): the listeners, the sessions it accepted,
// their deadlines and the drain schedule. Calls from other threads are queued
// as PostedTasks, whose eventfd is in the set.
//
// The loop is the engine's own rather than Asio's reactor because the reactor
// costs system calls per connection that the data path does not need: an
// epoll_ctl(MOD) per wait, an epoll_ctl(DEL) before a close, a timerfd_settime
// whenever a new deadline is the earliest. Here a session's sockets enter the
// set once each, edge-triggered (epoll_session.h), and leave it by their close;
// deadlines are a queue the loop's epoll_wait timeout reads.
//
// An event names a session by its id, not by its address: a socket still open
// in a process being spawned (between its clone and its exec) outlives the
// session's close, and its events must find nothing rather than freed memory.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "switchyard/proxy/accept_backoff_log.h"
#include "switchyard/proxy/buffer_pool.h"
#include "switchyard/proxy/engine/epoll/deadline_queue.h"
#include "switchyard/proxy/engine/epoll/epoll_session.h"
#include "switchyard/proxy/posted_tasks.h"
#include "switchyard/proxy/splice_pipe.h"
#include "switchyard/proxy/worker.h"
#include "switchyard/proxy/worker_core.h"

namespace switchyard::proxy::epoll_engine {

class EpollWorker final : public Worker {
public:
    EpollWorker(unsigned index, WorkerOptions options);
    ~EpollWorker() override;

    void start() override;
    void addListener(std::string service, UniqueFd listenFd) override;
    void removeListener(const std::string& service) override;
    void publish(routing::SnapshotPtr snapshot) override;
    void stopAccepting() override;
    void closeAllSessions() override;
    std::size_t sessionCount() const override { return core_.sessionCount(); }
    void post(std::function<void()> task) override { tasks_.post(std::move(task)); }
    void stop() override;

    // Used by sessions, on this worker's thread only.
    SessionContext& sessionContext() { return core_; }
    BufferPool& buffers() { return buffers_; }
    // Pipes for splice relays; null when splice is off.
    SplicePipePool* pipes() { return pipes_ ? &*pipes_ : nullptr; }
    std::size_t openSessions() const { return core_.openSessions(); }
    DeadlineQueue& deadlines() { return deadlines_; }
    // The time the current batch of events started: close enough for idle bookkeeping.
    SteadyTime now() const { return now_; }
    // Puts the socket of a session's `side` in the set, edge-triggered: 0 or errno.
    int watch(int fd, uint64_t sessionId, Side side);
    // The session's flows waiting on `side` go on after this batch of events.
    void runSoon(uint64_t sessionId, Side side) { runSoon_.emplace_back(sessionId, side); }
    void sessionConnected(EpollSession& session);
    void sessionEnded(uint64_t id);

private:
    struct Listener {
        explicit Listener(EpollWorker& w) : worker(w), backoff(expireBy<Listener, &Listener::backoffEnded>, this) {}
        void backoffEnded() { worker.resumeAccepts(*this); }
        EpollWorker& worker;
        std::string service;
        std::size_t serviceIndex = routing::RoutingSnapshot::kNoService;
        UniqueFd fd;
        bool active = true;
        // Accepting starts once a snapshot names the service: connections
        // queued in an inherited socket's backlog must not meet a worker that
        // cannot route them yet.
        bool accepting = false;
        Deadline backoff;
        AcceptBackoffLog backoffLog;
    };
    void run();
    void dispatch(uint64_t data, uint32_t events);
    void runYielded();
    void startAccepting(Listener& listener);
    // Takes up to kAcceptBatch connections from the listener with accept4
    // (non-blocking from the start), each a new session.
    void acceptFrom(Listener& listener);
    // False when accepting paused (the socket could not be watched).
    bool startSession(Listener& listener, int clientFd);
    void pauseAccepts(Listener& listener, int err);
    void resumeAccepts(Listener& listener);
    // Out of the set and closed; freed after the current batch (an event of it may still name it).
    void retireListener(std::unique_ptr<Listener> listener);
    void retireAllListeners();
    void applySnapshot(routing::SnapshotPtr snapshot);
    void closeAllSessionsNow();
    void armDrainTimer();
    void drainDue();

    const unsigned index_;
    UniqueFd epoll_;
    int setUpError_ = 0;   // errno of a failed epoll_create1, for the worker's log line
    PostedTasks tasks_{true};
    std::thread thread_;
    bool stopping_ = false;

    SteadyTime now_{};
    BufferPool buffers_;
    std::optional<SplicePipePool> pipes_;
    DeadlineQueue deadlines_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::vector<std::unique_ptr<Listener>> retired_;
    std::vector<std::pair<uint64_t, Side>> runSoon_;
    std::vector<std::pair<uint64_t, Side>> yielded_;   // runSoon_ of the round before, being run
    WorkerCore<EpollSession> core_;
    Deadline drainTimer_;
};

} // namespace switchyard::proxy::epoll_engine
