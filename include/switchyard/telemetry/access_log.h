#pragma once

// The access log (log.access_log, off by default): one line per closed
// connection, written off the hot path. A worker formats the line into a
// fixed inline buffer and enqueues it on an spdlog async queue with the
// overrun_oldest policy: when the writer (a slow disk, a stalled journal)
// falls behind, the oldest queued lines are dropped and counted
// (switchyard_access_log_dropped_total); a worker never waits on I/O.
//
// One line per connection, the same on every sink (a file, stderr, the
// journal), in one of two formats (log.access_log_format):
// text (logfmt):
//   accepted=2026-12-04T20:44:51.123+00:00 client=10.0.0.7:51544 listener=10.0.0.2:8080 service=web
//   pool=blue backend=10.0.0.11:8080 retries=0 bytes_in=120 bytes_out=5130 duration_ms=12.407
//   connect_ms=0.311 ttfb_ms=1.020 reason=client_close
// pool/backend/connect_ms/ttfb_ms are "-" when there is none (no backend reached, no byte back).
// json: the same fields as one JSON object, null where text says "-".

#include <chrono>

#include "switchyard/config/config.h"
#include <cstdint>
#include <string>
#include <string_view>

#include <sys/socket.h>

namespace switchyard::telemetry {

struct AccessRecord {
    std::chrono::system_clock::time_point accepted{};     // wall clock at accept
    const sockaddr* client = nullptr;     // null: unknown
    socklen_t clientLen = 0;
    const sockaddr* listener = nullptr;   // the address the client connected to; null: unknown
    socklen_t listenerLen = 0;
    uint32_t retries = 0;                 // connects tried after a failed one
    std::string_view service;
    std::string_view pool;                // "" when no backend was reached
    std::string_view backend;
    uint64_t bytesIn = 0;                 // client -> backend
    uint64_t bytesOut = 0;                // backend -> client
    std::chrono::microseconds duration{0};                 // accept to close
    std::chrono::microseconds connect{-1};                 // accept to upstream established; <0: none
    std::chrono::microseconds ttfb{-1};                    // first backend byte (as the TTFB metric); <0: none
    std::string_view reason;
};

// Starts (or reconfigures) the access log. `path` empty: the process's stderr,
// which systemd sends to the journal; otherwise appended to that file.
// Returns an error message, empty on success.
std::string setupAccessLog(bool enabled, const std::string& path,
                           config::AccessLogFormat format = config::AccessLogFormat::Text);
// Switches text/json for the lines that follow (reload).
void setAccessLogFormat(config::AccessLogFormat format);
// Reopens the access-log file at its path (SIGUSR1, after logrotate moved it).
// Returns an error message, empty on success or when the log is not a file.
std::string reopenAccessLog();
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

// The line for a record, as every sink writes it (without the journal's priority prefix).
std::string formatAccessRecord(const AccessRecord& record,
                               config::AccessLogFormat format = config::AccessLogFormat::Text);

} // namespace switchyard::telemetry
