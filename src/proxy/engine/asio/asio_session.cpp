#include "switchyard/proxy/engine/asio/asio_session.h"

#include <array>
#include <cstring>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <netinet/tcp.h>

#include "switchyard/proxy/engine/asio/asio_worker.h"
#include "switchyard/proxy/reset_relay.h"
#include "switchyard/telemetry/access_log.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::proxy::asio_engine {
namespace {

using boost::system::error_code;
using namespace boost::asio::experimental::awaitable_operators;

tcp::endpoint toAsioEndpoint(const routing::BackendState& backend) {
    tcp::endpoint ep;
    std::memcpy(ep.data(), &backend.sockaddr, backend.sockaddrLen);
    ep.resize(backend.sockaddrLen);
    return ep;
}

} // namespace

AsioSession::AsioSession(AsioWorker& worker, tcp::socket client, uint64_t id, std::size_t serviceIndex)
    : worker_(worker), client_(std::move(client)), upstream_(worker.context()), id_(id),
      serviceIndex_(serviceIndex) {}

void AsioSession::sideFailed(bool clientSide) {
    reason_.noteReset(clientSide);
    resetOnClose((clientSide ? upstream_ : client_).native_handle());
    closeSockets();
}

void AsioSession::close(CloseReason reason) {
    reason_.note(reason);
    closeSockets();
}

void AsioSession::closeSockets() {
    error_code ignored;
    client_.close(ignored);
    upstream_.close(ignored);
}

net::awaitable<void> AsioSession::run() {
    static const auto log = telemetry::logger("proxy");
    // The snapshot is held only while routing; afterwards the session keeps its
    // backend handle alone, so long-lived connections pin no snapshot.
    routing::SnapshotPtr snapshot = worker_.snapshot();
    if (!snapshot || serviceIndex_ >= snapshot->services.size()) {
        close(CloseReason::NoBackend);
        co_return;
    }
    const routing::ServiceRoute& service = snapshot->services[serviceIndex_];
    serviceState_ = service.state;
    const std::string serviceName = service.name;
    if (telemetry::accessLogEnabled()) {
        access_.emplace();
        startAccessInfo(*access_, client_.native_handle());
    }
    // Whichever way the session ends: the service's count, then the access log.
    struct Release {
        AsioSession& s;
        const std::string& service;
        ~Release() {
            releaseConnection(*s.serviceState_);
            s.logAccess(service);
        }
    } release{*this, serviceName};
    if (!admitConnection(service)) {
        close(CloseReason::ConnectionLimit);
        co_return;
    }

    error_code ec;
    client_.set_option(tcp::no_delay(true), ec);
    const auto idleTimeout = service.idleTimeout;
    idleTimeout_ = service.idleTimeout;
    halfClosedTimeout_ = service.halfClosedTimeout;
    addresses_ = clientAddressesOf(client_.native_handle(), service);
    if (service.acceptProxy && !co_await acceptProxyHeader(service)) {
        closeSockets();
        co_return;
    }
    if (!co_await connectBackend(service)) {
        countClosedWithoutBackend(*serviceState_, reason_.reason());
        log->debug("conn {}: service {}: {}", id_, service.name, toString(reason_.reason()));
        closeSockets();
        co_return;
    }
    const config::ProxyProtocol proxyProtocol = service.proxyProtocol;
    snapshot.reset();

    backend_->active.fetch_add(1, std::memory_order_relaxed);
    worker_.sessionConnected(*this);
    client_.non_blocking(true, ec);
    upstream_.non_blocking(true, ec);
    lastActivity_ = std::chrono::steady_clock::now();
    connectedAt_ = lastActivity_;
    // The PROXY header goes first, before any client byte (and with the bytes
    // that came in with an accepted header); a backend that fails it skips the relay.
    if (co_await sendPreamble(proxyProtocol))
        co_await ((pump(Direction::ClientToBackend) && pump(Direction::BackendToClient)) || watchIdle(idleTimeout));

    bytes_.flush(*backend_, worker_.index());
    countSessionEnd(*backend_, worker_.index(), reason_.reason(), firstBytes_.sawBackendByte(), worker_.snapshot(),
                    serviceIndex_, connectedAt_);
    log->debug("conn {}: {} closed ({}), {} bytes in, {} bytes out", id_, backend_->key, toString(reason_.reason()),
               bytes_.total(0), bytes_.total(1));
    closeSockets();
}

void AsioSession::logAccess(std::string_view service) const {
    if (!access_) return;
    logSessionAccess(*access_, service, backend_.get(), connectedAt_, bytes_.total(0), bytes_.total(1),
                     reason_.reason(), firstBytes_);
}

net::awaitable<AsioSession::HeaderRead> AsioSession::readProxyHeader(ProxyHeaderDecoder& decoder) {
    std::array<uint8_t, 1024> buffer;
    bool any = false;
    for (;;) {
        error_code ec;
        const std::size_t n =
            co_await client_.async_read_some(net::buffer(buffer), net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return !any && ec == net::error::eof ? HeaderRead::ClientGone : HeaderRead::Failed;
        any = true;
        switch (decoder.feed({buffer.data(), n})) {
        case ProxyHeaderDecoder::Status::NeedMore: continue;
        case ProxyHeaderDecoder::Status::Error: co_return HeaderRead::Failed;
        case ProxyHeaderDecoder::Status::Done:
            // What came after the header is the client's: it goes to the backend first.
            earlyClientBytes_.assign(buffer.begin() + static_cast<std::ptrdiff_t>(decoder.consumed()),
                                     buffer.begin() + static_cast<std::ptrdiff_t>(n));
            co_return HeaderRead::Ok;
        }
    }
}

net::awaitable<bool> AsioSession::acceptProxyHeader(const routing::ServiceRoute& service) {
    static const auto log = telemetry::logger("proxy");
    ProxyHeaderDecoder decoder;
    net::steady_timer timer(worker_.context());
    timer.expires_after(service.acceptProxyTimeout);
    error_code timerEc;   // cancelled when the header came first: an error code, not an exception
    const auto result =
        co_await (readProxyHeader(decoder) || timer.async_wait(net::redirect_error(net::use_awaitable, timerEc)));
    if (reason_.known()) co_return false;   // closed from outside (shutdown) meanwhile
    const bool timedOut = result.index() == 1;
    const HeaderRead read = timedOut ? HeaderRead::Failed : std::get<0>(result);
    if (read == HeaderRead::Ok) {
        // Affinity, hash balancing and the header toward backends follow the
        // client the balancer in front saw (LOCAL and UNKNOWN keep our own).
        adoptProxyHeader(decoder.header(), addresses_, access_ ? &*access_ : nullptr);
        co_return true;
    }
    // A client that connects and leaves without a byte (a TCP health check of
    // the balancer in front) is not a protocol error.
    reason_.note(read == HeaderRead::ClientGone ? CloseReason::ClientClose : CloseReason::ClientReset);
    countClosedWithoutBackend(*serviceState_, reason_.reason());
    if (read == HeaderRead::ClientGone) co_return false;
    countProxyHeaderFailure(*serviceState_, timedOut);
    log->debug("conn {}: service {}: closing: PROXY header {}", id_, service.name,
               timedOut ? "not complete within " + config::formatDuration(service.acceptProxyTimeout)
                        : decoder.error().empty() ? std::string("cut short") : decoder.error());
    co_return false;
}

net::awaitable<bool> AsioSession::sendPreamble(config::ProxyProtocol version) {
    if (!earlyClientBytes_.empty()) {
        bytes_.add(0, earlyClientBytes_.size());
        firstBytes_.clientByte(std::chrono::steady_clock::now());
    }
    const std::string preamble = buildPreamble(version, addresses_.proxy, earlyClientBytes_);
    earlyClientBytes_ = {};
    if (preamble.empty()) co_return true;
    error_code ec;
    co_await net::async_write(upstream_, net::buffer(preamble), net::redirect_error(net::use_awaitable, ec));
    if (!ec) co_return true;
    sideFailed(false);
    co_return false;
}

net::awaitable<bool> AsioSession::connectBackend(const routing::ServiceRoute& service) {
    routing::Attempts attempts;
    attempts.clientHash = addresses_.hash;   // the socket's peer, or the PROXY header's source
    for (uint32_t attempt = 0; attempt <= service.retries; ++attempt) {
        const routing::Pick pick = worker_.selector().next(service, attempts);
        if (!pick.backend) {
            reason_.note(attempt == 0 ? CloseReason::NoBackend : CloseReason::ConnectFailed);
            co_return false;
        }
        const routing::BackendHandle& handle = pick.backend->handle;
        if (attempt > 0) countRetry(*handle, worker_.index(), access_ ? &*access_ : nullptr);
        const auto started = std::chrono::steady_clock::now();
        const error_code ec = co_await connectOnce(*handle, service.connectTimeout);
        if (!ec) {
            countConnectOk(*handle, worker_.index(), std::chrono::steady_clock::now() - started);
            backend_ = handle;
            co_return true;
        }
        countConnectFailure(service, *handle, worker_.index(), ec.value());
    }
    reason_.note(CloseReason::ConnectFailed);
    co_return false;
}

net::awaitable<error_code> AsioSession::connectOnce(routing::BackendState& backend,
                                                     std::chrono::milliseconds timeout) {
    error_code ec;
    countConnectAttempt(backend, worker_.index());
    const tcp::endpoint endpoint = toAsioEndpoint(backend);
    upstream_.close(ec);
    upstream_.open(endpoint.protocol(), ec);
    if (ec) co_return ec;
    upstream_.set_option(tcp::no_delay(true), ec);
    net::steady_timer timer(worker_.context());
    timer.expires_after(timeout);
    // The timer's cancellation (the usual case: connect won) comes back as an
    // error code, not as an exception thrown and caught per connection.
    error_code timerEc;
    auto result = co_await (upstream_.async_connect(endpoint, net::redirect_error(net::use_awaitable, ec)) ||
                            timer.async_wait(net::redirect_error(net::use_awaitable, timerEc)));
    if (result.index() == 1) {
        upstream_.close(ec);
        co_return net::error::timed_out;
    }
    if (ec) upstream_.close();
    co_return ec;
}

void AsioSession::finishDirection(Direction direction, const error_code& ec) {
    const auto d = static_cast<std::size_t>(direction);
    if (done_[d]) return;
    done_[d] = true;
    const bool fromClient = direction == Direction::ClientToBackend;
    tcp::socket& to = fromClient ? upstream_ : client_;
    error_code ignored;
    if (!ec || ec == net::error::eof) {
        // Half-close: pass the EOF on and keep the other direction open, for
        // at most timeouts.half_closed without traffic.
        reason_.note(fromClient ? CloseReason::ClientClose : CloseReason::BackendClose);
        to.shutdown(tcp::socket::shutdown_send, ignored);
        lastActivity_ = std::chrono::steady_clock::now();
        if (idleTimer_ && !(done_[0] && done_[1]) && halfClosedTimeout_ < idleTimeout_) {
            idleRearm_ = true;
            idleTimer_->cancel();
        }
        return;
    }
    if (ec != net::error::operation_aborted && ec != net::error::bad_descriptor) {
        sideFailed(fromClient);
        return;
    }
    // An error on one side ends both: closing cancels the other direction.
    closeSockets();
}

net::awaitable<void> AsioSession::pump(Direction direction) {
    // Two whole buffers in a row: a bulk flow, relayed by splice from then on.
    constexpr int kBulkReads = 2;
    const bool fromClient = direction == Direction::ClientToBackend;
    tcp::socket& from = fromClient ? client_ : upstream_;
    tcp::socket& to = fromClient ? upstream_ : client_;
    error_code ec;
    int fullReads = 0;
    for (;;) {
        // Read first, wait only on EAGAIN: a busy stream skips the reactor and
        // an idle one holds no buffer.
        BufferPool::Lease buffer = worker_.buffers().acquire();
        const std::size_t n = from.read_some(net::buffer(buffer.data(), buffer.size()), ec);
        if (ec == net::error::would_block || ec == net::error::try_again) {
            buffer.release();
            co_await from.async_wait(tcp::socket::wait_read, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            continue;
        }
        if (ec) break;
        const auto now = std::chrono::steady_clock::now();
        lastActivity_ = now;
        if (!firstBytes_.sawBackendByte()) {
            if (fromClient)
                firstBytes_.clientByte(now);
            else
                firstBytes_.backendByte(*backend_, worker_.index(), connectedAt_, now);
        }
        bytes_.add(static_cast<int>(direction), n);
        // Counters are published in batches, not per read.
        if (bytes_.wantsFlush()) bytes_.flush(*backend_, worker_.index());
        fullReads = n == buffer.size() ? std::min(fullReads + 1, kBulkReads) : 0;
        // Write first too: the socket usually takes it all, and the async path
        // (reactor, completion handler, coroutine resume) is only for the rest.
        std::size_t written = to.write_some(net::buffer(buffer.data(), n), ec);
        if (ec == net::error::would_block || ec == net::error::try_again) {
            written = 0;
            ec = {};
        }
        if (!ec && written < n)
            co_await net::async_write(to, net::buffer(buffer.data() + written, n - written),
                                      net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            // The receiving side failed: that side is the one that reset.
            if (ec != net::error::operation_aborted && ec != net::error::bad_descriptor) sideFailed(!fromClient);
            ec = net::error::operation_aborted;
            break;
        }
        if (fullReads >= kBulkReads && worker_.pipes()) {
            buffer.release();
            std::optional<SplicePipe> pipe = worker_.pipes()->acquire(worker_.openSessions());
            fullReads = 0;   // without a pipe, ask again after the next two whole buffers
            if (pipe) {
                const bool backToBuffers = co_await splicePump(direction, std::move(*pipe), ec);
                if (!backToBuffers) break;
            }
        }
    }
    finishDirection(direction, ec);
}

net::awaitable<bool> AsioSession::splicePump(Direction direction, SplicePipe pipe, error_code& ec) {
    const bool fromClient = direction == Direction::ClientToBackend;
    tcp::socket& from = fromClient ? client_ : upstream_;
    tcp::socket& to = fromClient ? upstream_ : client_;
    const auto failed = [](const SpliceResult& r) { return error_code(r.error, boost::system::system_category()); };
    for (;;) {
        while (pipe.bytes() > 0) {
            const SpliceResult out = pipe.drain(to.native_handle());
            if (out.kind == SpliceResult::Kind::Failed) {
                sideFailed(!fromClient);   // the receiving side failed
                ec = net::error::operation_aborted;
                break;
            }
            // Bytes moving toward a slow reader are activity too (buffer mode sees them per read).
            if (out.bytes > 0) lastActivity_ = std::chrono::steady_clock::now();
            if (pipe.bytes() == 0) break;
            co_await to.async_wait(tcp::socket::wait_write, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
        }
        if (ec) break;
        const SpliceResult in = pipe.fill(from.native_handle());
        if (in.kind == SpliceResult::Kind::WouldBlock) {
            co_await from.async_wait(tcp::socket::wait_read, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            continue;
        }
        if (in.kind == SpliceResult::Kind::EndOfStream) {
            ec = net::error::eof;
            break;
        }
        if (in.kind == SpliceResult::Kind::NotSpliceable) {   // the pipe is empty here
            if (SplicePipePool* pool = worker_.pipes()) pool->release(std::move(pipe));
            co_return true;
        }
        if (in.kind == SpliceResult::Kind::Failed) {
            ec = failed(in);
            break;
        }
        lastActivity_ = std::chrono::steady_clock::now();
        bytes_.add(static_cast<int>(direction), in.bytes);
        if (bytes_.wantsFlush()) bytes_.flush(*backend_, worker_.index());
    }
    if (SplicePipePool* pool = worker_.pipes()) pool->release(std::move(pipe));
    co_return false;
}

net::awaitable<void> AsioSession::watchIdle(std::chrono::milliseconds idle) {
    net::steady_timer timer(worker_.context());
    idleTimer_ = &timer;
    struct Forget {
        AsioSession& s;
        ~Forget() { s.idleTimer_ = nullptr; }
    } forget{*this};
    for (;;) {
        const auto limit = done_[0] || done_[1] ? std::min(idle, halfClosedTimeout_) : idle;
        timer.expires_at(lastActivity_ + limit);
        error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            // A half-close asked for an earlier deadline; anything else: the relay ended first.
            const auto state = co_await net::this_coro::cancellation_state;
            if (idleRearm_ && state.cancelled() == net::cancellation_type::none) {
                idleRearm_ = false;
                continue;
            }
            co_return;
        }
        if (std::chrono::steady_clock::now() >= lastActivity_ + limit) {
            reason_.note(CloseReason::IdleTimeout);
            co_return;
        }
    }
}

} // namespace switchyard::proxy::asio_engine
