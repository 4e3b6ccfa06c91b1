#pragma once

// Durations in configs and admin commands: "250ms", "2s", "5m", "1h" (a plain 0 is allowed).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::config {

using Duration = std::chrono::milliseconds;

// The longest duration a config or command may give. Far beyond any sane
// timeout, and small enough that `now + d`, `d * 4` and the nanosecond clocks
// of both engines can never overflow into the opposite of what was asked.
inline constexpr Duration kMaxDuration = std::chrono::hours(24 * 365);
// "365 days (8760h)": for error messages.
std::string maxDurationText();

// A value too large for int64 milliseconds saturates at Duration::max(), so
// that callers can tell "too long" (> kMaxDuration) from "not a duration".
std::optional<Duration> parseDuration(std::string_view text);

// d * factor, clamped to Duration::max() instead of overflowing (d, factor >= 0).
Duration saturatingMultiply(Duration d, int64_t factor);

// Shortest exact form: 1500ms -> "1500ms", 2000ms -> "2s", 120000ms -> "2m".
std::string formatDuration(Duration d);

} // namespace switchyard::config
