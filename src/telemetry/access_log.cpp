#include "switchyard/telemetry/access_log.h"

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <mutex>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/file_helper.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "switchyard/telemetry/logging.h"

namespace switchyard::telemetry {
namespace {

// Lines the queue holds before the oldest are dropped: a few seconds of a
// busy balancer's closes, ~3 MB preallocated only when the log is on.
constexpr std::size_t kQueueLines = 8192;

// A file sink that flushes every line, so `tail -f` and tests see whole lines
// at once. It writes on the writer thread; reopen() (SIGUSR1) comes from the
// control thread, hence the (uncontended) mutex.
class LineFileSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit LineFileSink(const std::string& path) { file_.open(path, false); }

    void reopen() {
        std::lock_guard lock(mutex_);
        file_.reopen(false);
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t line;
        formatter_->format(msg, line);
        file_.write(line);
        file_.flush();
    }
    void flush_() override { file_.flush(); }

private:
    spdlog::details::file_helper file_;
};

std::mutex g_setupMutex;
std::shared_ptr<spdlog::details::thread_pool> g_pool;
// Set once before workers start and kept until shutdown: workers read it
// without a lock (an acquire load), never a reference-counted copy.
std::shared_ptr<spdlog::async_logger> g_loggerOwner;
std::atomic<spdlog::async_logger*> g_logger{nullptr};
std::shared_ptr<LineFileSink> g_fileSink;   // null when the log goes to stderr
std::atomic<bool> g_enabled{false};
std::atomic<config::AccessLogFormat> g_format{config::AccessLogFormat::Text};

// "127.0.0.1:80", "[::1]:80", or "" when unknown.
void appendAddress(spdlog::memory_buf_t& out, const sockaddr* sa, socklen_t len, bool dashIfUnknown = true) {
    char host[INET6_ADDRSTRLEN] = "-";
    unsigned port = 0;
    if (sa && sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        fmt::format_to(std::back_inserter(out), "{}:{}", host, port);
    } else if (sa && sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        fmt::format_to(std::back_inserter(out), "[{}]:{}", host, port);
    } else if (dashIfUnknown) {
        out.push_back('-');
    }
}

// ISO 8601 with milliseconds and the UTC offset, as journald and logrotate'd files want it.
void appendTime(spdlog::memory_buf_t& out, std::chrono::system_clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm local{};
    ::localtime_r(&seconds, &local);
    char zone[8] = "+0000";
    std::strftime(zone, sizeof zone, "%z", &local);   // "+0100"
    fmt::format_to(std::back_inserter(out), "{:%Y-%m-%dT%H:%M:%S}.{:03d}{}{}:{}", local, static_cast<int>(ms % 1000),
                   std::string_view(zone, 1), std::string_view(zone + 1, 2), std::string_view(zone + 3, 2));
}

void appendMs(spdlog::memory_buf_t& out, std::chrono::microseconds us, const char* none) {
    if (us.count() >= 0)
        fmt::format_to(std::back_inserter(out), "{:.3f}", static_cast<double>(us.count()) / 1000.0);
    else
        out.append(std::string_view(none));
}

// A JSON string; names and reasons are plain words, but never trust that in a log.
void appendJsonString(spdlog::memory_buf_t& out, std::string_view s) {
    out.push_back('"');
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (u < 0x20) {
            fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

void appendJsonStringOrNull(spdlog::memory_buf_t& out, std::string_view s) {
    if (s.empty())
        out.append(std::string_view("null"));
    else
        appendJsonString(out, s);
}

void formatJson(spdlog::memory_buf_t& out, const AccessRecord& r) {
    auto it = std::back_inserter(out);
    spdlog::memory_buf_t address;
    out.append(std::string_view("{\"accepted\":\""));
    appendTime(out, r.accepted);
    out.append(std::string_view("\",\"client\":"));
    appendAddress(address, r.client, r.clientLen, false);
    appendJsonStringOrNull(out, std::string_view(address.data(), address.size()));
    address.clear();
    out.append(std::string_view(",\"listener\":"));
    appendAddress(address, r.listener, r.listenerLen, false);
    appendJsonStringOrNull(out, std::string_view(address.data(), address.size()));
    out.append(std::string_view(",\"service\":"));
    appendJsonStringOrNull(out, r.service);
    out.append(std::string_view(",\"pool\":"));
    appendJsonStringOrNull(out, r.pool);
    out.append(std::string_view(",\"backend\":"));
    appendJsonStringOrNull(out, r.backend);
    fmt::format_to(it, ",\"retries\":{},\"bytes_in\":{},\"bytes_out\":{},\"duration_ms\":", r.retries, r.bytesIn,
                   r.bytesOut);
    appendMs(out, r.duration, "null");
    out.append(std::string_view(",\"connect_ms\":"));
    appendMs(out, r.connect, "null");
    out.append(std::string_view(",\"ttfb_ms\":"));
    appendMs(out, r.ttfb, "null");
    out.append(std::string_view(",\"reason\":"));
    appendJsonStringOrNull(out, r.reason);
    out.push_back('}');
}

std::string_view orDash(std::string_view s) { return s.empty() ? std::string_view("-") : s; }

void formatText(spdlog::memory_buf_t& out, const AccessRecord& r) {
    auto it = std::back_inserter(out);
    out.append(std::string_view("accepted="));
    appendTime(out, r.accepted);
    out.append(std::string_view(" client="));
    appendAddress(out, r.client, r.clientLen);
    out.append(std::string_view(" listener="));
    appendAddress(out, r.listener, r.listenerLen);
    fmt::format_to(it, " service={} pool={} backend={} retries={} bytes_in={} bytes_out={} duration_ms=",
                   orDash(r.service), orDash(r.pool), orDash(r.backend), r.retries, r.bytesIn, r.bytesOut);
    appendMs(out, r.duration, "-");
    out.append(std::string_view(" connect_ms="));
    appendMs(out, r.connect, "-");
    out.append(std::string_view(" ttfb_ms="));
    appendMs(out, r.ttfb, "-");
    fmt::format_to(it, " reason={}", orDash(r.reason));
}

void format(spdlog::memory_buf_t& out, const AccessRecord& r, config::AccessLogFormat f) {
    if (f == config::AccessLogFormat::Json)
        formatJson(out, r);
    else
        formatText(out, r);
}

} // namespace

std::string setupAccessLog(bool enabled, const std::string& path, config::AccessLogFormat format) {
    std::lock_guard lock(g_setupMutex);
    g_format.store(format, std::memory_order_relaxed);
    // The writer is created the first time the log is turned on and kept
    // until shutdown: workers read its pointer without a lock.
    if (!g_loggerOwner && enabled) {
        spdlog::sink_ptr sink;
        try {
            // One line format on every sink: the record carries its own time.
            if (path.empty()) {
                sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
                // The journal's priority prefix only ("<6>"): journald stores it at info.
                sink->set_pattern(stderrIsJournal() ? "<6>%v" : "%v");
            } else {
                g_fileSink = std::make_shared<LineFileSink>(path);
                sink = g_fileSink;
                sink->set_pattern("%v");
            }
        } catch (const std::exception& e) {
            return "log.access_log_path " + path + ": " + e.what();
        }
        g_pool = std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1);
        g_loggerOwner = std::make_shared<spdlog::async_logger>("access", std::move(sink), g_pool,
                                                               spdlog::async_overflow_policy::overrun_oldest);
        g_loggerOwner->set_level(spdlog::level::info);
        g_logger.store(g_loggerOwner.get(), std::memory_order_release);
    }
    g_enabled.store(enabled, std::memory_order_relaxed);
    return {};
}

void setAccessLogFormat(config::AccessLogFormat format) { g_format.store(format, std::memory_order_relaxed); }

std::string reopenAccessLog() {
    std::lock_guard lock(g_setupMutex);
    if (!g_fileSink) return {};
    try {
        g_fileSink->reopen();
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

void setAccessLogEnabled(bool enabled) {
    std::lock_guard lock(g_setupMutex);
    g_enabled.store(enabled && g_loggerOwner != nullptr, std::memory_order_relaxed);
}

bool accessLogEnabled() noexcept { return g_enabled.load(std::memory_order_relaxed); }

void logAccess(const AccessRecord& record) noexcept {
    spdlog::async_logger* logger = g_logger.load(std::memory_order_acquire);
    if (!logger || !accessLogEnabled()) return;
    try {
        // Formatted into the buffer's inline storage (no allocation for a
        // usual line) and copied into a preallocated queue slot.
        spdlog::memory_buf_t line;
        format(line, record, g_format.load(std::memory_order_relaxed));
        logger->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
    } catch (...) {
        // A log line is never worth a connection or a worker.
    }
}

uint64_t accessLogDropped() noexcept {
    std::lock_guard lock(g_setupMutex);
    return g_pool ? static_cast<uint64_t>(g_pool->overrun_counter()) : 0;
}

void shutdownAccessLog() {
    std::lock_guard lock(g_setupMutex);
    g_enabled.store(false, std::memory_order_relaxed);
    g_logger.store(nullptr, std::memory_order_release);
    // Workers are stopped by now; dropping the pool writes what is queued and
    // joins its thread. Only then drop the logger: its sinks are freed after
    // the writer thread is gone, ordered by the join (ThreadSanitizer cannot
    // see the ordering through the reference count inside libspdlog).
    g_pool.reset();
    g_loggerOwner.reset();
    g_fileSink.reset();
}

std::string formatAccessRecord(const AccessRecord& record, config::AccessLogFormat f) {
    spdlog::memory_buf_t line;
    format(line, record, f);
    return std::string(line.data(), line.size());
}

} // namespace switchyard::telemetry
