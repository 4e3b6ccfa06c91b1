#pragma once

// `upgrade`: hands this daemon's sockets to a new binary and retires
// (docs/upgrade.md). On the control thread:
//
//   check (--handover-version, --check) -> freeze changes, save state
//   -> spawn `BINARY -c CONFIG --handover-fd N` -> hello + sockets
//   -> wait for `ready` (or the child's exit, or the timeout: kill it, thaw, fail)
//   -> MAINPID=new, stop accepting, let go of admin and metrics sockets, `go`
//   -> retired: drain until every connection ended or upgrade.drain_timeout,
//      reporting the draining connections to the new generation; then exit.
//
// The new generation keeps the channel: it shows its draining predecessor in
// `status` and metrics, and asks it to stop when it is told to stop itself.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "switchyard/admin/admin_server.h"
#include "switchyard/admin/command.h"
#include "switchyard/admin/status_report.h"
#include "switchyard/control/control_plane.h"
#include "switchyard/daemon/metrics_view_builder.h"
#include "switchyard/daemon/systemd_notifier.h"
#include "switchyard/proxy/worker.h"
#include "switchyard/telemetry/carried_counters.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::daemon {

// The absolute path of the running binary, as it was when this process started
// (a package upgrade replaces the file behind it; that file is what runs next).
std::string runningBinaryPath();

using admin::DrainingGeneration;

class Upgrader {
public:
    struct Parts {
        boost::asio::io_context& context;
        control::ControlPlane& control;
        admin::AdminServer& admin;
        MetricsPublisher& metrics;
        SystemdNotifier& notifier;
        std::vector<std::unique_ptr<proxy::Worker>>& workers;
        std::string binary;   // what `upgrade` starts unless told binary=
    };
    explicit Upgrader(Parts parts);
    ~Upgrader();

    // The admin command; `done` gets the reply.
    void upgrade(const admin::Command& command, std::function<void(nlohmann::json)> done);

    // Called once this (retired) generation has no connection left or its
    // drain deadline passed: the daemon then exits.
    void onDrained(std::function<void()> hook) { onDrained_ = std::move(hook); }
    // Called once when this generation hands over (health checks and rollouts are the new one's).
    void onRetired(std::function<void()> hook) { onRetired_ = std::move(hook); }
    bool retired() const { return retired_; }
    // This generation is stopping (SIGTERM): a new upgrade is refused, and one
    // under way fails at once (its new process is killed).
    void stopping();

    // The new generation: reports from the predecessor over `channel`.
    void watchPredecessor(UniqueFd channel, int pid);
    // Asks a draining predecessor to stop now (SIGTERM on this process): it
    // closes what it still serves within its shutdown_grace.
    void stopPredecessor();
    std::optional<DrainingGeneration> drainingGeneration() const { return predecessor_; }
    // The older generation has not exited yet (it may have drained already).
    bool predecessorRunning() const { return predecessorChannel_.valid(); }
    // The new generation, once it said `ready`: waits for `go`, taking the
    // counters the old one sends before it.
    Result<bool> awaitGo(int channel, std::chrono::milliseconds timeout);

    // Retired generation: SIGTERM ends the drain (shutdown_grace still applies).
    static constexpr auto kDefaultTimeout = std::chrono::seconds(60);

private:
    struct Attempt;
    void step(std::shared_ptr<Attempt> attempt);
    void fail(std::shared_ptr<Attempt> attempt, const std::string& why);
    void handOver(std::shared_ptr<Attempt> attempt, const nlohmann::json& ready);
    void drainTick();
    void readPredecessor();
    // Retired: what this generation's scrape shows of counters, to the next one.
    void sendCounters(int channel, std::chrono::milliseconds wait);
    // New generation: one part of the predecessor's counters; a complete set is shown.
    void takeCounters(const nlohmann::json& body);
    // New generation: the drains of the services a publish changed (all of them:
    // `all`), so the predecessor's connections to them drain as this one's do.
    void sendDrains(bool all);
    // Retired: the next generation's drains, applied to this one's connections.
    void takeDrains(const nlohmann::json& body);
    std::size_t openConnections() const;

    Parts parts_;
    bool busy_ = false;
    bool retired_ = false;
    bool stopping_ = false;
    std::weak_ptr<Attempt> current_;   // the upgrade under way, if any
    // Retired: the channel to the next generation, its stderr pipe (read to its end).
    UniqueFd successor_;
    UniqueFd successorLog_;
    std::chrono::steady_clock::time_point drainDeadline_;
    std::chrono::steady_clock::time_point lastReport_;
    std::chrono::steady_clock::time_point handedOverAt_;
    boost::asio::steady_timer timer_;
    std::function<void()> onDrained_;
    std::function<void()> onRetired_;
    // The new generation's view of its predecessor.
    UniqueFd predecessorChannel_;
    std::optional<DrainingGeneration> predecessor_;
    boost::asio::steady_timer predecessorTimer_;
    // Counters: the set being sent (retired) and the one arriving (new generation).
    uint64_t countersSeq_ = 0;
    telemetry::CarriedCounters incoming_;
    uint64_t incomingSeq_ = 0;
    std::size_t incomingParts_ = 0;
    // Retired: the next generation's drains, by service.
    control::SuccessorDrains successorDrains_;
};

} // namespace switchyard::daemon
