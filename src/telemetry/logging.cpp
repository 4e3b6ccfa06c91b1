#include "switchyard/telemetry/logging.h"

#include <cstdlib>
#include <mutex>
#include <string>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace switchyard::telemetry {
namespace {

std::mutex g_mutex;
spdlog::sink_ptr g_sink;
spdlog::level::level_enum g_level = spdlog::level::info;

spdlog::level::level_enum toSpdlog(config::LogLevel level) {
    using L = config::LogLevel;
    switch (level) {
    case L::Trace: return spdlog::level::trace;
    case L::Debug: return spdlog::level::debug;
    case L::Info: return spdlog::level::info;
    case L::Warn: return spdlog::level::warn;
    case L::Error: return spdlog::level::err;
    case L::Critical: return spdlog::level::critical;
    case L::Off: return spdlog::level::off;
    }
    return spdlog::level::info;
}

// %* in a pattern: "<N>", the priority prefix journald's stdout stream reads
// (SyslogLevelPrefix=, on by default) and strips from the stored message.
class PriorityFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        const char prefix[] = {'<', static_cast<char>('0' + syslogPriority(msg.level)), '>'};
        dest.append(prefix, prefix + sizeof prefix);
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<PriorityFlag>(); }
};

spdlog::sink_ptr sinkLocked() {
    if (!g_sink) {
        g_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        g_sink->set_formatter(makeStderrFormatter(stderrIsJournal()));
    }
    return g_sink;
}

} // namespace

int syslogPriority(spdlog::level::level_enum level) {
    switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 7;      // LOG_DEBUG
    case spdlog::level::info: return 6;       // LOG_INFO
    case spdlog::level::warn: return 4;       // LOG_WARNING
    case spdlog::level::err: return 3;        // LOG_ERR
    case spdlog::level::critical: return 2;   // LOG_CRIT
    default: return 6;
    }
}

bool stderrIsJournal() { return std::getenv("JOURNAL_STREAM") != nullptr; }

std::unique_ptr<spdlog::formatter> makeStderrFormatter(bool underJournal) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    // journald stamps every line itself; a second timestamp is noise.
    formatter->add_flag<PriorityFlag>('*').set_pattern(underJournal ? "%*%l %n: %v" : "%Y-%m-%d %H:%M:%S.%e %l %n: %v");
    return formatter;
}

void setupLogging(config::LogLevel level) {
    std::lock_guard lock(g_mutex);
    sinkLocked();
    g_level = toSpdlog(level);
    spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_level); });
}

void setLogLevel(config::LogLevel level) { setupLogging(level); }

std::shared_ptr<spdlog::logger> logger(std::string_view area) {
    std::lock_guard lock(g_mutex);
    std::string name(area);
    if (auto existing = spdlog::get(name)) return existing;
    auto created = std::make_shared<spdlog::logger>(name, sinkLocked());
    created->set_level(g_level);
    created->flush_on(spdlog::level::warn);
    spdlog::register_logger(created);
    return created;
}

} // namespace switchyard::telemetry
