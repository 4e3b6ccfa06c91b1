#pragma once

// --wait for cutover and backend drain: polls `status SERVICE` until the pool or
// backend being left has no connections, showing a live count on stderr.
// It only ever reads; stopping it (Ctrl-C, timeout) changes nothing in the daemon.

#include <optional>
#include <string>

#include "switchyard/config/config.h"

#include "admin_client.h"

namespace switchyard::ctl {

struct DrainTarget {
    std::string service;
    config::Colour pool = config::Colour::Blue;     // the pool being drained
    std::optional<config::Endpoint> backend;         // only this backend of `pool`
};

// Set from the SIGINT handler; checked between polls and by interrupted system calls.
bool interruptRequested();
void installInterruptHandler();

// Returns the exit code: 0 drained, 1 timed out or failed, 3 unreachable, 130 interrupted.
int waitForDrain(const AdminClient& client, const DrainTarget& target,
                 std::optional<Clock::time_point> deadline, bool humanOutput);

} // namespace switchyard::ctl
