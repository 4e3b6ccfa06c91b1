#pragma once

// A client of etcd's v3 JSON gateway over HTTP/1.1 (Boost.Beast), for
// coroutines on one io_context: the fleet thread's, never a worker's or the
// control thread's. One connection per call (loopback or LAN: about a
// millisecond), the endpoints tried in turn from the last one that answered.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include "switchyard/config/config.h"

namespace switchyard::fleet {

struct CallResult {
    bool ok = false;             // 200 with a body
    bool reached = false;        // an endpoint answered at all (false: none reachable)
    unsigned status = 0;
    std::string body;            // the answer, or why there is none
};

class EtcdClient {
public:
    EtcdClient(boost::asio::io_context& context, std::vector<config::EtcdEndpoint> endpoints,
               std::chrono::milliseconds dialTimeout);

    // POST `body` to `path` (/v3/kv/txn ...), the whole call within `timeout`.
    boost::asio::awaitable<CallResult> call(std::string path, std::string body, std::chrono::milliseconds timeout);

    // POST a streaming request (/v3/watch) and hand every newline-delimited
    // message to `onLine` until the stream ends, fails or onLine returns false.
    // The answer says why it ended.
    boost::asio::awaitable<CallResult> stream(std::string path, std::string body,
                                              std::function<bool(std::string_view)> onLine);

    // etcd authentication: every call then carries a token, fetched at the
    // first call and again when etcd refuses it (simple tokens expire unused).
    void setCredentials(std::string user, std::string password);
    // The TLS context (etcd_tls.h) for https:// endpoints.
    void setTls(std::shared_ptr<boost::asio::ssl::context> tls) { tls_ = std::move(tls); }

private:
    boost::asio::awaitable<CallResult> rotate(const std::string& path, const std::string& body,
                                              std::chrono::milliseconds timeout);
    // Fetches a token; the failure, if any (it never quotes the password).
    boost::asio::awaitable<std::optional<CallResult>> authenticate(std::chrono::milliseconds timeout);
    // The endpoint's addresses, or nullopt when no answer came within the dial timeout.
    boost::asio::awaitable<std::optional<std::vector<boost::asio::ip::tcp::endpoint>>> resolveWithin(
        const config::EtcdEndpoint& endpoint, boost::system::error_code& ec);
    boost::asio::awaitable<CallResult> once(const config::EtcdEndpoint& endpoint, const std::string& path,
                                            const std::string& body, std::chrono::milliseconds timeout,
                                            const std::function<bool(std::string_view)>* onLine);
    // One request and its answer on a connected (and, for TLS, handshaken) stream.
    template <class Stream>
    boost::asio::awaitable<CallResult> exchange(Stream& stream, const config::EtcdEndpoint& endpoint,
                                                const std::string& path, const std::string& body,
                                                std::chrono::milliseconds timeout,
                                                const std::function<bool(std::string_view)>* onLine);

    boost::asio::io_context& context_;
    std::vector<config::EtcdEndpoint> endpoints_;
    std::chrono::milliseconds dialTimeout_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    std::size_t current_ = 0;
    std::string user_;
    std::string password_;
    std::string token_;   // never logged
};

} // namespace switchyard::fleet
