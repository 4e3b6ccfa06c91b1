#pragma once

// systemd integration on the control thread: sd_notify READY/RELOADING/
// STOPPING/STATUS, and the watchdog. With WatchdogSec set, WATCHDOG=1 is sent
// only when every worker's event loop has run a task the control thread posted
// since the previous ping: a stuck worker (or a stuck control thread) stops
// the pings and systemd restarts the service. Without NOTIFY_SOCKET every call
// is a no-op.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/types.h>

#include "switchyard/control/listener_set.h"
#include "switchyard/proxy/worker.h"

namespace switchyard::daemon {

class SystemdNotifier {
public:
    using StatusFn = std::function<std::string()>;

    SystemdNotifier(boost::asio::io_context& context, std::vector<std::unique_ptr<proxy::Worker>>& workers,
                    StatusFn status);
    ~SystemdNotifier();

    // READY=1 with the current STATUS=; the first call starts the watchdog and
    // status timer (later calls end a reload).
    void ready();
    // RELOADING=1 (with MONOTONIC_USEC, as newer systemd wants it).
    void reloading();
    void stopping();
    // upgrade: `pid` is systemd's main PID from now on (MAINPID=); this
    // process sends nothing more (the new one pings the watchdog).
    void handOver(int pid);
    // Keeps the service listeners this daemon bound in systemd's fd store
    // (FDSTORE=1, FDNAME=fdStoreName(); the unit needs FileDescriptorStoreMax=),
    // so a restart gets them back and nothing is refused meanwhile. Only what
    // changed since the last call is sent; a listener gone is removed
    // (FDSTOREREMOVE=1), as are `forget` (stored names nothing claimed).
    void storeListeners(const std::vector<control::ListenerSet::HandoverFd>& listeners,
                        const std::vector<std::string>& forget = {});
    // Sends STATUS= now if it changed.
    void updateStatus();
    void stop();

    bool active() const { return active_; }
    // Zero when the service has no WatchdogSec.
    std::chrono::microseconds watchdogTimeout() const { return watchdog_; }

private:
    void arm();
    void tick();
    bool workersAnswered() const;
    void notify(const std::string& message);

    boost::asio::io_context& context_;
    std::vector<std::unique_ptr<proxy::Worker>>& workers_;
    StatusFn status_;
    bool active_ = false;
    std::chrono::microseconds watchdog_{0};
    std::chrono::milliseconds period_{2000};
    boost::asio::steady_timer timer_;
    std::string lastStatus_;
    // Heartbeats: round N is posted to every worker; each stores N when its loop runs it.
    uint64_t round_ = 0;
    std::vector<std::shared_ptr<std::atomic<uint64_t>>> answered_;
    bool warnedStuck_ = false;
    bool armed_ = false;
    bool stopped_ = false;
    // What the fd store holds, by FDNAME: the socket's inode.
    std::map<std::string, ino_t> stored_;
};

} // namespace switchyard::daemon
