#include "switchyard/telemetry/logging.h"

#include <cstdlib>
#include <mutex>
#include <string>

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

spdlog::sink_ptr sinkLocked() {
    if (!g_sink) {
        g_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        // journald stamps every line itself; a second timestamp is noise.
        const bool underJournal = std::getenv("JOURNAL_STREAM") != nullptr;
        g_sink->set_pattern(underJournal ? "%l %n: %v" : "%Y-%m-%d %H:%M:%S.%e %l %n: %v");
    }
    return g_sink;
}

} // namespace

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
