#include "switchyard/proxy/session_accounting.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>

#include "switchyard/routing/consistent_hash.h"
#include "switchyard/routing/outlier_trip.h"
#include "switchyard/telemetry/access_log.h"
#include "switchyard/telemetry/traffic_counters.h"
#include "switchyard/util/local_error.h"

namespace switchyard::proxy {

namespace {
// Every open session of every worker: one shared counter, touched once at
// admission and once at release (as the service's own count is).
std::atomic<int64_t> openSessions{0};
std::atomic<int64_t> sessionLimit{0};
} // namespace

void setSessionLimit(uint64_t sessions) {
    sessionLimit.store(static_cast<int64_t>(std::min<uint64_t>(sessions, INT64_MAX)), std::memory_order_relaxed);
}

bool admitConnection(const routing::ServiceRoute& service) {
    routing::ServiceState& state = *service.state;
    const int64_t active = state.active.fetch_add(1, std::memory_order_relaxed) + 1;
    const int64_t open = openSessions.fetch_add(1, std::memory_order_relaxed) + 1;
    state.accepted.fetch_add(1, std::memory_order_relaxed);
    const int64_t limit = sessionLimit.load(std::memory_order_relaxed);
    if (active <= static_cast<int64_t>(service.maxConnections) && (limit == 0 || open <= limit)) return true;
    state.refusedAtLimit.fetch_add(1, std::memory_order_relaxed);
    countClosedWithoutBackend(state, CloseReason::ConnectionLimit);
    return false;
}

void releaseConnection(routing::ServiceState& state) {
    state.active.fetch_sub(1, std::memory_order_relaxed);
    openSessions.fetch_sub(1, std::memory_order_relaxed);
}

void countClosedWithoutBackend(routing::ServiceState& state, CloseReason reason) {
    state.closedWithoutBackend[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

void countProxyHeaderFailure(routing::ServiceState& state, bool timedOut) {
    state.proxyHeaderErrors.fetch_add(1, std::memory_order_relaxed);
    if (timedOut) state.proxyHeaderTimeouts.fetch_add(1, std::memory_order_relaxed);
}

void countConnectAttempt(routing::BackendState& backend, unsigned worker) {
    backend.traffic.slot(worker).connectAttempts.add();
    backend.pool->traffic.slot(worker).connectAttempts.add();
}

void countRetry(routing::BackendState& backend, unsigned worker, AccessInfo* access) {
    backend.traffic.slot(worker).retries.add();
    backend.pool->traffic.slot(worker).retries.add();
    if (access) ++access->retries;
}

void startAccessInfo(AccessInfo& info, int clientFd) {
    info.start = std::chrono::steady_clock::now();
    info.accepted = std::chrono::system_clock::now();
    info.clientLen = sizeof info.client;
    if (::getpeername(clientFd, reinterpret_cast<sockaddr*>(&info.client), &info.clientLen) != 0) info.clientLen = 0;
    info.listenerLen = sizeof info.listener;
    if (::getsockname(clientFd, reinterpret_cast<sockaddr*>(&info.listener), &info.listenerLen) != 0)
        info.listenerLen = 0;
}

void countConnectOk(routing::BackendState& backend, unsigned worker, std::chrono::steady_clock::duration took) {
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
    backend.pool->latency(worker).connect.record(static_cast<uint64_t>(micros < 0 ? 0 : micros));
    backend.traffic.slot(worker).connections.add();
    backend.pool->traffic.slot(worker).connections.add();
}

void countConnectFailure(const routing::ServiceRoute& service, routing::BackendState& backend, unsigned worker,
                         int err) {
    telemetry::TrafficSlot& counters = backend.traffic.slot(worker);
    telemetry::TrafficSlot& poolCounters = backend.pool->traffic.slot(worker);
    // A local shortage (no fds, no ports) says nothing about the backend.
    if (util::isLocalError(err)) {
        counters.localErrors.add();
        poolCounters.localErrors.add();
        return;
    }
    counters.connectFailures.add();
    poolCounters.connectFailures.add();
    if (err == ETIMEDOUT) {
        counters.connectTimeouts.add();
        poolCounters.connectTimeouts.add();
    } else if (err == ECONNREFUSED) {
        counters.connectRefused.add();
        poolCounters.connectRefused.add();
    }
    const uint32_t run = backend.consecutiveFailures.fetch_add(1, std::memory_order_relaxed) + 1;
    routing::noteBackendFailure(service, backend, run);
}

ClientAddresses clientAddressesOf(int clientFd, const routing::ServiceRoute& service) {
    ClientAddresses out;
    const bool needLocal = service.proxyProtocol != config::ProxyProtocol::None;
    const bool needHash = service.balance == config::Balance::Hash || service.affinity == config::Affinity::Client;
    if (!needLocal && !needHash) return out;
    sockaddr_storage peer{};
    socklen_t peerLen = sizeof peer;
    if (::getpeername(clientFd, reinterpret_cast<sockaddr*>(&peer), &peerLen) != 0)
        return out;   // a client already gone hashes as 0 and gets "PROXY UNKNOWN"
    out.hash = routing::hashClientAddress(reinterpret_cast<const sockaddr*>(&peer), peerLen);
    if (!needLocal) return out;
    sockaddr_storage local{};
    socklen_t localLen = sizeof local;
    if (::getsockname(clientFd, reinterpret_cast<sockaddr*>(&local), &localLen) != 0) return out;
    auto source = ProxyEndpoint::fromSockaddr(reinterpret_cast<const sockaddr*>(&peer), peerLen);
    auto destination = ProxyEndpoint::fromSockaddr(reinterpret_cast<const sockaddr*>(&local), localLen);
    if (source && destination) out.proxy = ProxyAddresses{*source, *destination};
    return out;
}

void adoptProxyHeader(const ProxyHeader& header, ClientAddresses& addresses, AccessInfo* access) {
    const auto& a = header.addresses;
    if (!a) return;
    // Affinity, hash balancing, the header toward backends and the access log
    // follow the client the balancer in front saw.
    addresses.proxy = *a;
    sockaddr_storage source{};
    const socklen_t len = a->source.toSockaddr(source);
    addresses.hash = routing::hashClientAddress(reinterpret_cast<const sockaddr*>(&source), len);
    if (access) {
        access->client = source;
        access->clientLen = len;
    }
}

void ByteTally::flush(routing::BackendState& backend, unsigned worker) {
    telemetry::TrafficSlot& b = backend.traffic.slot(worker);
    telemetry::TrafficSlot& p = backend.pool->traffic.slot(worker);
    b.bytesIn.add(pending_[0]);
    p.bytesIn.add(pending_[0]);
    b.bytesOut.add(pending_[1]);
    p.bytesOut.add(pending_[1]);
    pending_[0] = pending_[1] = 0;
    reads_ = 0;
}

void FirstBytes::backendByte(routing::BackendState& backend, unsigned worker, SteadyTime connectedAt,
                             SteadyTime now) {
    if (sawBackendByte_) return;
    sawBackendByte_ = true;
    const SteadyTime from = firstClientByteAt_ != SteadyTime{} ? firstClientByteAt_ : connectedAt;
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now - from).count();
    ttfb_ = std::chrono::microseconds(micros < 0 ? 0 : micros);
    backend.pool->latency(worker).ttfb.record(static_cast<uint64_t>(ttfb_.count()));
    if (backend.consecutiveFailures.load(std::memory_order_relaxed) != 0)
        backend.consecutiveFailures.store(0, std::memory_order_relaxed);
}

void countSessionEnd(routing::BackendState& backend, unsigned worker, CloseReason reason, bool sawBackendByte,
                     const routing::SnapshotPtr& current, std::size_t serviceIndex, SteadyTime connectedAt) {
    backend.active.fetch_sub(1, std::memory_order_relaxed);
    const auto lived = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - connectedAt);
    backend.pool->latency(worker).duration.record(static_cast<uint64_t>(lived.count() < 0 ? 0 : lived.count()));
    if (!sawBackendByte && (reason == CloseReason::BackendClose || reason == CloseReason::BackendReset)) {
        backend.traffic.slot(worker).earlyCloses.add();
        backend.pool->traffic.slot(worker).earlyCloses.add();
        const uint32_t run = backend.consecutiveFailures.fetch_add(1, std::memory_order_relaxed) + 1;
        // A failure run long enough to matter is rare, so the snapshot lookup costs nothing.
        if (current && serviceIndex < current->services.size())
            routing::noteBackendFailure(current->services[serviceIndex], backend, run);
    }
    backend.traffic.slot(worker).closed[static_cast<std::size_t>(reason)].add();
}

void logSessionAccess(const AccessInfo& info, std::string_view service, const routing::BackendState* backend,
                      SteadyTime connectedAt, uint64_t bytesIn, uint64_t bytesOut, CloseReason reason,
                      const FirstBytes& firstBytes) {
    using std::chrono::duration_cast;
    using std::chrono::microseconds;
    telemetry::AccessRecord r;
    r.accepted = info.accepted;
    if (info.clientLen > 0) {
        r.client = reinterpret_cast<const sockaddr*>(&info.client);
        r.clientLen = info.clientLen;
    }
    if (info.listenerLen > 0) {
        r.listener = reinterpret_cast<const sockaddr*>(&info.listener);
        r.listenerLen = info.listenerLen;
    }
    r.retries = info.retries;
    r.ttfb = firstBytes.ttfb();
    r.service = backend ? std::string_view(backend->service) : service;
    if (backend) {
        r.pool = config::toString(backend->colour);
        r.backend = backend->key;
        r.connect = duration_cast<microseconds>(connectedAt - info.start);
    }
    r.bytesIn = bytesIn;
    r.bytesOut = bytesOut;
    r.duration = duration_cast<microseconds>(std::chrono::steady_clock::now() - info.start);
    r.reason = toString(reason);
    telemetry::logAccess(r);
}

std::string buildPreamble(config::ProxyProtocol version, const std::optional<ProxyAddresses>& addresses,
                          std::string_view earlyClientBytes) {
    std::string preamble = encodeProxyHeader(version, addresses);
    preamble.append(earlyClientBytes);
    return preamble;
}

} // namespace switchyard::proxy
