#pragma once

// The access log (log.access_log, off by default): one line per closed
// connection, written off the hot path. A worker formats the line into a
// fixed inline buffer and enqueues it on an spdlog async queue with the
// overrun_oldest policy: when the writer (a slow disk, a stalled journal)
// falls behind, the oldest queued lines are dropped and counted
// (switchyard_access_log_dropped_total); a worker never waits on I/O.
//
// Line format (logfmt, one connection per line):
//   client=10.0.0.7:51544 service=web pool=blue backend=10.0.0.11:8080 bytes_in=120 bytes_out=5130
//   duration_ms=12.407 connect_ms=0.311 reason=client_close
// pool/backend/connect_ms are "-" for connections that never reached a backend.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <sys/socket.h>

namespace switchyard::telemetry {

struct AccessRecord {
    const sockaddr* client = nullptr;     // null: unknown
    socklen_t clientLen = 0;
    std::string_view service;
    std::string_view pool;                // "" when no backend was reached
    std::string_view backend;
    uint64_t bytesIn = 0;                 // client -> backend
    uint64_t bytesOut = 0;                // backend -> client
    std::chrono::microseconds duration{0};                 // accept to close
    std::chrono::microseconds connect{-1};                 // accept to upstream established; <0: none
    std::string_view reason;
};

// Starts (or reconfigures) the access log. `path` empty: the process's stderr,
// which systemd sends to the journal; otherwise appended to that file.
// Returns an error message, empty on success.
std::string setupAccessLog(bool enabled, const std::string& path);
// Turns lines on or off without touching the writer (reload).
void setAccessLogEnabled(bool enabled);
// Cheap: one relaxed load. Callers skip building a record when off.
bool accessLogEnabled() noexcept;
// Never blocks and never throws; may drop the line (counted).
void logAccess(const AccessRecord& record) noexcept;
// Lines dropped because the queue was full.
uint64_t accessLogDropped() noexcept;
// Writes what is queued and stops the writer thread (shutdown).
void shutdownAccessLog();

// The line for a record, without the logger's prefix (for tests).
std::string formatAccessRecord(const AccessRecord& record);

} // namespace switchyard::telemetry
