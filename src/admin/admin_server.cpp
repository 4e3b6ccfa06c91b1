#include "switchyard/admin/admin_server.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
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

// A command line as it may appear in a log: bounded, no control characters.
std::string printable(const std::string& line) {
    constexpr std::size_t kShown = 200;
    std::string out;
    for (std::size_t i = 0; i < line.size() && i < kShown; ++i) {
        const unsigned char c = static_cast<unsigned char>(line[i]);
        out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
    }
    if (line.size() > kShown) out += "...";
    return out;
}

// A line that starts with `auth` may hold the token (sent on the Unix socket,
// or again after authenticating): only the word reaches the log.
bool isAuthLine(const std::string& line) {
    const auto start = line.find_first_not_of(" \t");
    return start != std::string::npos && line.size() - start >= 4 &&
           std::equal(line.begin() + static_cast<std::ptrdiff_t>(start),
                      line.begin() + static_cast<std::ptrdiff_t>(start) + 4, "auth",
                      [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

std::string loggable(const std::string& line) { return isAuthLine(line) ? "auth <redacted>" : printable(line); }

bool isLoopback(const net::ip::address& a) {
    if (a.is_loopback()) return true;
    return a.is_v6() && a.to_v6().is_v4_mapped() &&
           net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).is_loopback();
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

Result<bool> AdminServer::startTcp(const config::Endpoint& at, std::string token) {
    const auto log = telemetry::logger("admin");
    error_code ec;
    const auto address = net::ip::make_address(at.host, ec);
    if (ec) return Result<bool>::failure(fmt::format("admin.tcp {}: {}", at.toString(), ec.message()));
    const net::ip::tcp::endpoint endpoint(address, at.port);
    tcpAcceptor_ = std::make_unique<net::ip::tcp::acceptor>(context_);
    tcpAcceptor_->open(endpoint.protocol(), ec);
    if (!ec) tcpAcceptor_->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) tcpAcceptor_->bind(endpoint, ec);
    if (!ec) tcpAcceptor_->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
        tcpAcceptor_.reset();
        return Result<bool>::failure(fmt::format("cannot listen on admin.tcp {}: {}", at.toString(), ec.message()));
    }
    token_ = std::move(token);
    if (!isLoopback(address))
        log->warn("SECURITY: the admin TCP listener on {} is reachable from other hosts; the token and every "
                  "command cross the network unencrypted. Bind it to 127.0.0.1 or [::1] and tunnel (ssh -L) "
                  "unless this network is trusted",
                  at.toString());
    log->info("admin TCP listener on {} (token authentication)", at.toString());
    net::co_spawn(context_, acceptTcpLoop(), net::detached);
    return true;
}

Result<bool> AdminServer::adopt(const std::string& path, UniqueFd fd) {
    path_ = path;
    error_code ec;
    acceptor_ = std::make_unique<local::acceptor>(context_);
    acceptor_->assign(local(), fd.get(), ec);
    if (ec) {
        acceptor_.reset();
        return Result<bool>::failure(fmt::format("cannot take over the admin socket {}: {}", path, ec.message()));
    }
    fd.release();
    net::co_spawn(context_, acceptLoop(), net::detached);
    return true;
}

Result<bool> AdminServer::adoptTcp(UniqueFd fd, std::string token) {
    error_code ec;
    tcpAcceptor_ = std::make_unique<net::ip::tcp::acceptor>(context_);
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
    tcpAcceptor_->assign(address.ss_family == AF_INET6 ? net::ip::tcp::v6() : net::ip::tcp::v4(), fd.get(), ec);
    if (ec) {
        tcpAcceptor_.reset();
        return Result<bool>::failure(fmt::format("cannot take over the admin TCP listener: {}", ec.message()));
    }
    fd.release();
    token_ = std::move(token);
    net::co_spawn(context_, acceptTcpLoop(), net::detached);
    return true;
}

void AdminServer::release() {
    error_code ec;
    if (tcpAcceptor_) {
        tcpAcceptor_->close(ec);
        tcpAcceptor_.reset();
    }
    if (acceptor_) {
        acceptor_->close(ec);
        acceptor_.reset();
    }
}

void AdminServer::stop() {
    error_code ec;
    if (tcpAcceptor_) {
        tcpAcceptor_->close(ec);
        tcpAcceptor_.reset();
    }
    if (!acceptor_) return;
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
            if (const auto unlogged = acceptErrorLog_.due(std::chrono::steady_clock::now()))
                log->warn("admin accept failed: {} ({} more not logged)", ec.message(), *unlogged);
            net::steady_timer pause(context_, std::chrono::milliseconds(100));
            co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
            continue;
        }
        if (clients_->size() >= kMaxAdminClients) evictIdlest(*clients_, "admin socket");
        Peer peer;
        peer.credentials = peerCredentials(socket.native_handle());
        peer.who = describe(peer.credentials);
        net::co_spawn(context_, serveClient(std::move(socket), clients_, std::move(peer)), net::detached);
    }
}

net::awaitable<void> AdminServer::acceptTcpLoop() {
    const auto log = telemetry::logger("admin");
    for (;;) {
        if (!tcpAcceptor_) co_return;
        error_code ec;
        net::ip::tcp::socket socket =
            co_await tcpAcceptor_->async_accept(net::redirect_error(net::use_awaitable, ec));
        if (ec == net::error::operation_aborted || !tcpAcceptor_) co_return;
        if (ec) {
            if (const auto unlogged = acceptErrorLog_.due(std::chrono::steady_clock::now()))
                log->warn("admin TCP accept failed: {} ({} more not logged)", ec.message(), *unlogged);
            net::steady_timer pause(context_, std::chrono::milliseconds(100));
            co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
            continue;
        }
        if (tcpUnauthenticated_->size() >= kMaxUnauthenticatedClients)
            evictIdlest(*tcpUnauthenticated_, "admin TCP listener without 'auth' yet");
        Peer peer;
        peer.tcp = true;
        const auto remote = socket.remote_endpoint(ec);
        peer.who = ec ? std::string("tcp unknown peer")
                      : fmt::format("tcp {}", remote.address().is_v6()
                                                  ? fmt::format("[{}]:{}", remote.address().to_string(), remote.port())
                                                  : fmt::format("{}:{}", remote.address().to_string(), remote.port()));
        net::co_spawn(context_, serveClient(std::move(socket), tcpUnauthenticated_, std::move(peer)), net::detached);
    }
}

void AdminServer::evictIdlest(ClientList& clients, const char* what) {
    auto idlest = clients.begin();
    for (auto it = clients.begin(); it != clients.end(); ++it)
        if (it->lastActivity < idlest->lastActivity) idlest = it;
    if (idlest == clients.end()) return;
    if (const auto unlogged = evictionLog_.due(std::chrono::steady_clock::now()))
        telemetry::logger("admin")->warn(
            "admin: {} clients connected to the {} (the limit): closing the one idle longest "
            "({} more such closes in the last {}s were not logged)",
            clients.size(), what, *unlogged, proxy::AcceptBackoffLog::kInterval.count());
    idlest->close();
    // Its coroutine leaves the list when it sees the close; until then it
    // must not be picked again.
    idlest->lastActivity = std::chrono::steady_clock::time_point::max();
}

AccessLevel AdminServer::levelOf(const Peer& peer) const {
    if (peer.tcp) return peer.authenticated ? AccessLevel::Admin : AccessLevel::None;
    return access_.levelFor(peer.credentials);
}

bool AdminServer::handleLine(const std::string& line, Peer& peer, nlohmann::json& reply) {
    const auto log = telemetry::logger("admin");
    if (peer.tcp && !peer.authenticated) {
        // The line holds the token (or a guess at it): it is never logged or echoed.
        const std::string_view token = authLineToken(line);
        if (!token.empty() && tokenMatches(token_, token)) {
            peer.authenticated = true;
            log->info("admin ({}): authenticated", peer.who);
            reply = {{"ok", true}, {"authenticated", true}, {"level", toString(AccessLevel::Admin)}};
            return true;
        }
        log->warn("admin ({}): refused: {}; connection closed", peer.who,
                  token.empty() ? "the first line was not 'auth TOKEN'" : "wrong token");
        reply = CommandExecutor::errorReply(
            "unauthorized", "send 'auth TOKEN' first, with the token from the daemon's admin.token_file");
        return false;
    }
    auto parsed = parseCommand(line);
    if (auto* error = std::get_if<ParseError>(&parsed)) {
        reply = CommandExecutor::errorReply(error->code, error->message);
        // The message may quote the line's first word: `authTOKEN` is a token too.
        log->info("admin ({}): '{}' refused: {} ({})", peer.who, loggable(line),
                  isAuthLine(line) ? "not a command here" : error->message, error->code);
        return true;
    }
    const Command& command = std::get<Command>(parsed);
    const AccessLevel level = levelOf(peer);
    if (!permits(level, command.kind)) {
        const std::string why =
            level == AccessLevel::None
                ? fmt::format("{} may not use the admin interface (admin.allow / admin.read_only)", peer.who)
                : fmt::format("'{}' changes traffic; {} has read-only access (admin.read_only)",
                              toString(command.kind), peer.who);
        log->warn("admin ({}): '{}' refused: forbidden (access level {})", peer.who, loggable(line),
                  toString(level));
        reply = CommandExecutor::errorReply("forbidden", why);
        // Nothing else will be allowed either: do not keep the connection.
        return level != AccessLevel::None;
    }
    if (command.kind == CommandKind::Upgrade && upgradeHandler_) {
        log->info("admin ({}): '{}'", peer.who, loggable(line));
        peer.deferred = command;
        return true;
    }
    reply = executor_.execute(command);
    if (reply.contains("pending")) return true;   // logged by serveClient once etcd answered
    logChange(peer, line, command, reply);
    return true;
}

void AdminServer::logChange(const Peer& peer, const std::string& line, const Command& command,
                            const nlohmann::json& reply) {
    const auto log = telemetry::logger("admin");
    if (isChange(command.kind)) {
        if (reply.value("ok", false))
            log->info("admin ({}): '{}' applied", peer.who, loggable(line));
        else
            log->warn("admin ({}): '{}' refused: {} ({})", peer.who, loggable(line), reply.value("error", ""),
                      reply.value("code", ""));
    }
}

template <typename Socket>
net::awaitable<void> AdminServer::serveClient(Socket socket, std::shared_ptr<ClientList> clients, Peer peer) {
    using namespace net::experimental::awaitable_operators;
    const auto log = telemetry::logger("admin");
    clients->push_back({[&socket] {
                            error_code ignored;
                            socket.close(ignored);
                        },
                        std::chrono::steady_clock::now()});
    const auto self = std::prev(clients->end());
    struct Leave {
        std::shared_ptr<ClientList> clients;   // the list `self` is in now
        ClientList::iterator self;
        ~Leave() { clients->erase(self); }
    } leave{clients, self};
    std::string pending;
    net::steady_timer idle(context_);
    for (;;) {
        error_code ec;
        idle.expires_after(peer.tcp && !peer.authenticated ? std::chrono::duration_cast<std::chrono::seconds>(
                                                                 kAdminAuthTimeout)
                                                           : kAdminIdleTimeout);
        // +1 so a line of exactly the limit still fits with its newline.
        auto buffer = net::dynamic_buffer(pending, kMaxCommandLine + 2);
        auto result = co_await (net::async_read_until(socket, buffer, '\n', net::redirect_error(net::use_awaitable, ec)) ||
                                idle.async_wait(net::use_awaitable));
        if (result.index() == 1) {   // idle client: close it
            if (peer.tcp && !peer.authenticated) log->warn("admin ({}): closed: no 'auth' line in time", peer.who);
            co_return;
        }
        const std::size_t n = std::get<0>(result);
        if (ec == net::error::not_found) {
            const std::string reply =
                CommandExecutor::errorReply("bad_argument",
                                            fmt::format("command line too long (limit {} bytes)", kMaxCommandLine))
                    .dump() + "\n";
            idle.expires_after(kAdminIdleTimeout);
            co_await (net::async_write(socket, net::buffer(reply), net::redirect_error(net::use_awaitable, ec)) ||
                      idle.async_wait(net::use_awaitable));
            log->warn("admin: closed a client ({}) that sent a line over {} bytes", peer.who, kMaxCommandLine);
            co_return;
        }
        if (ec) co_return;   // EOF or error: the client left
        self->lastActivity = std::chrono::steady_clock::now();
        std::string line = pending.substr(0, n - 1);
        pending.erase(0, n);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        nlohmann::json reply;
        const bool wasAuthenticated = peer.authenticated;
        const bool keep = handleLine(line, peer, reply);
        if (CommandExecutor::Pending pending = executor_.takePending(); pending.change) {
            // Fleet mode: answered once etcd committed (or refused) the change.
            co_await pending.change->done.async_wait(net::redirect_error(net::use_awaitable, ec));
            reply = executor_.finishPending(pending);
            if (auto parsed = parseCommand(line); auto* command = std::get_if<Command>(&parsed))
                logChange(peer, line, *command, reply);
        }
        std::fill(line.begin(), line.end(), '\0');   // may hold a token
        if (peer.deferred) {
            // Answered when the handler calls back; the timer only wakes this coroutine.
            const Command command = std::move(*peer.deferred);
            peer.deferred.reset();
            auto woken = std::make_shared<net::steady_timer>(context_, std::chrono::steady_clock::time_point::max());
            auto answer = std::make_shared<std::optional<nlohmann::json>>();
            upgradeHandler_(command, [woken, answer](nlohmann::json r) {
                *answer = std::move(r);
                woken->cancel();
            });
            while (!*answer) co_await woken->async_wait(net::redirect_error(net::use_awaitable, ec));
            reply = std::move(**answer);
        }
        if (peer.authenticated && !wasAuthenticated) {
            // Out of the pool of strangers into the operators' one (splice keeps `self` valid).
            if (tcpClients_->size() >= kMaxAdminClients) evictIdlest(*tcpClients_, "admin TCP listener");
            tcpClients_->splice(tcpClients_->end(), *leave.clients, self);
            leave.clients = tcpClients_;
        }
        std::string text = executor_.takeReplyText();
        if (text.empty()) text = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        text += '\n';
        // The write is timed too: a client that pipelines commands and never
        // reads the replies must not hold its connection past the idle timeout.
        idle.expires_after(kAdminIdleTimeout);
        auto written = co_await (net::async_write(socket, net::buffer(text), net::redirect_error(net::use_awaitable, ec)) ||
                                 idle.async_wait(net::use_awaitable));
        if (written.index() == 1) {
            log->warn("admin ({}): closed: a reply went unread for {}s", peer.who, kAdminIdleTimeout.count());
            co_return;
        }
        if (ec || !keep) co_return;
    }
}

} // namespace switchyard::admin
