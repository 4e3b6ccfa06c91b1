#include "poll_pause.h"

#include <algorithm>

#include <poll.h>

namespace switchyard::ctl {

void pauseUntilNextPoll(std::chrono::milliseconds interval,
                        std::optional<std::chrono::steady_clock::time_point> deadline) {
    auto sleep = interval;
    if (deadline) {
        const auto untilDeadline =
            std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
        sleep = std::min(sleep, std::max(untilDeadline, std::chrono::milliseconds(0)));
    }
    if (sleep.count() <= 0) return;
    ::poll(nullptr, 0, static_cast<int>(sleep.count()));   // EINTR on a signal is the point
}

} // namespace switchyard::ctl
