#pragma once

// Wires the daemon: workers, control plane, admin socket, signals, systemd.

#include "switchyard/config/config.h"

namespace switchyard::daemon {

struct DaemonOptions {
    config::Config config;
    bool demo = false;
    // upgrade: the hand-over channel from the previous generation (--handover-fd), or -1.
    int handoverFd = -1;
};

// Runs until SIGTERM/SIGINT; returns the process exit code.
int runDaemon(DaemonOptions options);

} // namespace switchyard::daemon
