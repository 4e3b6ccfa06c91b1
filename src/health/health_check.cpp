#include "switchyard/health/health_check.h"

#include <cctype>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "switchyard/util/local_error.h"

namespace switchyard::health {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace boost::asio::experimental::awaitable_operators;

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
// A backend that streams forever must not grow our buffer forever.
constexpr std::size_t kMaxReply = 64 * 1024;
constexpr std::size_t kMaxStatusLine = 8 * 1024;

CheckResult pass() { return {true, {}, false, std::nullopt}; }
CheckResult fail(telemetry::CheckFailure kind, std::string why) { return {false, std::move(why), false, kind}; }

// Printable excerpt of what a backend said, for failure reasons.
std::string excerpt(const std::string& data) {
    std::string out;
    for (char c : data.substr(0, 40)) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\r') out += "\\r";
        else if (c == '\n') out += "\\n";
        else if (u < 0x20 || u >= 0x7f) out += fmt::format("\\x{:02x}", u);
        else out += c;
    }
    if (data.size() > 40) out += "...";
    return out;
}

net::awaitable<CheckResult> probe(tcp::socket& socket, tcp::endpoint endpoint, const config::HealthConfig& check,
                                  const std::string& hostHeader, std::string& phase) {
    phase = "connecting";
    if (auto [ec] = co_await socket.async_connect(endpoint, kTuple); ec) {
        CheckResult result = fail(ec == net::error::connection_refused ? telemetry::CheckFailure::Refused
                                                                       : telemetry::CheckFailure::ConnectError,
                                  "connect: " + ec.message());
        result.localError = util::isLocalError(ec.value());
        if (result.localError) result.kind.reset();
        co_return result;
    }
    if (check.type == config::HealthType::Tcp) co_return pass();

    std::string request;
    std::string expect;
    if (check.type == config::HealthType::SendExpect) {
        request = check.sendExpect.send;
        expect = check.sendExpect.expect;
        phase = fmt::format("waiting for \"{}\"", excerpt(expect));
    } else {
        request = fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: switchyard-health/{}\r\n"
                              "Accept: */*\r\nConnection: close\r\n\r\n",
                              check.http.path, hostHeader, SWITCHYARD_VERSION);
        phase = "waiting for the HTTP status line";
    }
    if (!request.empty()) {
        if (auto [ec, n] = co_await net::async_write(socket, net::buffer(request), kTuple); ec)
            co_return fail(telemetry::CheckFailure::IoError, "send: " + ec.message());
    }

    std::string reply;
    char buffer[4096];
    for (;;) {
        auto [ec, n] = co_await socket.async_read_some(net::buffer(buffer), kTuple);
        reply.append(buffer, n);
        if (check.type == config::HealthType::SendExpect) {
            if (reply.find(expect) != std::string::npos) co_return pass();
            if (ec == net::error::eof)
                co_return fail(telemetry::CheckFailure::Closed, reply.empty() ? fmt::format("closed before \"{}\" came (no reply)", excerpt(expect))
                                             : fmt::format("closed before \"{}\" came; got \"{}\"", excerpt(expect),
                                                           excerpt(reply)));
            if (ec) co_return fail(telemetry::CheckFailure::IoError, "receive: " + ec.message());
            // Keep the tail that could still start a match.
            if (reply.size() > kMaxReply) reply.erase(0, reply.size() - expect.size());
            continue;
        }
        if (const auto eol = reply.find("\r\n"); eol != std::string::npos || reply.size() > kMaxStatusLine) {
            const std::string line = reply.substr(0, eol == std::string::npos ? kMaxStatusLine : eol);
            const int status = parseHttpStatus(line);
            if (status < 0) co_return fail(telemetry::CheckFailure::BadResponse, fmt::format("not an HTTP response: \"{}\"", excerpt(line)));
            if (status != check.http.expectStatus)
                co_return fail(telemetry::CheckFailure::BadStatus, fmt::format("HTTP status {}, expected {}", status, check.http.expectStatus));
            co_return pass();
        }
        if (ec == net::error::eof)
            co_return fail(telemetry::CheckFailure::Closed, reply.empty() ? std::string("closed before an HTTP status line (no reply)")
                                         : fmt::format("closed in the HTTP status line: \"{}\"", excerpt(reply)));
        if (ec) co_return fail(telemetry::CheckFailure::IoError, "receive: " + ec.message());
    }
}

} // namespace

int parseHttpStatus(const std::string& line) {
    // "HTTP/1.1 200 OK", "HTTP/1.0 503", "HTTP/2 200" (lenient on the version).
    if (line.rfind("HTTP/", 0) != 0) return -1;
    const auto space = line.find(' ');
    if (space == std::string::npos || line.size() < space + 4) return -1;
    int status = 0;
    for (std::size_t i = space + 1; i < space + 4; ++i) {
        if (!std::isdigit(static_cast<unsigned char>(line[i]))) return -1;
        status = status * 10 + (line[i] - '0');
    }
    if (line.size() > space + 4 && line[space + 4] != ' ') return -1;
    return status;
}

net::awaitable<CheckResult> runCheck(tcp::endpoint endpoint, config::HealthConfig check, std::string hostHeader) {
    const auto executor = co_await net::this_coro::executor;
    tcp::socket socket(executor);
    net::steady_timer timer(executor);
    timer.expires_after(check.timeout);
    std::string phase = "connecting";
    auto outcome = co_await (probe(socket, endpoint, check, hostHeader, phase) || timer.async_wait(net::use_awaitable));
    boost::system::error_code ignored;
    socket.close(ignored);
    if (outcome.index() == 1)
        co_return fail(telemetry::CheckFailure::Timeout, fmt::format("timeout after {} {}", config::formatDuration(check.timeout), phase));
    co_return std::get<0>(std::move(outcome));
}

} // namespace switchyard::health
