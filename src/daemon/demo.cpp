#include "switchyard/daemon/demo.h"

#include <cctype>

#include <fmt/format.h>

#include <boost/asio.hpp>

#include "switchyard/telemetry/logging.h"

namespace switchyard::daemon {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

std::string lowercase(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

// Answers each HTTP request (a blank line ends its head) with the name; a
// non-HTTP line gets the bare name back, so `nc` works too.
net::awaitable<void> serveDemoClient(tcp::socket socket, std::string name) {
    const std::string http = fmt::format("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n"
                                         "\r\n{}\n",
                                         name.size() + 1, name);
    const std::string httpClose = fmt::format("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n"
                                              "Connection: close\r\n\r\n{}\n",
                                              name.size() + 1, name);
    const std::string plain = name + "\n";
    std::string pending;
    char data[4096];
    for (;;) {
        error_code ec;
        const std::size_t n = co_await socket.async_read_some(net::buffer(data), net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;
        pending.append(data, n);
        for (;;) {
            const bool looksHttp = pending.find(" HTTP/1.") != std::string::npos;
            const auto end = pending.find(looksHttp ? "\r\n\r\n" : "\n");
            if (end == std::string::npos) break;
            const std::string head = lowercase(pending.substr(0, end));
            pending.erase(0, end + (looksHttp ? 4 : 1));
            // HTTP/1.0 and "Connection: close" end the connection after the answer.
            const bool close = looksHttp && (head.find("connection: close") != std::string::npos ||
                                             (head.find(" http/1.0") != std::string::npos &&
                                              head.find("connection: keep-alive") == std::string::npos));
            co_await net::async_write(socket, net::buffer(looksHttp ? (close ? httpClose : http) : plain),
                                      net::redirect_error(net::use_awaitable, ec));
            if (ec || close) co_return;
        }
        if (pending.size() > 65536) co_return;
    }
}

net::awaitable<void> acceptDemo(tcp::acceptor& acceptor, std::string name) {
    for (;;) {
        error_code ec;
        tcp::socket socket = co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
        if (ec == net::error::operation_aborted) co_return;
        if (ec) continue;
        net::co_spawn(acceptor.get_executor(), serveDemoClient(std::move(socket), name), net::detached);
    }
}

} // namespace

struct DemoBackends::Impl {
    explicit Impl(net::io_context& c) : context(c) {}
    net::io_context& context;
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
};

DemoBackends::DemoBackends(net::io_context& context) : impl_(std::make_unique<Impl>(context)) {}

DemoBackends::~DemoBackends() {
    for (auto& a : impl_->acceptors) {
        error_code ec;
        a->close(ec);
    }
}

Result<std::array<std::vector<config::Endpoint>, 2>> DemoBackends::start(int perPool) {
    std::array<std::vector<config::Endpoint>, 2> endpoints;
    for (auto colour : config::kColours) {
        for (int i = 1; i <= perPool; ++i) {
            error_code ec;
            auto acceptor = std::make_unique<tcp::acceptor>(impl_->context);
            acceptor->open(tcp::v4(), ec);
            if (!ec) acceptor->bind(tcp::endpoint(net::ip::address_v4::loopback(), 0), ec);
            if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
            if (ec)
                return Result<std::array<std::vector<config::Endpoint>, 2>>::failure(
                    fmt::format("cannot start demo backend: {}", ec.message()));
            const auto port = acceptor->local_endpoint().port();
            endpoints[config::index(colour)].push_back(config::Endpoint{"127.0.0.1", port, false});
            const std::string name = fmt::format("{}-{}", config::toString(colour), i);
            net::co_spawn(impl_->context, acceptDemo(*acceptor, name), net::detached);
            telemetry::logger("daemon")->info("demo backend {} on 127.0.0.1:{}", name, port);
            impl_->acceptors.push_back(std::move(acceptor));
        }
    }
    return endpoints;
}

config::Config demoConfig(const std::array<std::vector<config::Endpoint>, 2>& backends) {
    config::Config c;
    c.stateFile.clear();
    c.metrics.listen = config::Endpoint{"127.0.0.1", 9911, false};
    config::ServiceConfig demo;
    demo.name = "demo";
    demo.listen = config::Endpoint{"127.0.0.1", 8080, false};
    demo.split = {100, 0};
    demo.drainTimeout = std::chrono::seconds(10);
    demo.drainSpread = std::chrono::seconds(1);
    demo.health.interval = std::chrono::seconds(1);
    for (auto colour : config::kColours)
        for (const auto& ep : backends[config::index(colour)]) demo.pool(colour).push_back({ep, 100});
    c.services.push_back(std::move(demo));
    return c;
}

} // namespace switchyard::daemon
