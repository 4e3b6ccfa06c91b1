#pragma once

// The admin socket: one command per line, one JSON reply per line, served on
// the control thread (the one writer). Bounded: line length, client count and
// idle time, so nothing a client sends can starve the daemon.
// Access (README "Security model"): Unix clients get a level from their
// kernel credentials (admin_auth.h); the optional TCP listener first wants
// `auth TOKEN`.

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio.hpp>

#include "switchyard/admin/admin_auth.h"
#include "switchyard/admin/command_executor.h"
#include "switchyard/config/config.h"
#include "switchyard/proxy/accept_backoff_log.h"
#include "switchyard/util/result.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::admin {

// At the limit, a new client evicts the one idle longest, so clients that
// connect and never send cannot lock operators out. The Unix socket and the
// TCP listener have a limit each, so TCP clients never evict local operators.
inline constexpr std::size_t kMaxAdminClients = 128;
// TCP clients that have not authenticated yet wait in a pool of their own and
// evict only each other: a flood of connections without a token never closes
// an operator's session, and an operator's new connection needs only to send
// `auth` before kAdminAuthTimeout to leave the pool.
inline constexpr std::size_t kMaxUnauthenticatedClients = 16;
// Without a line (or with a reply the client does not read) for this long, a
// client is closed.
inline constexpr std::chrono::seconds kAdminIdleTimeout{60};
// A TCP client has this long to send its `auth` line.
inline constexpr std::chrono::seconds kAdminAuthTimeout{3};

// The socket path docs/configuration.md (admin.socket) promises when the config names none: the first of
// $XDG_RUNTIME_DIR/switchyard/admin.sock and /run/switchyard/admin.sock whose
// directory can be created.
std::string defaultSocketPath();

class AdminServer {
public:
    AdminServer(boost::asio::io_context& context, CommandExecutor& executor);
    ~AdminServer();

    // Creates the socket safely: parent directory 0750, a stale socket file
    // replaced, a live one (another daemon) refused, then chmod to `mode`.
    Result<bool> start(const std::string& path, uint32_t mode);
    // The TCP listener; `token` comes from loadAdminToken(). Warns when the
    // address is not a loopback one.
    Result<bool> startTcp(const config::Endpoint& at, std::string token);
    // Who may do what on the Unix socket; applies to the next command of
    // every client, connected or not (a reload can revoke access).
    void setAccess(AccessPolicy policy) { access_ = std::move(policy); }
    void stop();
    const std::string& path() const { return path_; }

    // --- upgrade (daemon/upgrader.h) ---
    // Serves on listening sockets a previous generation handed over (nothing
    // is bound, unlinked or chmod-ed: they are the very same sockets).
    Result<bool> adopt(const std::string& path, UniqueFd fd);
    Result<bool> adoptTcp(UniqueFd fd, std::string token);
    // The listening descriptors, for the hand-over (-1 when there is none).
    int socketFd() const { return acceptor_ ? acceptor_->native_handle() : -1; }
    int tcpSocketFd() const { return tcpAcceptor_ ? tcpAcceptor_->native_handle() : -1; }
    // Stops accepting and leaves the socket file to the next generation;
    // connected clients are still answered.
    void release();
    // `upgrade` takes seconds: it is handed to this and answered when `done` is called.
    using AsyncHandler = std::function<void(const Command&, std::function<void(nlohmann::json)> done)>;
    void setUpgradeHandler(AsyncHandler handler) { upgradeHandler_ = std::move(handler); }

private:
    struct Client {
        std::function<void()> close;
        std::chrono::steady_clock::time_point lastActivity;
    };
    using ClientList = std::list<Client>;
    // What the server knows about the other end of one connection.
    struct Peer {
        std::string who;             // for logs: "pid 1 uid 0 gid 0" or "tcp 127.0.0.1:5000"
        PeerCredentials credentials; // Unix peers
        bool tcp = false;
        bool authenticated = false;  // TCP peers, after a good `auth` line
        std::optional<Command> deferred;  // an asynchronous command (upgrade) to run now
    };

    boost::asio::awaitable<void> acceptLoop();
    boost::asio::awaitable<void> acceptTcpLoop();
    template <typename Socket>
    boost::asio::awaitable<void> serveClient(Socket socket, std::shared_ptr<ClientList> clients, Peer peer);
    // The reply to one line; false when the connection must close after it.
    bool handleLine(const std::string& line, Peer& peer, nlohmann::json& reply);
    void logChange(const Peer& peer, const std::string& line, const Command& command, const nlohmann::json& reply);
    AccessLevel levelOf(const Peer& peer) const;

    boost::asio::io_context& context_;
    CommandExecutor& executor_;
    std::string path_;
    std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
    std::unique_ptr<boost::asio::ip::tcp::acceptor> tcpAcceptor_;
    std::string token_;
    AccessPolicy access_;
    AsyncHandler upgradeHandler_;
    void evictIdlest(ClientList& clients, const char* what);
    // Shared with the client coroutines: when the io_context is destroyed after
    // this server, their frames still unlink themselves from a living list.
    std::shared_ptr<ClientList> clients_ = std::make_shared<ClientList>();
    std::shared_ptr<ClientList> tcpClients_ = std::make_shared<ClientList>();         // authenticated
    std::shared_ptr<ClientList> tcpUnauthenticated_ = std::make_shared<ClientList>();
    // A flood of connections evicts thousands of clients a second: one warning
    // line per interval, with how many went unlogged.
    proxy::AcceptBackoffLog evictionLog_;
    proxy::AcceptBackoffLog acceptErrorLog_;
};

} // namespace switchyard::admin
