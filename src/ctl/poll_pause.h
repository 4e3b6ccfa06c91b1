#pragma once

// The --wait loops poll the daemon at an interval; between polls they sleep,
// never past the caller's --timeout deadline, and wake early on Ctrl-C.

#include <chrono>
#include <optional>

namespace switchyard::ctl {

// Sleeps `interval`, or less when `deadline` comes first; a signal ends it early.
void pauseUntilNextPoll(std::chrono::milliseconds interval,
                        std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

} // namespace switchyard::ctl
