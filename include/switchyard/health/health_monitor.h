#pragma once

// Runs on the control thread's io_context and drives everything health does:
// one check loop per backend that is not disabled or being removed (run by
// the CheckRunner on its own thread, spread by jitter, bounded by the
// timeout), the outlier detector's 100 ms poll, and the fallback/panic
// policy of each service.
// Every change reaches the routing snapshot through
// ControlPlane::applyAutomatic (published first, saved best-effort; moves
// `revision`, never `generation`).
//
// Cost follows what changed (docs/semantics.md "Cost of a change"): check results are
// folded into the state in batches (every kBatchEvery, one snapshot for all
// services they touch), a result that changes nothing touches nothing, a
// publish re-syncs the check loops of the services it changed only, and at
// most CheckRunner::kMaxInFlight checks run at once (a health storm never takes
// the descriptors the data path and the admin socket need).

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "switchyard/control/control_plane.h"
#include "switchyard/health/check_runner.h"
#include "switchyard/health/check_state.h"
#include "switchyard/health/fallback_policy.h"
#include "switchyard/health/health_check.h"
#include "switchyard/health/outlier_detector.h"

namespace switchyard::health {

class HealthMonitor {
public:
    HealthMonitor(boost::asio::io_context& context, control::ControlPlane& control);
    ~HealthMonitor();
    HealthMonitor(const HealthMonitor&) = delete;
    HealthMonitor& operator=(const HealthMonitor&) = delete;

    // Starts checking every backend and listens for published changes.
    void start();
    // Stops every check loop and the poll (shutdown).
    void stop();

private:
    // The backends of one service that have check loops, and the check they run.
    struct Checked {
        CheckRunner::CheckPtr check;
        std::vector<const routing::BackendState*> backends;
    };

    void logReport(const std::string& service, const CheckReport& report) const;
    void armFlush();
    void flushResults();
    void onPublished();
    void syncService(const control::ServiceEntry& service);
    void syncAll();
    void scheduleEvaluate();
    void evaluate();
    void evaluateService(const std::string& name);
    // Applies a fallback decision, then the panic flag that follows, to `s`;
    // logs and counts. True if `s` changed.
    bool settle(control::ServiceEntry& s, const FallbackDecision& d);
    void schedulePoll();
    std::chrono::milliseconds jitter(std::chrono::milliseconds upTo);

    boost::asio::io_context& context_;
    control::ControlPlane& control_;
    boost::asio::steady_timer pollTimer_;
    std::unique_ptr<CheckRunner> runner_;
    std::unordered_map<std::string, Checked> checked_;
    // Services whose entries changed since the last evaluate (all of them after a reload).
    std::vector<std::string> dirty_;
    bool dirtyAll_ = true;
    bool starting_ = false;   // the first sync: check loops start from the state's verdicts
    // What the poll looks at besides changed services: the workers' ejection
    // count last seen per service, and services with a backend ejected now.
    std::unordered_map<const routing::ServiceState*, uint64_t> tripsSeen_;
    std::unordered_set<std::string> ejecting_;
    boost::asio::steady_timer flushTimer_;
    bool flushArmed_ = false;
    std::unordered_map<std::string, FallbackPolicy> policies_;
    OutlierDetector outliers_;
    bool evaluatePosted_ = false;
    bool stopped_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    std::mt19937_64 random_{std::random_device{}()};
};

} // namespace switchyard::health
