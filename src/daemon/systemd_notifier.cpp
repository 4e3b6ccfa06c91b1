#include "switchyard/daemon/systemd_notifier.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "switchyard/daemon/socket_activation.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::daemon {
namespace {

std::string oneLine(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
}

uint64_t monotonicMicros() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

} // namespace

SystemdNotifier::SystemdNotifier(boost::asio::io_context& context,
                                 std::vector<std::unique_ptr<proxy::Worker>>& workers, StatusFn status)
    : context_(context), workers_(workers), status_(std::move(status)), timer_(context) {
    active_ = std::getenv("NOTIFY_SOCKET") != nullptr;
    uint64_t usec = 0;
    // 0: no WatchdogSec, or WATCHDOG_PID names another process.
    if (active_ && ::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_ = std::chrono::microseconds(usec);
        // Four heartbeat rounds per timeout: a worker that is merely busy for a
        // moment catches up before systemd gives up on the service.
        period_ = std::max(std::chrono::milliseconds(10),
                           std::chrono::duration_cast<std::chrono::milliseconds>(watchdog_ / 4));
    }
    for (std::size_t i = 0; i < workers_.size(); ++i) answered_.push_back(std::make_shared<std::atomic<uint64_t>>(0));
}

SystemdNotifier::~SystemdNotifier() { stop(); }

void SystemdNotifier::notify(const std::string& message) {
    if (!active_) return;
    if (const int rc = ::sd_notify(0, message.c_str()); rc < 0)
        telemetry::logger("daemon")->warn("sd_notify failed: {}", std::strerror(-rc));
}

void SystemdNotifier::ready() {
    if (!active_) return;
    lastStatus_ = status_ ? oneLine(status_()) : std::string();
    notify("READY=1\nSTATUS=" + lastStatus_);
    if (armed_) return;   // READY=1 again after a reload
    armed_ = true;
    if (watchdog_.count() > 0)
        telemetry::logger("daemon")->info("systemd watchdog: {} ms; every worker must answer a heartbeat each {} ms",
                                          watchdog_.count() / 1000, period_.count());
    arm();
}

void SystemdNotifier::reloading() {
    notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonicMicros()) + "\nSTATUS=reloading configuration");
    lastStatus_.clear();
}

void SystemdNotifier::stopping() {
    notify("STOPPING=1\nSTATUS=stopping: finishing open connections");
    stopped_ = true;   // STATUS stays "stopping"; the watchdog keeps running
}

void SystemdNotifier::handOver(int pid) {
    notify("MAINPID=" + std::to_string(pid));
    stop();
}

void SystemdNotifier::storeListeners(const std::vector<control::ListenerSet::HandoverFd>& listeners,
                                     const std::vector<std::string>& forget) {
    if (!active_ || stopped_) return;
    const auto log = telemetry::logger("daemon");
    std::map<std::string, std::pair<int, ino_t>> now;
    for (const auto& l : listeners) {
        struct stat st {};
        // Socket activation's shared sockets are systemd's own already.
        if (l.shared || ::fstat(l.fd, &st) != 0) continue;
        now[fdStoreName(l.service, l.worker)] = {l.fd, st.st_ino};
    }
    const auto remove = [this](const std::string& name) { notify("FDSTOREREMOVE=1\nFDNAME=" + name); };
    for (const auto& name : forget) remove(name);
    for (auto it = stored_.begin(); it != stored_.end();) {
        const auto n = now.find(it->first);
        if (n != now.end() && n->second.second == it->second) {
            ++it;
            continue;
        }
        remove(it->first);
        it = stored_.erase(it);
    }
    for (const auto& [name, socket] : now) {
        if (stored_.contains(name)) continue;
        const std::string message = "FDSTORE=1\nFDNAME=" + name;
        int fd = socket.first;
        if (const int rc = ::sd_pid_notify_with_fds(0, 0, message.c_str(), &fd, 1); rc < 0) {
            log->warn("cannot keep listener {} in systemd's fd store: {}", name, std::strerror(-rc));
            continue;
        }
        stored_[name] = socket.second;
    }
}

void SystemdNotifier::updateStatus() {
    if (!active_ || stopped_ || !status_) return;
    std::string line = oneLine(status_());
    if (line == lastStatus_) return;
    lastStatus_ = line;
    notify("STATUS=" + line);
}

void SystemdNotifier::stop() {
    timer_.cancel();
    active_ = false;
}

void SystemdNotifier::arm() {
    if (round_ == 0) {
        // Post the first heartbeat round now so the first tick can already ping.
        ++round_;
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            auto slot = answered_[i];
            workers_[i]->post([slot, r = round_] { slot->store(r, std::memory_order_relaxed); });
        }
    }
    timer_.expires_after(period_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && active_) tick();
    });
}

bool SystemdNotifier::workersAnswered() const {
    return std::all_of(answered_.begin(), answered_.end(),
                       [this](const auto& a) { return a->load(std::memory_order_relaxed) == round_; });
}

void SystemdNotifier::tick() {
    if (watchdog_.count() > 0) {
        if (workersAnswered()) {
            notify("WATCHDOG=1");
            warnedStuck_ = false;
            ++round_;
            for (std::size_t i = 0; i < workers_.size(); ++i) {
                auto slot = answered_[i];
                workers_[i]->post([slot, r = round_] { slot->store(r, std::memory_order_relaxed); });
            }
        } else if (!warnedStuck_) {
            warnedStuck_ = true;
            for (std::size_t i = 0; i < answered_.size(); ++i)
                if (answered_[i]->load(std::memory_order_relaxed) != round_)
                    telemetry::logger("daemon")->error(
                        "worker {} has not run its event loop for over {} ms: withholding the systemd watchdog ping",
                        i, period_.count());
        }
    }
    updateStatus();
    arm();
}

} // namespace switchyard::daemon
