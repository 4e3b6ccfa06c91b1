#pragma once

// Durations in configs and admin commands: "250ms", "2s", "5m", "1h" (a plain 0 is allowed).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::config {

using Duration = std::chrono::milliseconds;

std::optional<Duration> parseDuration(std::string_view text);

// Shortest exact form: 1500ms -> "1500ms", 2000ms -> "2s", 120000ms -> "2m".
std::string formatDuration(Duration d);

} // namespace switchyard::config
