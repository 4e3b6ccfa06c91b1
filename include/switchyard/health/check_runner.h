#pragma once

// The active checks, on a thread of their own. A large configuration runs
// thousands of checks a second (40,000 backends every 5 s is 8,000); on the
// control thread they would queue admin commands and SIGTERM behind them.
// Here they only produce results: the control thread takes them in batches
// (HealthMonitor) and decides what they mean for routing.
//
// A backend between two checks is a small record in a queue ordered by when
// its next check is due, not a coroutine and a timer of its own: memory per
// backend stays small, and only checks in flight (at most kMaxInFlight) hold
// a socket and a coroutine.
//
// Thread-safe: add(), remove(), update() and takeResults() may be called from
// any thread; everything else happens on the runner's own thread.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "switchyard/config/config.h"
#include "switchyard/health/check_state.h"
#include "switchyard/health/health_check.h"
#include "switchyard/routing/backend_state.h"

namespace switchyard::health {

// One check's outcome, with the rise/fall verdict it led to.
struct CheckReport {
    routing::BackendHandle backend;
    CheckResult result;
    CheckState::Change change = CheckState::Change::None;
    bool healthy = true;          // after this result
    bool first = false;           // the backend's first result
    uint32_t failuresInARow = 0;
    uint32_t rise = 0;            // the check's rise (for the log line of a backend that came back)
};

class CheckRunner {
public:
    using CheckPtr = std::shared_ptr<const config::HealthConfig>;

    // Checks running at once; more wait for a place (a storm must not take
    // every descriptor the data path and the admin socket need).
    static constexpr std::size_t kMaxInFlight = 512;

    // `resultsWaiting` is called on the runner's thread when a result lands in
    // an empty queue: the owner schedules a takeResults().
    explicit CheckRunner(std::function<void()> resultsWaiting);
    ~CheckRunner();
    CheckRunner(const CheckRunner&) = delete;
    CheckRunner& operator=(const CheckRunner&) = delete;

    void start();
    // Ends every loop and joins the thread; results not taken are dropped.
    void stop();

    // Starts checking `backend` with `check`, the first time after `firstDelay`,
    // from the verdict `known` if one is (CheckState::assume).
    void add(routing::BackendHandle backend, CheckPtr check, std::chrono::milliseconds firstDelay,
             std::optional<bool> known = std::nullopt);
    void remove(const routing::BackendState* backend);
    // A reload changed the check: the loop uses it from its next check on.
    void update(const routing::BackendState* backend, CheckPtr check);

    std::vector<CheckReport> takeResults();

private:
    using Clock = std::chrono::steady_clock;
    struct Target;
    using TargetPtr = std::shared_ptr<Target>;
    struct Due {
        Clock::time_point at;
        TargetPtr target;
        bool operator>(const Due& o) const { return at > o.at; }
    };

    void schedule(TargetPtr target, Clock::time_point at);
    // Starts every check that is due while places are free, then sleeps until the next.
    void runDue();
    boost::asio::awaitable<void> checkOnce(TargetPtr target);

    boost::asio::io_context context_{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    std::thread thread_;
    std::function<void()> resultsWaiting_;
    // Runner thread only.
    std::unordered_map<const routing::BackendState*, TargetPtr> targets_;
    std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
    boost::asio::steady_timer wake_;
    Clock::time_point wakeAt_ = Clock::time_point::max();
    std::size_t inFlight_ = 0;
    // Shared with the taker.
    std::mutex resultsMutex_;
    std::vector<CheckReport> results_;
};

} // namespace switchyard::health
