#pragma once

// One proxied connection on the Asio (epoll) engine: a driver of SessionCore
// (session_core.h has the states and the decisions). Coroutines here only move
// bytes: read the PROXY header, connect, write the preamble, pump each
// direction (buffers, or splice for bulk flows), wait for the idle deadline;
// each reports what happened to the core and performs the action it answers.
// The coroutine frame and this object own both sockets; nothing is shared
// with other threads.

#include <cstdint>

#include <boost/asio.hpp>

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

    net::awaitable<void> run();

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
    net::awaitable<void> pump(Direction direction);
    // A bulk direction relayed by splice(2) through `pipe` until it ends; the
    // pipe goes back to the worker's pool. Sets `ec` as pump's reads would.
    // True: the flow must go on through buffers (bytes splice will not take).
    net::awaitable<bool> splicePump(Direction direction, SplicePipe pipe, boost::system::error_code& ec);
    net::awaitable<void> watchIdle(routing::TimePoint deadline);
    void finishDirection(Direction direction, const boost::system::error_code& ec);
    void perform(const SessionAction& action);
    tcp::socket& socketOf(Side side) { return side == Side::Client ? client_ : upstream_; }
    // Closing the sockets ends both pumps and the idle watch.
    void closeSockets();

    AsioWorker& worker_;
    tcp::socket client_;
    tcp::socket upstream_;
    SessionCore core_;
    // The idle watch's timer while it waits; a half-close cancels it
    // (idleRearm_) so that it re-arms for the earlier deadline.
    net::steady_timer* idleTimer_ = nullptr;
    bool idleRearm_ = false;
};

} // namespace switchyard::proxy::asio_engine
