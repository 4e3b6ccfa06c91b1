#pragma once

// A data-plane thread: its own event loop, its own listeners, its own sessions.
// Everything here is thread-safe to call from the control thread: calls are
// posted onto the worker's loop and applied in order.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "switchyard/config/config.h"
#include "switchyard/routing/routing_snapshot.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::proxy {

// Settings every engine's workers take at start (not reloadable).
struct WorkerOptions {
    bool splice = true;          // relay bulk flows with splice(2) where the engine can
    std::size_t fdShare = 1024;  // open-file descriptors this worker may count on
};

class Worker {
public:
    virtual ~Worker() = default;

    virtual void start() = 0;
    // Accept connections for `service` from this listening socket.
    virtual void addListener(std::string service, UniqueFd listenFd) = 0;
    virtual void removeListener(const std::string& service) = 0;
    // New connections route by this snapshot; drains in it are scheduled.
    virtual void publish(routing::SnapshotPtr snapshot) = 0;
    // Close every listener (SIGTERM): open sessions go on.
    virtual void stopAccepting() = 0;
    // Close every session now (shutdown_grace ran out).
    virtual void closeAllSessions() = 0;
    // Open sessions, readable from any thread.
    virtual std::size_t sessionCount() const = 0;
    // Runs `task` on this worker's loop (the systemd watchdog's heartbeat:
    // a loop that runs it is alive).
    virtual void post(std::function<void()> task) = 0;
    // Stops the loop and joins the thread.
    virtual void stop() = 0;
};

std::unique_ptr<Worker> makeEpollWorker(unsigned index, WorkerOptions options);

} // namespace switchyard::proxy
