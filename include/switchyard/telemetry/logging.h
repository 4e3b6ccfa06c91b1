#pragma once

// spdlog set-up: one named logger per area ("daemon", "config", "control",
// "admin", "proxy", "health", "rollout", "access"). Under systemd (JOURNAL_STREAM
// set) lines carry no timestamp (the journal adds its own) and start with the
// sd-daemon priority prefix ("<4>" for a warning), so journald stores each line
// at its level and `journalctl -p warning` finds warnings.

#include <memory>
#include <string_view>

#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include "switchyard/config/config.h"

namespace switchyard::telemetry {

void setupLogging(config::LogLevel level);
void setLogLevel(config::LogLevel level);

// The logger of one area; created on first use with the current sinks and level.
std::shared_ptr<spdlog::logger> logger(std::string_view area);

// The line format of the log on stderr: with a timestamp, or for the journal
// ("<N>" syslog priority prefix, no timestamp).
std::unique_ptr<spdlog::formatter> makeStderrFormatter(bool underJournal);
// Whether stderr goes to the journal (systemd sets JOURNAL_STREAM).
bool stderrIsJournal();
// The syslog priority of a level (sd-daemon.h: 7 debug ... 2 critical).
int syslogPriority(spdlog::level::level_enum level);

} // namespace switchyard::telemetry
