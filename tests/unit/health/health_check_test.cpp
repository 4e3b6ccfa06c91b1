#include "switchyard/health/health_check.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

using namespace switchyard;
using namespace switchyard::health;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// Runs one check against a loopback acceptor whose connections get `serve`.
template <typename Serve>
CheckResult checkAgainst(config::HealthConfig check, Serve serve) {
    net::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
    tcp::socket peer(io);
    acceptor.async_accept(peer, [&](const boost::system::error_code& ec) {
        if (!ec) serve(peer);
    });
    CheckResult result;
    net::co_spawn(io, runCheck(acceptor.local_endpoint(), check, "127.0.0.1:1"),
                  [&](std::exception_ptr, CheckResult r) {
                      result = std::move(r);
                      acceptor.close();
                      peer.close();
                  });
    io.run();
    return result;
}

config::HealthConfig checkOf(config::HealthType type) {
    config::HealthConfig c;
    c.type = type;
    c.timeout = std::chrono::milliseconds(300);
    return c;
}

void reply(tcp::socket& peer, std::string text) {
    auto data = std::make_shared<std::string>(std::move(text));
    net::async_write(peer, net::buffer(*data), [data](auto, auto) {});
}

} // namespace

TEST_CASE("http status lines parse leniently and reject garbage", "[health][check]") {
    CHECK(parseHttpStatus("HTTP/1.1 200 OK") == 200);
    CHECK(parseHttpStatus("HTTP/1.0 503") == 503);
    CHECK(parseHttpStatus("HTTP/2 204 ") == 204);
    CHECK(parseHttpStatus("SSH-2.0-OpenSSH") == -1);
    CHECK(parseHttpStatus("HTTP/1.1 20") == -1);
    CHECK(parseHttpStatus("HTTP/1.1 2000") == -1);
}

TEST_CASE("a tcp check passes on connect", "[health][check]") {
    const auto r = checkAgainst(checkOf(config::HealthType::Tcp), [](tcp::socket&) {});
    CHECK(r.passed);
}

TEST_CASE("a tcp check against a closed port fails with the connect error", "[health][check]") {
    net::io_context io;
    tcp::endpoint closed;
    {
        tcp::acceptor a(io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
        closed = a.local_endpoint();
    }
    CheckResult result;
    net::co_spawn(io, runCheck(closed, checkOf(config::HealthType::Tcp), "x"),
                  [&](std::exception_ptr, CheckResult r) { result = std::move(r); });
    io.run();
    CHECK_FALSE(result.passed);
    CHECK(result.failure == "connect: Connection refused");
}

TEST_CASE("send_expect passes when the reply contains the expected bytes", "[health][check]") {
    auto c = checkOf(config::HealthType::SendExpect);
    c.sendExpect = {"PING\r\n", "PONG"};
    CHECK(checkAgainst(c, [](tcp::socket& p) { reply(p, "+PONG\r\n"); }).passed);
}

TEST_CASE("send_expect fails when the backend closes without the expected bytes", "[health][check]") {
    auto c = checkOf(config::HealthType::SendExpect);
    c.sendExpect = {"PING\r\n", "PONG"};
    const auto r = checkAgainst(c, [](tcp::socket& p) {
        reply(p, "-ERR\r\n");
        p.shutdown(tcp::socket::shutdown_send);
    });
    CHECK_FALSE(r.passed);
    CHECK(r.failure == "closed before \"PONG\" came; got \"-ERR\\r\\n\"");
}

TEST_CASE("a backend that accepts and never answers fails by the timeout", "[health][check]") {
    auto c = checkOf(config::HealthType::Http);
    const auto started = std::chrono::steady_clock::now();
    const auto r = checkAgainst(c, [](tcp::socket&) {});
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK_FALSE(r.passed);
    CHECK(r.failure == "timeout after 300ms waiting for the HTTP status line");
    CHECK(took >= std::chrono::milliseconds(290));
    CHECK(took < std::chrono::seconds(2));
}

TEST_CASE("an http check compares the status", "[health][check]") {
    auto c = checkOf(config::HealthType::Http);
    CHECK(checkAgainst(c, [](tcp::socket& p) { reply(p, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"); }).passed);
    const auto r = checkAgainst(c, [](tcp::socket& p) { reply(p, "HTTP/1.1 503 Service Unavailable\r\n\r\n"); });
    CHECK_FALSE(r.passed);
    CHECK(r.failure == "HTTP status 503, expected 200");
}
