#include "switchyard/admin/admin_server.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <fmt/format.h>

#include "switchyard/admin/command_parser.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::admin {
namespace {

namespace net = boost::asio;
using local = net::local::stream_protocol;
using boost::system::error_code;

bool canCreateDir(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return false;
    return ::access(dir.c_str(), W_OK | X_OK) == 0;
}

// A socket file that nobody answers on is left over from a crash.
bool socketIsLive(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    const bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return live;
}

std::string peerDescription(local::socket& socket) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "unknown peer";
    return fmt::format("pid {} uid {}", cred.pid, cred.uid);
}

} // namespace

std::string defaultSocketPath() {
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
        const std::string dir = std::string(xdg) + "/switchyard";
        if (canCreateDir(dir)) return dir + "/admin.sock";
    }
    return "/run/switchyard/admin.sock";
}

AdminServer::AdminServer(net::io_context& context, CommandExecutor& executor)
    : context_(context), executor_(executor) {}

AdminServer::~AdminServer() { stop(); }

Result<bool> AdminServer::start(const std::string& path, uint32_t mode) {
    namespace fs = std::filesystem;
    path_ = path;
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        return Result<bool>::failure(fmt::format("admin socket path {} is too long", path));
    const fs::path p(path);
    std::error_code fec;
    if (p.has_parent_path() && !fs::exists(p.parent_path(), fec)) {
        fs::create_directories(p.parent_path(), fec);
        if (fec)
            return Result<bool>::failure(
                fmt::format("cannot create admin socket directory {}: {}", p.parent_path().string(), fec.message()));
        ::chmod(p.parent_path().c_str(), 0750);
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return Result<bool>::failure(fmt::format("{} exists and is not a socket; refusing to replace it", path));
        if (socketIsLive(path))
            return Result<bool>::failure(
                fmt::format("another process is serving the admin socket {} (is switchyard already running?)", path));
        ::unlink(path.c_str());
    }
    error_code ec;
    acceptor_ = std::make_unique<local::acceptor>(context_);
    acceptor_->open(local(), ec);
    if (!ec) acceptor_->bind(local::endpoint(path), ec);
    if (!ec) acceptor_->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Result<bool>::failure(fmt::format("cannot listen on admin socket {}: {}", path, ec.message()));
    if (::chmod(path.c_str(), mode) != 0)
        return Result<bool>::failure(fmt::format("cannot chmod admin socket {}: {}", path, std::strerror(errno)));
    net::co_spawn(context_, acceptLoop(), net::detached);
    return true;
}

void AdminServer::stop() {
    if (!acceptor_) return;
    error_code ec;
    acceptor_->close(ec);
    acceptor_.reset();
    ::unlink(path_.c_str());
}

net::awaitable<void> AdminServer::acceptLoop() {
    const auto log = telemetry::logger("admin");
    for (;;) {
        if (!acceptor_) co_return;
        error_code ec;
        local::socket socket = co_await acceptor_->async_accept(net::redirect_error(net::use_awaitable, ec));
        if (ec == net::error::operation_aborted || !acceptor_) co_return;
        if (ec) {
            log->warn("admin accept failed: {}", ec.message());
            net::steady_timer pause(context_, std::chrono::milliseconds(100));
            co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
            continue;
        }
        if (clients_->size() >= kMaxAdminClients) evictIdlest();
        net::co_spawn(context_, serveClient(std::move(socket)), net::detached);
    }
}

void AdminServer::evictIdlest() {
    auto idlest = clients_->begin();
    for (auto it = clients_->begin(); it != clients_->end(); ++it)
        if (it->lastActivity < idlest->lastActivity) idlest = it;
    if (idlest == clients_->end()) return;
    telemetry::logger("admin")->warn("admin: {} clients connected (the limit): closing the one idle longest",
                                     clients_->size());
    error_code ec;
    idlest->socket->close(ec);
    // Its coroutine leaves the list when it sees the close; until then it
    // must not be picked again.
    idlest->lastActivity = std::chrono::steady_clock::time_point::max();
}

net::awaitable<void> AdminServer::serveClient(local::socket socket) {
    using namespace net::experimental::awaitable_operators;
    const auto log = telemetry::logger("admin");
    const auto clients = clients_;
    clients->push_back({&socket, std::chrono::steady_clock::now()});
    const auto self = std::prev(clients->end());
    struct Leave {
        std::shared_ptr<std::list<Client>> clients;
        std::list<Client>::iterator self;
        ~Leave() { clients->erase(self); }
    } leave{clients, self};
    const std::string who = peerDescription(socket);
    std::string pending;
    net::steady_timer idle(context_);
    for (;;) {
        error_code ec;
        idle.expires_after(kAdminIdleTimeout);
        // +1 so a line of exactly the limit still fits with its newline.
        auto buffer = net::dynamic_buffer(pending, kMaxCommandLine + 2);
        auto result = co_await (net::async_read_until(socket, buffer, '\n', net::redirect_error(net::use_awaitable, ec)) ||
                                idle.async_wait(net::use_awaitable));
        if (result.index() == 1) co_return;   // idle client: close it
        const std::size_t n = std::get<0>(result);
        if (ec == net::error::not_found) {
            const std::string reply =
                CommandExecutor::errorReply("bad_argument",
                                            fmt::format("command line too long (limit {} bytes)", kMaxCommandLine))
                    .dump() + "\n";
            co_await net::async_write(socket, net::buffer(reply), net::redirect_error(net::use_awaitable, ec));
            log->warn("admin: closed a client ({}) that sent a line over {} bytes", who, kMaxCommandLine);
            co_return;
        }
        if (ec) co_return;   // EOF or error: the client left
        self->lastActivity = std::chrono::steady_clock::now();
        std::string line = pending.substr(0, n - 1);
        pending.erase(0, n);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        nlohmann::json reply;
        auto parsed = parseCommand(line);
        if (auto* error = std::get_if<ParseError>(&parsed)) {
            reply = CommandExecutor::errorReply(error->code, error->message);
        } else {
            const Command& command = std::get<Command>(parsed);
            reply = executor_.execute(command);
            if (isChange(command.kind)) {
                if (reply.value("ok", false))
                    log->info("admin ({}): '{}' applied", who, line);
                else
                    log->warn("admin ({}): '{}' refused: {} ({})", who, line, reply.value("error", ""),
                              reply.value("code", ""));
            }
        }
        const std::string text = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        co_await net::async_write(socket, net::buffer(text), net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;
    }
}

} // namespace switchyard::admin
