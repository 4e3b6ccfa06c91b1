#pragma once

// The io_uring engine's worker: one ring (SINGLE_ISSUER | DEFER_TASKRUN where
// the kernel has them) on one thread, a provided buffer ring, the sessions it
// accepted and their drain schedule. Calls from other threads are
// PostedTasks, whose eventfd the ring reads.
//
// Accepting: the listeners sit in an epoll set of the worker's own, the ring
// keeps one multishot poll on that set, and the worker takes connections with
// accept4(2) itself. The ring never holds a listening socket, so a listener
// dies with the process (after a SIGKILL nothing accepts a connection that no
// one will serve), and a burst never fills the fd table beyond what the
// worker admits (a multishot accept takes every queued connection at once).

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <liburing.h>

#include "switchyard/proxy/accept_backoff_log.h"
#include "switchyard/proxy/engine/uring/buffer_ring.h"
#include "switchyard/proxy/engine/uring/uring_ops.h"
#include "switchyard/proxy/engine/uring/uring_session.h"
#include "switchyard/proxy/posted_tasks.h"
#include "switchyard/proxy/splice_pipe.h"
#include "switchyard/proxy/worker.h"
#include "switchyard/proxy/worker_core.h"

namespace switchyard::proxy::uring_engine {

// Ring set-up shared by the workers and the start-up self-check.
struct RingSetup {
    unsigned entries = 4096;
    bool singleIssuer = false;   // what the kernel accepted
};
// Initialises `ring` with the fastest flags the kernel accepts; 0 or -errno.
int initRing(io_uring& ring, RingSetup& setup);

class alignas(16) UringWorker final : public Worker {
public:
    // The ring hands buffers out in turn, so over time a worker touches all of
    // them: the count bounds its relay memory (2 MiB). A receive that finds none
    // free waits for one, so this caps only bytes in hand, not connections.
    static constexpr unsigned kBufferCount = 128;
    static constexpr unsigned kBufferSize = 16 * 1024;

    UringWorker(unsigned index, WorkerOptions options);
    ~UringWorker() override;

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
    io_uring_sqe* sqe();
    // Makes room for `n` SQEs that must go in one submission (a linked pair).
    void reserve(unsigned n);
    // A timespec that lives until the next submit (timeouts read it then).
    __kernel_timespec* timespecAt(routing::TimePoint at);
    __kernel_timespec* timespecIn(std::chrono::milliseconds in);
    BufferRing& buffers() { return *buffers_; }
    void recycle(uint16_t buffer) { buffers_->recycle(buffer); }
    // Pipes for splice relays; null when splice is off.
    SplicePipePool* pipes() { return pipes_ ? &*pipes_ : nullptr; }
    std::size_t openSessions() const { return core_.openSessions(); }
    void waitForBuffer(UringSession* session, Direction direction) { bufferWaiters_.emplace_back(session, direction); }
    void cancelBufferWait(UringSession* session, Direction direction);
    SessionContext& sessionContext() { return core_; }
    unsigned index() const { return index_; }
    // The time the current batch of completions started: close enough for idle bookkeeping.
    SteadyTime now() const { return now_; }
    void sessionConnected(UringSession& session);
    void sessionEnded(UringSession* session);

private:
    struct alignas(16) Listener {
        std::string service;
        std::size_t serviceIndex = routing::RoutingSnapshot::kNoService;
        UniqueFd fd;
        bool active = true;
        // Accepting starts once a snapshot names the service, so connections
        // waiting in an inherited socket's backlog meet a worker that can route.
        bool accepting = false;
        uint32_t pending = 0;   // back-off timers in flight (they point here)
        AcceptBackoffLog backoffLog;
    };
    void run();
    bool setUp();
    void tearDown();
    void onCompletion(const io_uring_cqe& cqe);
    void armWakeup();
    void armAcceptPoll();
    void startAccepting(Listener& listener);
    void acceptReady();
    bool acceptFrom(Listener& listener);
    void startSession(Listener& listener, int clientFd);
    void pauseAccepts(Listener& listener, int err);
    void resumeAccepts(Listener& listener);
    void retireListener(Listener& listener);
    void reapListeners();
    void applySnapshot(routing::SnapshotPtr snapshot);
    void closeAllSessionsNow();
    void armDrainTimer();
    void serveBufferWaiters();

    const unsigned index_;
    io_uring ring_{};
    bool ringReady_ = false;
    RingSetup setup_;
    std::unique_ptr<BufferRing> buffers_;
    std::optional<SplicePipePool> pipes_;
    PostedTasks tasks_{false};
    uint64_t wakeValue_ = 0;   // the ring's read of the tasks' eventfd
    UniqueFd acceptPoll_;            // epoll set of this worker's accepting listeners
    bool acceptRoundQueued_ = false;   // a NOP brings the worker back to listeners left ready
    std::thread thread_;
    std::atomic<bool> running_{false};
    bool stopping_ = false;

    SteadyTime now_{};
    std::deque<__kernel_timespec> timespecs_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::vector<std::unique_ptr<Listener>> retiring_;
    WorkerCore<UringSession> core_;
    std::deque<std::pair<UringSession*, Direction>> bufferWaiters_;
};

} // namespace switchyard::proxy::uring_engine
