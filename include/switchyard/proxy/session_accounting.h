#pragma once

// What every engine's session counts and decides the same way (the "lives
// once" rule of ARCHITECTURE.md "Engines"): admission against max_connections,
// connect attempts and their outcome (local errors never count against a
// backend), time to first byte, early closes for outlier detection and rollout
// gates, close reasons, byte counters in batches, the access-log record and
// the client's addresses for hashing and the PROXY header. Engines own the I/O;
// these functions own the numbers. Worker thread only; per-worker slots.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include <sys/socket.h>

#include "switchyard/proxy/close_reason.h"
#include "switchyard/proxy/proxy_protocol.h"
#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::proxy {

using SteadyTime = std::chrono::steady_clock::time_point;

// Counts a new connection on its service. False: over max_connections, or over
// the process-wide session limit below (the refusal is counted too); the
// caller closes it with ConnectionLimit and still calls releaseConnection().
bool admitConnection(const routing::ServiceRoute& service);
void releaseConnection(routing::ServiceState& state);
// Sessions the open-file limit leaves the data path (two descriptors each,
// after the reserve for listeners, health checks, the admin socket and the
// state file: daemon/fd_limit.h); 0 = no limit. Set once at start.
void setSessionLimit(uint64_t sessions);
// A connection that ended before reaching any backend.
void countClosedWithoutBackend(routing::ServiceState& state, CloseReason reason);
// accept_proxy: a header that was malformed, cut short or late.
void countProxyHeaderFailure(routing::ServiceState& state, bool timedOut);

void countConnectAttempt(routing::BackendState& backend, unsigned worker);
// A connect about to be tried on `backend` after an earlier one of the same
// client failed; `access` (may be null) counts it for the access log.
void countRetry(routing::BackendState& backend, unsigned worker, struct AccessInfo* access);
void countConnectOk(routing::BackendState& backend, unsigned worker, std::chrono::steady_clock::duration took);
// `err` is an errno value (ETIMEDOUT for the connect timeout). Reaching the
// outlier threshold ejects the backend before this connection's retry picks.
void countConnectFailure(const routing::ServiceRoute& service, routing::BackendState& backend, unsigned worker,
                         int err);

// A connection's client address (hash for balancing and affinity) and, when
// the service sends PROXY headers, both addresses for them. Services that
// need neither (round robin or leastconn, no affinity, no PROXY header) skip
// the getpeername/getsockname calls: the hash stays 0, which nothing reads.
struct ClientAddresses {
    uint64_t hash = 0;                       // 0: peer already gone, or not needed
    std::optional<ProxyAddresses> proxy;
};
ClientAddresses clientAddressesOf(int clientFd, const routing::ServiceRoute& service);
struct AccessInfo;
// An accepted PROXY header replaces them (LOCAL and UNKNOWN keep the connection's own),
// and the access log's client too, when it is on.
void adoptProxyHeader(const ProxyHeader& header, ClientAddresses& addresses, AccessInfo* access = nullptr);

// Bytes relayed, per direction (0 client->backend, 1 backend->client), added
// to the shared counters in batches rather than per read.
class ByteTally {
public:
    void add(int direction, uint64_t n) {
        pending_[direction] += n;
        total_[direction] += n;
        ++reads_;
    }
    bool wantsFlush() const { return reads_ >= 64; }
    void flush(routing::BackendState& backend, unsigned worker);
    uint64_t total(int direction) const { return total_[direction]; }

private:
    uint64_t pending_[2] = {0, 0};
    uint64_t total_[2] = {0, 0};
    uint32_t reads_ = 0;
};

// Time to first byte: from the first client byte, or from connect for
// protocols where the server speaks first.
class FirstBytes {
public:
    bool sawBackendByte() const { return sawBackendByte_; }
    void clientByte(SteadyTime now) {
        if (firstClientByteAt_ == SteadyTime{}) firstClientByteAt_ = now;
    }
    // Records TTFB and ends the backend's failure run.
    void backendByte(routing::BackendState& backend, unsigned worker, SteadyTime connectedAt, SteadyTime now);
    // The TTFB recorded; negative before the backend's first byte.
    std::chrono::microseconds ttfb() const { return ttfb_; }

private:
    SteadyTime firstClientByteAt_{};
    std::chrono::microseconds ttfb_{-1};
    bool sawBackendByte_ = false;
};

// A session that reached a backend ended: its active count, an early close
// (closed or reset before the backend's first byte, an error for rollout gates
// and outlier detection) and the close reason. `current` is the worker's
// snapshot now (the session let its own go after connect). `connectedAt`: when
// the upstream connection was established (its duration goes to the pool's histogram).
void countSessionEnd(routing::BackendState& backend, unsigned worker, CloseReason reason, bool sawBackendByte,
                     const routing::SnapshotPtr& current, std::size_t serviceIndex, SteadyTime connectedAt);

// The access-log line (only when telemetry::accessLogEnabled() was true at accept).
struct AccessInfo {
    sockaddr_storage client{};
    socklen_t clientLen = 0;
    sockaddr_storage listener{};        // the address the client connected to
    socklen_t listenerLen = 0;
    SteadyTime start{};
    std::chrono::system_clock::time_point accepted{};
    uint32_t retries = 0;
};
// Fills `info` at accept: times, the client's and the listener's addresses.
void startAccessInfo(AccessInfo& info, int clientFd);
void logSessionAccess(const AccessInfo& info, std::string_view service, const routing::BackendState* backend,
                      SteadyTime connectedAt, uint64_t bytesIn, uint64_t bytesOut, CloseReason reason,
                      const FirstBytes& firstBytes);

// The bytes a backend gets before the relay: the PROXY header, then what came
// in with an accepted one. The early bytes count as relayed client bytes.
std::string buildPreamble(config::ProxyProtocol version, const std::optional<ProxyAddresses>& addresses,
                          std::string_view earlyClientBytes);

} // namespace switchyard::proxy
