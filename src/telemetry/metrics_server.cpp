#include "switchyard/telemetry/metrics_server.h"

#include <list>
#include <optional>

#include <pthread.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "switchyard/telemetry/logging.h"
#include "switchyard/telemetry/status_page.h"

namespace switchyard::telemetry {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

class Session;

constexpr std::size_t kHeaderLimit = 8 * 1024;
constexpr std::size_t kBodyLimit = 4 * 1024;

} // namespace

// Everything runs on the server thread; only post() crosses threads.
class MetricsServer::Impl : public std::enable_shared_from_this<MetricsServer::Impl> {
public:
    Impl(std::shared_ptr<MetricsCollector> collector, MetricsServerLimits limits, StatusProvider status,
         std::shared_ptr<std::atomic<bool>> ready)
        : collector_(std::move(collector)), limits_(limits), status_(std::move(status)), ready_(std::move(ready)),
          acceptor_(context_), work_(net::make_work_guard(context_)) {}

    // A socket a previous generation handed over (upgrade): served as it is.
    Result<int> adopt(const config::Endpoint& listen, int fd) {
        boost::system::error_code ec;
        acceptor_.assign(listen.ipv6 ? tcp::v6() : tcp::v4(), fd, ec);
        if (ec) return Result<int>::failure("metrics.listen " + listen.toString() + ": cannot take over: " + ec.message());
        return static_cast<int>(acceptor_.local_endpoint().port());
    }
    int listenFd() { return acceptor_.native_handle(); }

    Result<int> bind(const config::Endpoint& listen) {
        boost::system::error_code ec;
        const auto address = net::ip::make_address(listen.host, ec);
        if (ec) return Result<int>::failure("metrics.listen " + listen.toString() + ": bad address: " + ec.message());
        const tcp::endpoint endpoint(address, listen.port);
        acceptor_.open(endpoint.protocol(), ec);
        if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) acceptor_.bind(endpoint, ec);
        if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
        if (ec) return Result<int>::failure("metrics.listen " + listen.toString() + ": cannot listen: " + ec.message());
        return static_cast<int>(acceptor_.local_endpoint().port());
    }

    void run() {
        pthread_setname_np(pthread_self(), "sy-http");
        accept();
        for (;;) {
            try {
                context_.run();
                return;
            } catch (const std::exception& e) {
                logger("metrics")->error("metrics listener: unexpected exception: {}", e.what());
            }
        }
    }

    // From any thread: closes the acceptor and every client; run() then returns.
    void shutdown() {
        net::post(context_, [self = shared_from_this()] { self->closeAll(); });
    }

    net::io_context& context() { return context_; }
    const MetricsServerLimits& limits() const { return limits_; }
    bool ready() const { return ready_->load(std::memory_order_relaxed); }
    MetricsCollector& collector() { return *collector_; }
    const StatusProvider& statusProvider() const { return status_; }

    // Clients in least-recently-idle order: the front is the one waiting longest for a request.
    std::list<Session*>& clients() { return clients_; }

private:
    void accept();
    void closeAll();
    void makeRoom();

    std::shared_ptr<MetricsCollector> collector_;
    MetricsServerLimits limits_;
    StatusProvider status_;
    std::shared_ptr<std::atomic<bool>> ready_;
    std::list<Session*> clients_;   // declared before the context: sessions leave it while the context dies
    net::io_context context_{1};
    tcp::acceptor acceptor_;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
    bool stopping_ = false;
    std::chrono::steady_clock::time_point lastEvictionLog_{};
};

namespace {

// One HTTP client: read a request, answer it, again while keep-alive.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, std::shared_ptr<MetricsServer::Impl> server)
        : stream_(std::move(socket)), server_(std::move(server)), statusTimer_(server_->context()) {
        auto& clients = server_->clients();
        position_ = clients.insert(clients.end(), this);
    }
    ~Session() { server_->clients().erase(position_); }

    void start() { read(server_->limits().requestTimeout); }

    bool waitingForRequest() const { return waitingForRequest_; }

    void close() {
        boost::system::error_code ignored;
        statusTimer_.cancel();
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.close();
    }

private:
    void read(std::chrono::milliseconds timeout) {
        waitingForRequest_ = true;
        // Now the client idle longest is the one at the front.
        auto& clients = server_->clients();
        clients.splice(clients.end(), clients, position_);
        parser_.emplace();
        parser_->header_limit(kHeaderLimit);
        parser_->body_limit(kBodyLimit);
        stream_.expires_after(timeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
    }

    void onRead(beast::error_code ec) {
        waitingForRequest_ = false;
        if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted)
            return close();
        if (ec) {
            // The stream is out of step after a bad request: answer, then close.
            request_ = {};
            request_.keep_alive(false);
            return respond(simple(http::status::bad_request, "bad request: " + ec.message() + "\n"));
        }
        request_ = parser_->release();
        route();
    }

    static http::response<http::string_body> simple(http::status status, std::string body,
                                                    const char* type = "text/plain; charset=utf-8") {
        http::response<http::string_body> res{status, 11};
        res.set(http::field::content_type, type);
        res.body() = std::move(body);
        return res;
    }

    void route() {
        const auto method = request_.method();
        if (method != http::verb::get && method != http::verb::head) {
            auto res = simple(http::status::method_not_allowed, "only GET and HEAD\n");
            res.set(http::field::allow, "GET, HEAD");
            return respond(std::move(res));
        }
        std::string_view target = request_.target();
        if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);

        if (target == "/metrics") {
            const std::string text = toPrometheusText(server_->collector().Collect());
            return respond(simple(http::status::ok, text, "text/plain; version=0.0.4; charset=utf-8"));
        }
        if (target == "/ready") {
            if (server_->ready()) return respond(simple(http::status::ok, "ready\n"));
            return respond(simple(http::status::service_unavailable, "not ready\n"));
        }
        if (target == "/status") return status();
        if (target == "/" || target == "/index.html") {
            auto res = simple(http::status::ok, std::string(statusPageHtml()), "text/html; charset=utf-8");
            // Everything the page needs comes inline from here; nothing else may load.
            res.set("Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'");
            return respond(std::move(res));
        }
        respond(simple(http::status::not_found, "not found; try /, /metrics, /ready or /status\n"));
    }

    // The control thread answers; the reply comes back to this thread. A
    // control thread that does not answer in time (stopping) gets a 503.
    void status() {
        const auto& provider = server_->statusProvider();
        if (!provider) return respond(simple(http::status::not_found, "no status here\n"));
        statusTimer_.expires_after(server_->limits().statusTimeout);
        statusTimer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (ec || self->answered_) return;
            self->answered_ = true;
            self->respond(self->simple(http::status::service_unavailable, "status unavailable\n"));
        });
        answered_ = false;
        std::weak_ptr<Session> weak = weak_from_this();
        auto server = server_;
        provider([weak, server](std::string json) {
            net::post(server->context(), [weak, json = std::move(json)]() mutable {
                const auto self = weak.lock();
                if (!self || self->answered_) return;
                self->answered_ = true;
                self->statusTimer_.cancel();
                auto res = self->simple(http::status::ok, std::move(json), "application/json");
                self->respond(std::move(res));
            });
        });
    }

    void respond(http::response<http::string_body> res) {
        const bool head = request_.method() == http::verb::head;
        res.set(http::field::server, "switchyard");
        res.set(http::field::cache_control, "no-store");
        res.keep_alive(request_.keep_alive());
        res.prepare_payload();
        if (head) res.body().clear();   // Content-Length stays that of the GET
        response_ = std::move(res);
        stream_.expires_after(server_->limits().responseTimeout);
        http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec || !self->response_.keep_alive()) return self->close();
            self->request_ = {};
            self->read(self->server_->limits().keepAliveTimeout);
        });
    }

    beast::tcp_stream stream_;
    std::shared_ptr<MetricsServer::Impl> server_;
    std::list<Session*>::iterator position_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::request<http::string_body> request_;
    http::response<http::string_body> response_;
    net::steady_timer statusTimer_;
    bool waitingForRequest_ = false;
    bool answered_ = true;
};

} // namespace

void MetricsServer::Impl::accept() {
    acceptor_.async_accept([self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
        if (self->stopping_) return;
        if (ec) {
            if (ec == net::error::operation_aborted) return;
            // Out of descriptors and the like: log rarely, try again shortly.
            logger("metrics")->warn("metrics accept failed: {}", ec.message());
            auto timer = std::make_shared<net::steady_timer>(self->context_, std::chrono::milliseconds(100));
            timer->async_wait([self, timer](const boost::system::error_code&) {
                if (!self->stopping_) self->accept();
            });
            return;
        }
        self->makeRoom();
        std::make_shared<Session>(std::move(socket), self)->start();
        self->accept();
    });
}

void MetricsServer::Impl::makeRoom() {
    if (clients_.size() < limits_.maxClients) return;
    for (Session* s : clients_) {
        if (!s->waitingForRequest()) continue;
        s->close();
        const auto now = std::chrono::steady_clock::now();
        if (now - lastEvictionLog_ > std::chrono::seconds(10)) {
            lastEvictionLog_ = now;
            logger("metrics")->warn("metrics listener: {} clients open; closing the one idle longest",
                                    clients_.size());
        }
        return;
    }
}

void MetricsServer::Impl::closeAll() {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (Session* s : clients_) s->close();
    work_.reset();
}

MetricsServer::MetricsServer(std::shared_ptr<MetricsCollector> collector, MetricsServerLimits limits)
    : collector_(std::move(collector)), limits_(limits) {}

MetricsServer::~MetricsServer() { stop(); }

Result<bool> MetricsServer::start(const config::Endpoint& listen, int adoptedFd) {
    auto impl = std::make_shared<Impl>(collector_, limits_, statusProvider_, ready_);
    auto bound = adoptedFd >= 0 ? impl->adopt(listen, adoptedFd) : impl->bind(listen);
    if (!bound) return Result<bool>::failure(bound.errorText());
    port_ = *bound;
    impl_ = impl;
    thread_ = std::thread([impl] { impl->run(); });
    return true;
}

int MetricsServer::listenFd() const { return impl_ ? impl_->listenFd() : -1; }

void MetricsServer::stop() {
    if (!impl_) return;
    impl_->shutdown();
    if (thread_.joinable()) thread_.join();
    impl_.reset();
    port_ = 0;
}

} // namespace switchyard::telemetry
