#pragma once

// Says in the log when a service turns connections away at max_connections.
// Runs on the control thread once a second and reads the counter the workers
// already keep, so the data path pays nothing and a flood yields one line a
// second per service, not one per refused connection.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include <boost/asio.hpp>

#include "switchyard/control/control_plane.h"

namespace switchyard::daemon {

class LimitWatcher {
public:
    LimitWatcher(boost::asio::io_context& context, control::ControlPlane& control)
        : control_(control), timer_(context) {}
    void start() { arm(); }
    void stop() { timer_.cancel(); }

private:
    void arm();
    void check();

    control::ControlPlane& control_;
    boost::asio::steady_timer timer_;
    std::map<std::string, uint64_t> seen_;   // refusedAtLimit per service at the last check
};

} // namespace switchyard::daemon
