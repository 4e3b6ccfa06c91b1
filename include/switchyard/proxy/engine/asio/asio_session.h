#pragma once

// One proxied connection on the Asio (epoll) engine: routes, connects with
// retries, relays both ways, ends. The coroutine frame and this object own
// both sockets; nothing is shared with other threads.
//
//   (accept_proxy: Header --ok-->) Routing --connect ok--> (PROXY header out) Relaying
//      Relaying --both sides done / error / idle / drain--> Closed
//   Header --malformed / timeout / client gone--> Closed
//   Routing --no backend left or all attempts failed--> Closed

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include <boost/asio.hpp>
#include <boost/intrusive/list_hook.hpp>

#include "switchyard/proxy/close_reason.h"
#include "switchyard/proxy/session_accounting.h"
#include "switchyard/proxy/proxy_protocol.h"
#include "switchyard/proxy/splice_pipe.h"
#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::proxy::asio_engine {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class AsioWorker;

using BackendListHook = boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

class AsioSession : public BackendListHook {
public:
    AsioSession(AsioWorker& worker, tcp::socket client, uint64_t id, std::size_t serviceIndex);
    AsioSession(const AsioSession&) = delete;
    AsioSession& operator=(const AsioSession&) = delete;

    net::awaitable<void> run();

    // Ends the session from outside (drain deadline, shutdown): closing the
    // sockets cancels whatever the coroutines wait on.
    void close(CloseReason reason);

    uint64_t id() const { return id_; }
    const routing::BackendHandle& backend() const { return backend_; }
    routing::TimePoint scheduledDrain() const { return scheduledDrain_; }
    void setScheduledDrain(routing::TimePoint t) { scheduledDrain_ = t; }

private:
    enum class Direction { ClientToBackend = 0, BackendToClient = 1 };

    enum class HeaderRead { Ok, ClientGone, Failed };

    // accept_proxy: reads and checks the PROXY header within the timeout.
    net::awaitable<bool> acceptProxyHeader(const routing::ServiceRoute& service);
    net::awaitable<HeaderRead> readProxyHeader(ProxyHeaderDecoder& decoder);
    // Writes the PROXY header and bytes read with an accepted one, if any.
    net::awaitable<bool> sendPreamble(config::ProxyProtocol version);
    net::awaitable<bool> connectBackend(const routing::ServiceRoute& service);
    net::awaitable<boost::system::error_code> connectOnce(routing::BackendState& backend,
                                                          std::chrono::milliseconds timeout);
    net::awaitable<void> pump(Direction direction);
    // A bulk direction relayed by splice(2) through `pipe` until it ends; the
    // pipe goes back to the worker's pool. Sets `ec` as pump's reads would.
    // True: the flow must go on through buffers (bytes splice will not take).
    net::awaitable<bool> splicePump(Direction direction, SplicePipe pipe, boost::system::error_code& ec);
    net::awaitable<void> watchIdle(std::chrono::milliseconds idle);
    void finishDirection(Direction direction, const boost::system::error_code& ec);
    // One side reset or failed: the other side is reset too, both close.
    void sideFailed(bool clientSide);
    // Closing the sockets ends both pumps and the idle watch.
    void closeSockets();
    void logAccess(std::string_view service) const;

    AsioWorker& worker_;
    tcp::socket client_;
    tcp::socket upstream_;
    const uint64_t id_;
    const std::size_t serviceIndex_;
    routing::BackendHandle backend_;
    std::shared_ptr<routing::ServiceState> serviceState_;
    routing::TimePoint scheduledDrain_ = routing::kNoDeadline;
    std::chrono::steady_clock::time_point lastActivity_;
    // timeouts.idle, and timeouts.half_closed once one direction has ended;
    // a half-close cancels the idle timer (idleRearm_) so it re-arms earlier.
    std::chrono::milliseconds idleTimeout_{0};
    std::chrono::milliseconds halfClosedTimeout_{0};
    boost::asio::steady_timer* idleTimer_ = nullptr;
    bool idleRearm_ = false;
    std::chrono::steady_clock::time_point connectedAt_;
    // Counting shared with the other engine (session_accounting.h).
    ByteTally bytes_;
    FirstBytes firstBytes_;
    ClientAddresses addresses_;
    std::optional<AccessInfo> access_;          // set when the access log is on
    std::string earlyClientBytes_;              // came in with the accepted PROXY header
    bool done_[2] = {false, false};
    CloseReasonLatch reason_;
};

} // namespace switchyard::proxy::asio_engine
