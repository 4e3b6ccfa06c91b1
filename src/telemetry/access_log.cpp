#include "switchyard/telemetry/access_log.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/format.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/file_helper.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace switchyard::telemetry {
namespace {

// Lines the queue holds before the oldest are dropped: a few seconds of a
// busy balancer's closes, ~3 MB preallocated only when the log is on.
constexpr std::size_t kQueueLines = 8192;

// A file sink that flushes every line, so `tail -f` and tests see whole lines
// at once; it runs on the writer thread only.
class LineFileSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
public:
    explicit LineFileSink(const std::string& path) { file_.open(path, false); }

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
std::atomic<bool> g_enabled{false};

void appendAddress(spdlog::memory_buf_t& out, const sockaddr* sa, socklen_t len) {
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
    } else {
        out.push_back('-');
    }
}

std::string_view orDash(std::string_view s) { return s.empty() ? std::string_view("-") : s; }

void format(spdlog::memory_buf_t& out, const AccessRecord& r) {
    auto it = std::back_inserter(out);
    fmt::format_to(it, "client=");
    appendAddress(out, r.client, r.clientLen);
    fmt::format_to(it, " service={} pool={} backend={} bytes_in={} bytes_out={} duration_ms={:.3f} connect_ms=",
                   orDash(r.service), orDash(r.pool), orDash(r.backend), r.bytesIn, r.bytesOut,
                   static_cast<double>(r.duration.count()) / 1000.0);
    if (r.connect.count() >= 0)
        fmt::format_to(it, "{:.3f}", static_cast<double>(r.connect.count()) / 1000.0);
    else
        out.push_back('-');
    fmt::format_to(it, " reason={}", orDash(r.reason));
}

} // namespace

std::string setupAccessLog(bool enabled, const std::string& path) {
    std::lock_guard lock(g_setupMutex);
    // The writer is created the first time the log is turned on and kept
    // until shutdown: workers read its pointer without a lock.
    if (!g_loggerOwner && enabled) {
        spdlog::sink_ptr sink;
        try {
            if (path.empty()) {
                sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
                // journald stamps every line itself; a second timestamp is noise.
                const bool underJournal = std::getenv("JOURNAL_STREAM") != nullptr;
                sink->set_pattern(underJournal ? "%l %n: %v" : "%Y-%m-%d %H:%M:%S.%e %l %n: %v");
            } else {
                sink = std::make_shared<LineFileSink>(path);
                sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %v");
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
        format(line, record);
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
}

std::string formatAccessRecord(const AccessRecord& record) {
    spdlog::memory_buf_t line;
    format(line, record);
    return std::string(line.data(), line.size());
}

} // namespace switchyard::telemetry
