#pragma once

// Wires the daemon: workers, control plane, admin socket, signals, systemd.

#include "switchyard/config/config.h"

namespace switchyard::daemon {

struct DaemonOptions {
    config::Config config;
    bool demo = false;
};

// Runs until SIGTERM/SIGINT; returns the process exit code.
int runDaemon(DaemonOptions options);

} // namespace switchyard::daemon
