#pragma once

// One proxied connection on the io_uring engine: a driver of SessionCore
// (session_core.h has the states and the decisions), callback-driven (no
// coroutine frame). Each completion goes to the core as an event; the action
// it answers becomes SQEs. Everything the session waits on is an op in flight
// on its worker's ring; `pending_` counts them, and the session is freed only
// once the core is Closing and the last of them (its own cancels too) has
// completed.
//
// Relaying, each direction: recv (buffer chosen by the kernel from the
// worker's ring at completion) -> send from that buffer (partial sends
// resubmitted) -> recycle -> recv again. A direction reads again only after
// its send completed, so a slow receiver throttles the sender. Idle
// connections hold no buffer and exactly one timer op: it is re-armed only
// when it fires before the (moved) idle deadline, never per read.
//
// Bulk flows: a direction whose receives keep filling whole buffers moves to
// splice (socket -> pipe -> socket, no copy into user space) once its buffer
// is sent, if the worker can spare a pipe. It then waits with poll ops: for
// its source while the pipe is empty, for its sink while the pipe holds bytes,
// so a slow receiver still throttles the sender.

#include <cstdint>
#include <optional>

#include "switchyard/proxy/drain_schedule.h"
#include "switchyard/proxy/engine/uring/uring_ops.h"
#include "switchyard/proxy/session_core.h"
#include "switchyard/proxy/spliced_flow.h"

struct io_uring_cqe;

namespace switchyard::proxy::uring_engine {

class UringWorker;

class alignas(16) UringSession : public DrainHook {
public:
    UringSession(UringWorker& worker, int clientFd, uint64_t id, std::size_t serviceIndex);
    ~UringSession();
    UringSession(const UringSession&) = delete;
    UringSession& operator=(const UringSession&) = delete;

    // Routes the accepted connection; may end (and free) the session at once.
    void start();
    // Every completion for this session; may free it.
    void onCompletion(Op op, const io_uring_cqe& cqe);
    // From the worker (drain deadline, shutdown); may free the session.
    void closeFromOutside(CloseReason reason);
    // The worker's buffer ring has a buffer again for a recv that found none; may free the session.
    void bufferAvailable(Direction direction);

    uint64_t id() const { return core_.id(); }
    const routing::BackendHandle& backend() const { return core_.backend(); }
    routing::TimePoint scheduledDrain() const { return core_.scheduledDrain(); }
    void setScheduledDrain(routing::TimePoint t) { core_.setScheduledDrain(t); }

private:
    struct Flow {
        int32_t buffer = -1;      // ring buffer id held between recv and send completion
        uint32_t offset = 0;
        uint32_t length = 0;
        bool waitingBuffer = false;
        SplicedFlow spliced;
    };

    int fdOf(Side side) const { return side == Side::Client ? clientFd_ : backendFd_; }
    Flow& flow(Direction d) { return flows_[indexOf(d)]; }
    void perform(const SessionAction& action);
    // Cancels what is in flight; the last completion frees the session.
    void cancelAll();
    void maybeFinish();
    void finish();

    void connectTo(routing::BackendState& backend, std::chrono::milliseconds timeout);
    // `pollFirst`: no bytes expected yet (the backend's first answer, after a short read).
    void submitRecv(Direction direction, bool pollFirst = false);
    void submitSend(Direction direction);
    void submitPreamble();
    void armTimer(routing::TimePoint at);

    void onHeaderBytes(const io_uring_cqe& cqe);
    void onConnect(int res);
    void onRecv(Direction direction, const io_uring_cqe& cqe);
    void onSend(Direction direction, int res);
    void onTimer(int res);
    bool startSplice(Direction direction);
    void releasePipe(Direction direction);
    void pumpSplice(Direction direction);
    void armPoll(Direction direction, int fd, unsigned events);
    void releaseBuffer(Direction direction);
    // A recv that failed or came after closing: its buffer goes back (true), or it found none (false: it waits).
    bool dropped(Direction direction, const io_uring_cqe& cqe);
    void dropSelectedBuffer(const io_uring_cqe& cqe);

    UringWorker& worker_;
    int clientFd_;
    int backendFd_ = -1;
    bool timerArmed_ = false;
    uint16_t pending_ = 0;
    Flow flows_[2];
    SessionCore core_;
};

} // namespace switchyard::proxy::uring_engine
