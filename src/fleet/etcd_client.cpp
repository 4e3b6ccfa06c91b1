#include "switchyard/fleet/etcd_client.h"

#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include <netdb.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "switchyard/fleet/etcd_codec.h"

namespace switchyard::fleet {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using net::ip::tcp;

constexpr auto kStreamSilence = std::chrono::minutes(11);
// How often a name resolution running on its own thread is looked at.
constexpr auto kResolvePoll = std::chrono::milliseconds(10);

std::string hostHeader(const config::EtcdEndpoint& e) {
    return e.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", e.host, e.port)
                                                 : fmt::format("{}:{}", e.host, e.port);
}

} // namespace

EtcdClient::EtcdClient(net::io_context& context, std::vector<config::EtcdEndpoint> endpoints,
                       std::chrono::milliseconds dialTimeout)
    : context_(context), endpoints_(std::move(endpoints)), dialTimeout_(dialTimeout) {}

void EtcdClient::setCredentials(std::string user, std::string password) {
    user_ = std::move(user);
    password_ = std::move(password);
}

net::awaitable<std::optional<CallResult>> EtcdClient::authenticate(std::chrono::milliseconds timeout) {
    token_.clear();
    const std::string body = nlohmann::json{{"name", user_}, {"password", password_}}.dump();
    CallResult r = co_await rotate("/v3/auth/authenticate", body, timeout);
    if (r.ok) {
        const auto j = nlohmann::json::parse(r.body, nullptr, false);
        if (j.is_object() && j.contains("token") && j["token"].is_string()) {
            token_ = j["token"].get<std::string>();
            co_return std::nullopt;
        }
    }
    r.ok = false;
    r.body = fmt::format("etcd authentication as '{}' failed: {}", user_, r.reached ? errorText(r.body) : r.body);
    co_return r;
}

net::awaitable<CallResult> EtcdClient::call(std::string path, std::string body, std::chrono::milliseconds timeout) {
    if (!user_.empty() && token_.empty())
        if (auto failed = co_await authenticate(timeout)) co_return *failed;
    CallResult r = co_await rotate(path, body, timeout);
    // An expired or unknown token: 401 "invalid auth token"; none at all: 400 "user name is empty".
    const bool refused = r.status == 401 || (r.status == 400 && r.body.find("user name is empty") != std::string::npos);
    if (!user_.empty() && refused) {
        if (auto failed = co_await authenticate(timeout)) co_return *failed;
        r = co_await rotate(path, body, timeout);
    }
    co_return r;
}

net::awaitable<CallResult> EtcdClient::rotate(const std::string& path, const std::string& body,
                                              std::chrono::milliseconds timeout) {
    CallResult last;
    for (std::size_t tried = 0; tried < endpoints_.size(); ++tried) {
        const std::size_t at = (current_ + tried) % endpoints_.size();
        CallResult r = co_await once(endpoints_[at], path, body, timeout, nullptr);
        // 503 is a member without a leader or shutting down: the next one may do better.
        if (r.reached && r.status != 503) {
            current_ = at;
            co_return r;
        }
        last = std::move(r);
    }
    co_return last;
}

net::awaitable<CallResult> EtcdClient::stream(std::string path, std::string body,
                                              std::function<bool(std::string_view)> onLine) {
    if (!user_.empty() && token_.empty())
        if (auto failed = co_await authenticate(dialTimeout_)) co_return *failed;
    CallResult last;
    for (std::size_t tried = 0; tried < endpoints_.size(); ++tried) {
        const std::size_t at = (current_ + tried) % endpoints_.size();
        CallResult r = co_await once(endpoints_[at], path, body, std::chrono::milliseconds::zero(), &onLine);
        if (r.reached) {
            current_ = at;
            co_return r;
        }
        last = std::move(r);
    }
    co_return last;
}

// getaddrinfo cannot be interrupted, and Asio's resolver both answers a cancel
// only once it has returned and joins its thread at shutdown: a DNS server that
// never answers would hold the store for resolv.conf's timeouts (10 s and more)
// and SIGTERM with it. A name is resolved on a detached thread of its own; the
// wait for it is bounded by the dial timeout, and a late answer is dropped.
net::awaitable<std::optional<std::vector<tcp::endpoint>>> EtcdClient::resolveWithin(
    const config::EtcdEndpoint& endpoint, beast::error_code& ec) {
    beast::error_code notLiteral;
    const auto literal = net::ip::make_address(endpoint.host, notLiteral);
    if (!notLiteral) co_return std::vector<tcp::endpoint>{tcp::endpoint(literal, endpoint.port)};
    struct Resolving {
        std::mutex mutex;
        bool done = false;
        int error = 0;
        std::vector<tcp::endpoint> found;
    };
    auto state = std::make_shared<Resolving>();
    // At most one lookup per call, ended by resolv.conf's timeouts: a DNS server
    // that never answers leaves a few of these waiting, not an unbounded number
    // (calls to an endpoint are spaced by the store's reconnect backoff).
    try {
        std::thread([state, host = endpoint.host, port = endpoint.port] {
            addrinfo hints{};
            hints.ai_socktype = SOCK_STREAM;
            addrinfo* list = nullptr;
            const int error = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
            std::vector<tcp::endpoint> found;
            for (addrinfo* a = list; error == 0 && a; a = a->ai_next) {
                if (a->ai_family == AF_INET) {
                    net::ip::address_v4::bytes_type bytes;
                    std::memcpy(bytes.data(), &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, bytes.size());
                    found.emplace_back(net::ip::address_v4(bytes), port);
                } else if (a->ai_family == AF_INET6) {
                    net::ip::address_v6::bytes_type bytes;
                    std::memcpy(bytes.data(), reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr.s6_addr, bytes.size());
                    found.emplace_back(net::ip::address_v6(bytes), port);
                }
            }
            if (list) ::freeaddrinfo(list);
            const std::lock_guard lock(state->mutex);
            state->error = error;
            state->found = std::move(found);
            state->done = true;
        }).detach();
    } catch (const std::system_error&) {   // no thread to be had (a task limit): as if not found
        ec = net::error::host_not_found;
        co_return std::vector<tcp::endpoint>{};
    }
    // Polled: no handler of that thread may outlive this client's io_context.
    net::steady_timer tick(context_);
    for (auto waited = std::chrono::milliseconds(0); waited < dialTimeout_; waited += kResolvePoll) {
        tick.expires_after(kResolvePoll);
        co_await tick.async_wait(net::use_awaitable);
        const std::lock_guard lock(state->mutex);
        if (!state->done) continue;
        if (state->error != 0 || state->found.empty()) ec = net::error::host_not_found;
        co_return std::move(state->found);
    }
    co_return std::nullopt;
}

net::awaitable<CallResult> EtcdClient::once(const config::EtcdEndpoint& endpoint, const std::string& path,
                                            const std::string& body, std::chrono::milliseconds timeout,
                                            const std::function<bool(std::string_view)>* onLine) {
    CallResult result;
    beast::error_code ec;
    beast::tcp_stream tcp(context_);
    tcp.expires_after(dialTimeout_);
    const auto found = co_await resolveWithin(endpoint, ec);
    if (!found) {
        result.body = fmt::format("{}: no address for {} within {} ms", hostHeader(endpoint), endpoint.host,
                                  dialTimeout_.count());
        co_return result;
    }
    if (!ec) co_await tcp.async_connect(*found, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
        result.body = fmt::format("{}: {}", hostHeader(endpoint), ec.message());
        co_return result;
    }
    if (!endpoint.tls || !tls_) co_return co_await exchange(tcp, endpoint, path, body, timeout, onLine);
    beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp), *tls_);
    // SNI, and the certificate must name the host as written in fleet.etcd.
    SSL_set_tlsext_host_name(stream.native_handle(), endpoint.host.c_str());
    stream.set_verify_callback(net::ssl::host_name_verification(endpoint.host));
    co_await stream.async_handshake(net::ssl::stream_base::client, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
        // Not reached: the next endpoint may do better, and nothing was said to this one.
        std::string why = ec.message();
        if (const long verify = SSL_get_verify_result(stream.native_handle()); verify != X509_V_OK)
            why += fmt::format(" ({})", X509_verify_cert_error_string(verify));
        result.body = fmt::format("{}: TLS handshake failed: {}", hostHeader(endpoint), why);
        co_return result;
    }
    co_return co_await exchange(stream, endpoint, path, body, timeout, onLine);
}

template <class Stream>
net::awaitable<CallResult> EtcdClient::exchange(Stream& stream, const config::EtcdEndpoint& endpoint,
                                                const std::string& path, const std::string& body,
                                                std::chrono::milliseconds timeout,
                                                const std::function<bool(std::string_view)>* onLine) {
    CallResult result;
    beast::error_code ec;
    result.reached = true;
    http::request<http::string_body> request{http::verb::post, path, 11};
    request.set(http::field::host, hostHeader(endpoint));
    request.set(http::field::content_type, "application/json");
    // Fail at once on a member without a leader instead of waiting out etcd's 7 s,
    // and end a watch on such a member (else it stays open and silent).
    request.set("Grpc-Metadata-hasleader", "true");
    // The bare token, no "Bearer" (etcd refuses that).
    if (!token_.empty() && path != "/v3/auth/authenticate") request.set(http::field::authorization, token_);
    if (timeout.count() > 0) request.set("Grpc-Timeout", fmt::format("{}m", timeout.count()));
    request.body() = body;
    request.prepare_payload();
    if (timeout.count() > 0) beast::get_lowest_layer(stream).expires_after(timeout + std::chrono::milliseconds(200));
    else beast::get_lowest_layer(stream).expires_never();
    co_await http::async_write(stream, request, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
        result.body = fmt::format("{}: {}", hostHeader(endpoint), ec.message());
        co_return result;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    // A watch body grows for as long as it runs; one answer or one stream message stays bounded.
    constexpr std::size_t kMaxMessage = 64u << 20;
    if (onLine) parser.body_limit(boost::none);
    else parser.body_limit(kMaxMessage);
    if (!onLine) {
        co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            result.body = fmt::format("{}: {}", hostHeader(endpoint), ec.message());
            co_return result;
        }
        result.status = parser.get().result_int();
        result.ok = result.status == 200;
        result.body = std::move(parser.get().body());
        co_return result;
    }
    // A stream: one JSON object a line, split on '\n' (not on chunk
    // boundaries); the last message may come without its newline.
    std::string pending;
    bool keepGoing = true;
    auto onChunk = [&](std::uint64_t, std::string_view data, beast::error_code& chunkError) -> std::size_t {
        if (pending.size() + data.size() > kMaxMessage) {   // no newline in 64 MiB: not etcd
            chunkError = http::error::body_limit;
            return 0;
        }
        pending.append(data);
        std::size_t start = 0;
        for (std::size_t nl; keepGoing && (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
            if (nl > start) keepGoing = (*onLine)(std::string_view(pending).substr(start, nl - start));
        pending.erase(0, start);
        return data.size();
    };
    parser.on_chunk_body(onChunk);
    co_await http::async_read_header(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (!ec) {
        result.status = parser.get().result_int();
        while (!ec && keepGoing && !parser.is_done()) {
            // etcd sends a progress message at least every 10 minutes (progress_notify): a
            // stream silent for longer is a dead connection nobody closed (a half-open TCP).
            beast::get_lowest_layer(stream).expires_after(kStreamSilence);
            co_await http::async_read_some(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
            parser.get().body().clear();
        }
    }
    if (keepGoing && !pending.empty()) keepGoing = (*onLine)(pending);
    result.ok = !ec;
    result.body = ec ? fmt::format("{}: {}", hostHeader(endpoint), ec.message()) : std::string("stream ended");
    co_return result;
}

} // namespace switchyard::fleet
