#pragma once

// spdlog set-up: one named logger per area ("daemon", "config", "control",
// "admin", "proxy", "health", "rollout", "access"). Under systemd (JOURNAL_STREAM
// set) lines carry no timestamp: the journal adds its own.

#include <memory>
#include <string_view>

#include <spdlog/spdlog.h>

#include "switchyard/config/config.h"

namespace switchyard::telemetry {

void setupLogging(config::LogLevel level);
void setLogLevel(config::LogLevel level);

// The logger of one area; created on first use with the current sinks and level.
std::shared_ptr<spdlog::logger> logger(std::string_view area);

} // namespace switchyard::telemetry
