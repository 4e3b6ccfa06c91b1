#pragma once

// One proxied connection on the io_uring engine: a compact callback-driven
// state machine (no coroutine frame). Everything it waits on is an op in
// flight on its worker's ring; `pending_` counts them, and the session is
// freed only once closing and the last of them has completed.
//
//   (accept_proxy: Header --ok-->) Connecting --ok--> (Preamble: PROXY header out) Relaying
//   Connecting --failed--> Connecting (next backend, up to retries) | Closing
//   Header --malformed / timeout / client gone--> Closing
//   Relaying --both directions at EOF / error / idle / drain / shutdown--> Closing
//   Closing --every op completed (cancelled), its own cancels too--> freed
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

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "switchyard/proxy/close_reason.h"
#include "switchyard/proxy/drain_schedule.h"
#include "switchyard/proxy/engine/uring/uring_ops.h"
#include "switchyard/proxy/proxy_protocol.h"
#include "switchyard/proxy/session_accounting.h"
#include "switchyard/proxy/splice_pipe.h"
#include "switchyard/routing/route_selector.h"
#include "switchyard/routing/routing_snapshot.h"

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
    void bufferAvailable(int direction);

    uint64_t id() const { return id_; }
    const routing::BackendHandle& backend() const { return backend_; }
    routing::TimePoint scheduledDrain() const { return scheduledDrain_; }
    void setScheduledDrain(routing::TimePoint t) { scheduledDrain_ = t; }

private:
    enum class State : uint8_t { Header, Connecting, Preamble, Relaying, Closing };

    // Held from accept until the relay starts: routing needs the snapshot,
    // the retry state and the PROXY header; a relaying session frees it.
    struct Setup {
        routing::SnapshotPtr snapshot;
        routing::Attempts attempts;
        uint32_t attemptsMade = 0;
        ClientAddresses addresses;
        std::unique_ptr<ProxyHeaderDecoder> decoder;
        bool headerBytesSeen = false;
        std::string early;        // client bytes that came in with an accepted PROXY header
        std::string preamble;
        std::size_t preambleSent = 0;
        routing::BackendHandle trying;
        SteadyTime connectStarted{};
    };

    struct Flow {
        int32_t buffer = -1;      // ring buffer id held between recv and send completion
        uint32_t offset = 0;
        uint32_t length = 0;
        bool done = false;        // EOF seen and passed on
        bool waitingBuffer = false;
        uint8_t fullReads = 0;    // receives in a row that filled a whole buffer
        bool sourceEnded = false; // splice: EOF read, passed on once the pipe is empty
        bool lastFillShort = false;
        std::optional<SplicePipe> pipe;   // set once the direction relays by splice
    };

    const routing::ServiceRoute* service() const;
    // One side (0 client, 1 backend) reset or failed: the other side is reset
    // too, and the session closes.
    void sideFailed(int side);
    void close(CloseReason reason);
    void maybeFinish();
    void finish();

    void submitRecv(int direction);
    void submitSend(int direction);
    void submitPreamble();
    void armTimer(routing::TimePoint at);

    void onHeaderBytes(const io_uring_cqe& cqe);
    void headerFailed(bool clientGone, bool timedOut);
    void connectNext();
    void onConnect(int res);
    void connectFailed();
    void connected();
    void startRelay();
    void onRecv(int direction, const io_uring_cqe& cqe);
    void onSend(int direction, int res);
    void onPreambleSent(int res);
    void onTimer(int res);
    void finishDirection(int direction);
    bool startSplice(int direction);
    void releasePipe(int direction);
    void pumpSplice(int direction);
    void armPoll(int direction, int fd, unsigned events);
    void onPoll(int direction, int res);
    void releaseBuffer(int direction);
    void dropSelectedBuffer(const io_uring_cqe& cqe);

    UringWorker& worker_;
    const uint64_t id_;
    int clientFd_;
    int backendFd_ = -1;
    const uint32_t serviceIndex_;
    State state_ = State::Connecting;
    CloseReasonLatch reason_;
    bool timerArmed_ = false;
    bool admitted_ = false;
    uint16_t pending_ = 0;
    Flow flows_[2];
    std::chrono::milliseconds idleTimeout_{0};
    std::chrono::milliseconds halfClosedTimeout_{0};   // replaces idleTimeout_ once a direction ended
    std::chrono::milliseconds currentIdleTimeout() const {
        return flows_[0].done || flows_[1].done ? std::min(idleTimeout_, halfClosedTimeout_) : idleTimeout_;
    }
    routing::BackendHandle backend_;
    std::shared_ptr<routing::ServiceState> serviceState_;
    routing::TimePoint scheduledDrain_ = routing::kNoDeadline;
    SteadyTime lastActivity_{};
    SteadyTime connectedAt_{};
    FirstBytes firstBytes_;
    ByteTally bytes_;
    std::unique_ptr<Setup> setup_;
    std::unique_ptr<AccessInfo> access_;   // only while the access log is on
};

} // namespace switchyard::proxy::uring_engine
