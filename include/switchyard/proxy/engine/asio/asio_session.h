#pragma once

// One proxied connection on the Asio (epoll) engine: a driver of SessionCore
// (session_core.h has the states and the decisions). It only moves bytes,
// reports what happened to the core and performs the action it answers.
// Setting up (PROXY header, connect with its timeout, preamble) is one
// coroutine; the relay is callbacks, one chain per direction (read first,
// wait only on EAGAIN; buffers, or splice for bulk flows) and the idle timer,
// so an idle connection holds no coroutine frame and no buffer: two socket
// waits and one timer wait. `pending_` counts those; the last one to complete
// once the core is Closing ends the session. Nothing is shared with other threads.

#include <cstdint>
#include <optional>

#include <boost/asio.hpp>

#include "switchyard/proxy/buffer_pool.h"
#include "switchyard/proxy/drain_schedule.h"
#include "switchyard/proxy/session_core.h"
#include "switchyard/proxy/splice_pipe.h"

namespace switchyard::proxy::asio_engine {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class AsioWorker;

class AsioSession : public DrainHook {
public:
    AsioSession(AsioWorker& worker, tcp::socket client, uint64_t id, std::size_t serviceIndex);
    AsioSession(const AsioSession&) = delete;
    AsioSession& operator=(const AsioSession&) = delete;

    // Sets the session up; true once the relay runs (its callbacks end the
    // session: AsioWorker::sessionEnded), false when it ended here.
    net::awaitable<bool> run();

    // Ends the session from outside (drain deadline, shutdown): closing the
    // sockets cancels whatever the coroutines wait on.
    void close(CloseReason reason);

    uint64_t id() const { return core_.id(); }
    const routing::BackendHandle& backend() const { return core_.backend(); }
    routing::TimePoint scheduledDrain() const { return core_.scheduledDrain(); }
    void setScheduledDrain(routing::TimePoint t) { core_.setScheduledDrain(t); }

private:
    // The PROXY header, within the deadline `at`: the core's next action.
    net::awaitable<SessionAction> readProxyHeader(routing::TimePoint at);
    net::awaitable<SessionAction> readHeaderBytes();
    net::awaitable<SessionAction> connect(const SessionAction& attempt);
    net::awaitable<SessionAction> sendPreamble();
    struct Flow {
        BufferPool::Lease buffer;          // held only while a write waits for room
        std::optional<SplicePipe> pipe;    // while the direction relays by splice
    };
    using Step = void (AsioSession::*)(Direction);

    void startRelay(routing::TimePoint idleDeadline);
    // Buffer relay of one direction until it blocks, ends or turns to splice.
    void pump(Direction direction);
    // After a whole write: a bulk flow moves to splice when a pipe is spare (true).
    bool toSplice(Direction direction);
    // Splice relay (socket -> pipe -> socket) of one direction until it blocks or ends.
    void splice(Direction direction);
    // Waits for `socket` to be ready, then goes on with `next`.
    void waitThen(tcp::socket& socket, tcp::socket::wait_type wait, Direction direction, Step next);
    void writeFailed(Direction direction, const boost::system::error_code& ec);
    void armIdle(routing::TimePoint at);
    void finishDirection(Direction direction, const boost::system::error_code& ec);
    // The end of every relay callback: the last one after closing ends the session (frees this).
    void completed();
    void perform(const SessionAction& action);
    tcp::socket& socketOf(Side side) { return side == Side::Client ? client_ : upstream_; }
    Flow& flow(Direction d) { return flows_[indexOf(d)]; }
    void releasePipe(Direction direction);
    // Closing the sockets (and the idle timer) ends every wait.
    void closeSockets();

    AsioWorker& worker_;
    tcp::socket client_;
    tcp::socket upstream_;
    net::steady_timer idleTimer_;
    SessionCore core_;
    Flow flows_[2];
    uint16_t pending_ = 0;   // relay waits in flight
};

} // namespace switchyard::proxy::asio_engine
