#pragma once

// Drives the rollouts on the control thread: a timer that lets the control
// plane sample the pools' counters and advance every active rollout. The
// machine itself (rollout_controller.h) knows no clock and no sockets.

#include <chrono>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "switchyard/control/control_plane.h"

namespace switchyard::rollout {

class RolloutDriver {
public:
    // 250 ms: a gate verdict lands within a quarter second of its hold, and
    // sampling (a sum over workers per pool) stays far below a millisecond.
    static constexpr std::chrono::milliseconds kInterval{250};

    RolloutDriver(boost::asio::io_context& context, control::ControlPlane& control,
                  std::chrono::milliseconds interval = kInterval)
        : control_(control), timer_(context), interval_(interval) {}

    void start() { schedule(); }
    void stop() { timer_.cancel(); }

private:
    void schedule();

    control::ControlPlane& control_;
    boost::asio::steady_timer timer_;
    std::chrono::milliseconds interval_;
};

} // namespace switchyard::rollout
