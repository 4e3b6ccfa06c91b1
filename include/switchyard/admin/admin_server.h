#pragma once

// The admin socket: one command per line, one JSON reply per line, served on
// the control thread (the one writer). Bounded: line length, client count and
// idle time, so nothing a client sends can starve the daemon.

#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <string>

#include <boost/asio.hpp>

#include "switchyard/admin/command_executor.h"
#include "switchyard/config/config.h"
#include "switchyard/util/result.h"

namespace switchyard::admin {

// At the limit, a new client evicts the one idle longest, so clients that
// connect and never send cannot lock operators out.
inline constexpr std::size_t kMaxAdminClients = 128;
inline constexpr std::chrono::seconds kAdminIdleTimeout{60};

// The socket path SPEC.md prescribes when the config names none: the first of
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
    void stop();
    const std::string& path() const { return path_; }

private:
    boost::asio::awaitable<void> acceptLoop();
    boost::asio::awaitable<void> serveClient(boost::asio::local::stream_protocol::socket socket);

    boost::asio::io_context& context_;
    CommandExecutor& executor_;
    std::string path_;
    std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
    struct Client {
        boost::asio::local::stream_protocol::socket* socket;
        std::chrono::steady_clock::time_point lastActivity;
    };
    void evictIdlest();
    // Shared with the client coroutines: when the io_context is destroyed after
    // this server, their frames still unlink themselves from a living list.
    std::shared_ptr<std::list<Client>> clients_ = std::make_shared<std::list<Client>>();
};

} // namespace switchyard::admin
