#include "switchyard/proxy/engine/asio/asio_session.h"

#include <array>
#include <cstring>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <netinet/tcp.h>

#include "switchyard/health/outlier_trip.h"
#include "switchyard/proxy/engine/asio/asio_worker.h"
#include "switchyard/proxy/local_error.h"
#include "switchyard/proxy/proxy_protocol.h"
#include "switchyard/routing/consistent_hash.h"
#include "switchyard/telemetry/access_log.h"
#include "switchyard/telemetry/logging.h"
#include "switchyard/telemetry/traffic_counters.h"

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

bool isReset(const error_code& ec) {
    return ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == net::error::connection_aborted;
}

} // namespace

AsioSession::AsioSession(AsioWorker& worker, tcp::socket client, uint64_t id, std::size_t serviceIndex)
    : worker_(worker), client_(std::move(client)), upstream_(worker.context()), id_(id),
      serviceIndex_(serviceIndex) {}

void AsioSession::noteReason(CloseReason reason) {
    if (!haveReason_) {
        haveReason_ = true;
        reason_ = reason;
    }
}

void AsioSession::close(CloseReason reason) {
    noteReason(reason);
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
    const int64_t active = serviceState_->active.fetch_add(1, std::memory_order_relaxed) + 1;
    serviceState_->accepted.fetch_add(1, std::memory_order_relaxed);
    struct ActiveGuard {
        routing::ServiceState& state;
        ~ActiveGuard() { state.active.fetch_sub(1, std::memory_order_relaxed); }
    } activeGuard{*serviceState_};
    // Access log (telemetry/access_log.h, off by default): one record as the session ends, whichever way.
    struct AccessLogHook {
        AsioSession& s;
        const std::string& service;   // the snapshot's: valid until a backend is reached, then backend_ names it
        const bool on = telemetry::accessLogEnabled();
        const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
        tcp::endpoint client;
        AccessLogHook(AsioSession& session, const std::string& name) : s(session), service(name) {
            error_code ignored;
            if (on) client = s.client_.remote_endpoint(ignored);
        }
        ~AccessLogHook() {
            if (!on) return;
            using std::chrono::duration_cast;
            using std::chrono::microseconds;
            const routing::BackendState* b = s.backend_.get();
            telemetry::AccessRecord r;
            r.client = client.data();
            r.clientLen = static_cast<socklen_t>(client.size());
            r.service = b ? std::string_view(b->service) : std::string_view(service);
            if (b) {
                r.pool = config::toString(b->colour);
                r.backend = b->key;
                r.connect = duration_cast<microseconds>(s.connectedAt_ - start);
            }
            r.bytesIn = s.totalBytes_[0] + s.bytes_[0];
            r.bytesOut = s.totalBytes_[1] + s.bytes_[1];
            r.duration = duration_cast<microseconds>(std::chrono::steady_clock::now() - start);
            r.reason = toString(s.reason_);
            telemetry::logAccess(r);
        }
    } accessLogHook{*this, service.name};
    if (active > static_cast<int64_t>(service.maxConnections)) {
        serviceState_->refusedAtLimit.fetch_add(1, std::memory_order_relaxed);
        serviceState_->closedWithoutBackend[static_cast<std::size_t>(CloseReason::ConnectionLimit)].fetch_add(
            1, std::memory_order_relaxed);
        close(CloseReason::ConnectionLimit);
        co_return;
    }

    error_code ec;
    client_.set_option(tcp::no_delay(true), ec);
    const auto idleTimeout = service.idleTimeout;
    learnAddresses(service.proxyProtocol != config::ProxyProtocol::None);
    if (service.acceptProxy && !co_await acceptProxyHeader(service)) {
        close(reason_);
        co_return;
    }
    if (!co_await connectBackend(service)) {
        serviceState_->closedWithoutBackend[static_cast<std::size_t>(reason_)].fetch_add(1, std::memory_order_relaxed);
        log->debug("conn {}: service {}: {}", id_, service.name, toString(reason_));
        close(reason_);
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

    backend_->active.fetch_sub(1, std::memory_order_relaxed);
    if (bytes_[1] == 0 && (reason_ == CloseReason::BackendClose || reason_ == CloseReason::BackendReset)) {
        // Closed or reset before its first byte: an error for rollout gates and outlier detection.
        backend_->traffic.slot(worker_.index()).earlyCloses.add();
        backend_->pool->traffic.slot(worker_.index()).earlyCloses.add();
        const uint32_t run = backend_->consecutiveFailures.fetch_add(1, std::memory_order_relaxed) + 1;
        // The routing snapshot was let go after connect; a failure run long enough
        // to matter is rare, so loading the current one here costs nothing.
        if (auto current = worker_.snapshot(); current && serviceIndex_ < current->services.size())
            health::noteBackendFailure(current->services[serviceIndex_], *backend_, run);
    }
    flushBytes();
    backend_->traffic.slot(worker_.index()).closed[static_cast<std::size_t>(reason_)].add();
    log->debug("conn {}: {} closed ({}), {} bytes in, {} bytes out", id_, backend_->key, toString(reason_),
               totalBytes_[0], totalBytes_[1]);
    close(reason_);
}

void AsioSession::flushBytes() {
    telemetry::TrafficSlot& b = backend_->traffic.slot(worker_.index());
    telemetry::TrafficSlot& p = backend_->pool->traffic.slot(worker_.index());
    b.bytesIn.add(bytes_[0]);
    p.bytesIn.add(bytes_[0]);
    b.bytesOut.add(bytes_[1]);
    p.bytesOut.add(bytes_[1]);
    totalBytes_[0] += bytes_[0];
    totalBytes_[1] += bytes_[1];
    bytes_[0] = bytes_[1] = 0;
    unflushedReads_ = 0;
}

void AsioSession::noteFirstBytes(Direction direction, std::chrono::steady_clock::time_point now) {
    if (direction == Direction::ClientToBackend) {
        if (firstClientByteAt_ == std::chrono::steady_clock::time_point{}) firstClientByteAt_ = now;
        return;
    }
    if (sawBackendByte_) return;
    sawBackendByte_ = true;
    // Time to first byte: from the first client byte, or from connect for
    // protocols where the server speaks first.
    const auto from = firstClientByteAt_ != std::chrono::steady_clock::time_point{} ? firstClientByteAt_ : connectedAt_;
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now - from).count();
    backend_->pool->latency(worker_.index()).ttfb.record(static_cast<uint64_t>(micros < 0 ? 0 : micros));
    if (backend_->consecutiveFailures.load(std::memory_order_relaxed) != 0)
        backend_->consecutiveFailures.store(0, std::memory_order_relaxed);
}

void AsioSession::learnAddresses(bool needLocal) {
    error_code ec;
    const tcp::endpoint peer = client_.remote_endpoint(ec);
    if (ec) return;   // a client already gone hashes as 0 and gets "PROXY UNKNOWN"
    clientHash_ = routing::hashClientAddress(peer.data(), static_cast<socklen_t>(peer.size()));
    if (!needLocal) return;
    const tcp::endpoint local = client_.local_endpoint(ec);
    if (ec) return;
    auto source = ProxyEndpoint::fromSockaddr(peer.data(), static_cast<socklen_t>(peer.size()));
    auto destination = ProxyEndpoint::fromSockaddr(local.data(), static_cast<socklen_t>(local.size()));
    if (source && destination) addresses_ = ProxyAddresses{*source, *destination};
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
    const auto result = co_await (readProxyHeader(decoder) || timer.async_wait(net::use_awaitable));
    if (haveReason_) co_return false;   // closed from outside (shutdown) meanwhile
    const bool timedOut = result.index() == 1;
    const HeaderRead read = timedOut ? HeaderRead::Failed : std::get<0>(result);
    if (read == HeaderRead::Ok) {
        if (const auto& a = decoder.header().addresses) {
            // Affinity, hash balancing and the header toward backends follow
            // the client the balancer in front saw. LOCAL and UNKNOWN keep the
            // connection's own addresses, as the spec says.
            addresses_ = *a;
            sockaddr_storage source{};
            const socklen_t len = a->source.toSockaddr(source);
            clientHash_ = routing::hashClientAddress(reinterpret_cast<const sockaddr*>(&source), len);
        }
        co_return true;
    }
    // A client that connects and leaves without a byte (a TCP health check of
    // the balancer in front) is not a protocol error.
    noteReason(read == HeaderRead::ClientGone ? CloseReason::ClientClose : CloseReason::ClientReset);
    serviceState_->closedWithoutBackend[static_cast<std::size_t>(reason_)].fetch_add(1, std::memory_order_relaxed);
    if (read == HeaderRead::ClientGone) co_return false;
    serviceState_->proxyHeaderErrors.fetch_add(1, std::memory_order_relaxed);
    if (timedOut) serviceState_->proxyHeaderTimeouts.fetch_add(1, std::memory_order_relaxed);
    log->debug("conn {}: service {}: closing: PROXY header {}", id_, service.name,
               timedOut ? "not complete within " + config::formatDuration(service.acceptProxyTimeout)
                        : decoder.error().empty() ? std::string("cut short") : decoder.error());
    co_return false;
}

net::awaitable<bool> AsioSession::sendPreamble(config::ProxyProtocol version) {
    std::string preamble = encodeProxyHeader(version, addresses_);
    if (!earlyClientBytes_.empty()) {
        preamble.append(earlyClientBytes_.begin(), earlyClientBytes_.end());
        bytes_[static_cast<std::size_t>(Direction::ClientToBackend)] += earlyClientBytes_.size();
        noteFirstBytes(Direction::ClientToBackend, std::chrono::steady_clock::now());
        earlyClientBytes_ = {};
    }
    if (preamble.empty()) co_return true;
    error_code ec;
    co_await net::async_write(upstream_, net::buffer(preamble), net::redirect_error(net::use_awaitable, ec));
    if (!ec) co_return true;
    noteReason(CloseReason::BackendReset);
    co_return false;
}

net::awaitable<bool> AsioSession::connectBackend(const routing::ServiceRoute& service) {
    routing::Attempts attempts;
    attempts.clientHash = clientHash_;   // learnAddresses(), or the PROXY header's source
    for (uint32_t attempt = 0; attempt <= service.retries; ++attempt) {
        const routing::Pick pick = worker_.selector().next(service, attempts);
        if (!pick.backend) {
            noteReason(attempt == 0 ? CloseReason::NoBackend : CloseReason::ConnectFailed);
            co_return false;
        }
        const routing::BackendHandle& handle = pick.backend->handle;
        telemetry::TrafficSlot& counters = handle->traffic.slot(worker_.index());
        telemetry::TrafficSlot& poolCounters = handle->pool->traffic.slot(worker_.index());
        const auto started = std::chrono::steady_clock::now();
        const error_code ec = co_await connectOnce(*handle, service.connectTimeout);
        if (!ec) {
            const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::steady_clock::now() - started).count();
            handle->pool->latency(worker_.index()).connect.record(static_cast<uint64_t>(micros));
            counters.connections.add();
            poolCounters.connections.add();
            backend_ = handle;
            co_return true;
        }
        // A local shortage (no fds, no ports) says nothing about the backend.
        if (isLocalError(ec.value())) {
            counters.localErrors.add();
            poolCounters.localErrors.add();
        } else {
            counters.connectFailures.add();
            poolCounters.connectFailures.add();
            const uint32_t run = handle->consecutiveFailures.fetch_add(1, std::memory_order_relaxed) + 1;
            // Reaching the outlier threshold ejects it before this connection's retry picks.
            health::noteBackendFailure(service, *handle, run);
        }
    }
    noteReason(CloseReason::ConnectFailed);
    co_return false;
}

net::awaitable<error_code> AsioSession::connectOnce(routing::BackendState& backend,
                                                     std::chrono::milliseconds timeout) {
    error_code ec;
    backend.traffic.slot(worker_.index()).connectAttempts.add();
    backend.pool->traffic.slot(worker_.index()).connectAttempts.add();
    const tcp::endpoint endpoint = toAsioEndpoint(backend);
    upstream_.close(ec);
    upstream_.open(endpoint.protocol(), ec);
    if (ec) co_return ec;
    upstream_.set_option(tcp::no_delay(true), ec);
    net::steady_timer timer(worker_.context());
    timer.expires_after(timeout);
    auto result = co_await (upstream_.async_connect(endpoint, net::redirect_error(net::use_awaitable, ec)) ||
                            timer.async_wait(net::use_awaitable));
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
        // Half-close: pass the EOF on and keep the other direction open.
        noteReason(fromClient ? CloseReason::ClientClose : CloseReason::BackendClose);
        to.shutdown(tcp::socket::shutdown_send, ignored);
        return;
    }
    if (ec != net::error::operation_aborted && ec != net::error::bad_descriptor) {
        noteReason(fromClient ? CloseReason::ClientReset : CloseReason::BackendReset);
        if (!isReset(ec)) noteReason(fromClient ? CloseReason::ClientReset : CloseReason::BackendReset);
    }
    // An error on one side ends both: closing cancels the other direction.
    client_.close(ignored);
    upstream_.close(ignored);
}

net::awaitable<void> AsioSession::pump(Direction direction) {
    const bool fromClient = direction == Direction::ClientToBackend;
    tcp::socket& from = fromClient ? client_ : upstream_;
    tcp::socket& to = fromClient ? upstream_ : client_;
    error_code ec;
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
        if (!sawBackendByte_) noteFirstBytes(direction, now);
        bytes_[static_cast<std::size_t>(direction)] += n;
        // Counters are published in batches, not per read.
        if (++unflushedReads_ >= 64) flushBytes();
        co_await net::async_write(to, net::buffer(buffer.data(), n), net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            // The receiving side failed: that side is the one that reset.
            finishDirection(fromClient ? Direction::BackendToClient : Direction::ClientToBackend, ec);
            break;
        }
    }
    finishDirection(direction, ec);
}

net::awaitable<void> AsioSession::watchIdle(std::chrono::milliseconds idle) {
    net::steady_timer timer(worker_.context());
    for (;;) {
        timer.expires_at(lastActivity_ + idle);
        error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;   // the relay ended first
        if (std::chrono::steady_clock::now() >= lastActivity_ + idle) {
            noteReason(CloseReason::IdleTimeout);
            co_return;
        }
    }
}

} // namespace switchyard::proxy::asio_engine
