#include "switchyard/rollout/rollout_driver.h"

#include <exception>

#include "switchyard/telemetry/logging.h"

namespace switchyard::rollout {

void RolloutDriver::schedule() {
    timer_.expires_after(interval_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        try {
            control_.rolloutTick();
        } catch (const std::exception& e) {
            // A bug in one turn must not stop every later rollout decision.
            telemetry::logger("rollout")->error("rollout turn failed: {}", e.what());
        }
        schedule();
    });
}

} // namespace switchyard::rollout
