#pragma once

// One proxied connection on the Asio (epoll) engine: a driver of SessionCore
// (session_core.h has the states and the decisions). It only moves bytes,
// reports what happened to the core and performs the action it answers.
// Everything is callbacks on the worker's reactor, set-up included: reads and
// writes are plain recv/send on non-blocking sockets, tried first (the
// reactor only after EAGAIN or a short read), a connect is one wait for writable and
// getpeername, and one timer serves the PROXY header's deadline, the connect
// timeout and the idle deadline in turn. So a connection costs no coroutine
// frame and no timer but its own, and an idle one holds no buffer: two socket
// waits and one timer wait. `pending_` counts those; the last one to complete once the core is
// Closing ends the session. Nothing is shared with other threads.

#include <cstdint>
#include <optional>

#include <boost/asio.hpp>

#include "switchyard/proxy/buffer_pool.h"
#include "switchyard/proxy/drain_schedule.h"
#include "switchyard/proxy/session_core.h"
#include "switchyard/proxy/spliced_flow.h"

namespace switchyard::proxy::asio_engine {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class AsioWorker;

class AsioSession : public DrainHook {
public:
    // `client`: the accepted socket, non-blocking, registered with the worker's reactor.
    AsioSession(AsioWorker& worker, tcp::socket client, uint64_t id, std::size_t serviceIndex);
    AsioSession(const AsioSession&) = delete;
    AsioSession& operator=(const AsioSession&) = delete;

    // Starts the session. It ends itself (AsioWorker::sessionEnded frees it),
    // possibly before start() returns.
    void start();

    // Ends the session from outside (drain deadline, shutdown): closing the
    // sockets ends every wait.
    void close(CloseReason reason);

    uint64_t id() const { return core_.id(); }
    const routing::BackendHandle& backend() const { return core_.backend(); }
    routing::TimePoint scheduledDrain() const { return core_.scheduledDrain(); }
    void setScheduledDrain(routing::TimePoint t) { core_.setScheduledDrain(t); }

private:
    struct Flow {
        BufferPool::Lease buffer;          // held only while a write waits for room
        uint32_t offset = 0;               // of the held buffer: sent so far
        uint32_t length = 0;               // of the held buffer: bytes in it
        SplicedFlow spliced;
    };
    // What to do once a socket is ready; the Direction says which flow (set-up steps ignore it).
    using Step = void (AsioSession::*)(Direction);

    void perform(const SessionAction& action);
    // PROXY header bytes from the client until the core has a whole header.
    void readHeader(Direction);
    void connectTo(routing::BackendState& backend, std::chrono::milliseconds timeout);
    // The wait for the connect of `attempt` to end (writable).
    void waitConnected(uint8_t attempt);
    void connectDone(int err);
    void sendPreamble(Direction);
    // Buffer relay of one direction until it blocks, ends or turns to splice.
    void pump(Direction direction);
    // The rest of a write the sink did not take at once.
    void flushWrite(Direction direction);
    // After a whole write: a bulk flow moves to splice when a pipe is spare (true).
    bool toSplice(Direction direction);
    // Splice relay (socket -> pipe -> socket) of one direction until it blocks or ends.
    void splice(Direction direction);
    // Waits for the socket of `side` to be ready, then goes on with `next`.
    void waitThen(Side side, tcp::socket::wait_type wait, Direction direction, Step next);
    // The one session timer, for `at`: a wait for an earlier arming ends ignored.
    void armTimer(routing::TimePoint at);
    void timerFired();
    // The end of every callback: the last one after closing ends the session (frees this).
    void completed();
    void releasePipe(Direction direction);
    // Closing the sockets (and the timer) ends every wait.
    void closeSockets();
    tcp::socket& socketOf(Side side) { return side == Side::Client ? client_ : upstream_; }
    int fdOf(Side side) { return socketOf(side).native_handle(); }
    Flow& flow(Direction d) { return flows_[indexOf(d)]; }

    AsioWorker& worker_;
    tcp::socket client_;
    tcp::socket upstream_;
    net::steady_timer timer_;
    SessionCore core_;
    Flow flows_[2];
    uint16_t pending_ = 0;         // waits in flight
    uint8_t timerArming_ = 0;      // which armTimer() the timer's wait belongs to
    uint8_t connectAttempt_ = 0;   // which connect a writable wait belongs to
    bool timerArmed_ = false;
};

} // namespace switchyard::proxy::asio_engine
