#pragma once

// The active check loops, on a thread of their own. A large configuration
// runs thousands of checks a second (40,000 backends every 5 s is 8,000);
// on the control thread they would queue admin commands and SIGTERM behind
// them. Here they only produce results: the control thread takes them in
// batches (HealthMonitor) and decides what they mean for routing.
//
// Thread-safe: add(), remove(), update() and takeResults() may be called from
// any thread; everything else happens on the runner's own thread.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

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

    // Starts checking `backend` with `check`, the first time after `firstDelay`.
    void add(routing::BackendHandle backend, CheckPtr check, std::chrono::milliseconds firstDelay);
    void remove(const routing::BackendState* backend);
    // A reload changed the check: the loop uses it from its next check on.
    void update(const routing::BackendState* backend, CheckPtr check);

    std::vector<CheckReport> takeResults();

private:
    struct Loop;
    boost::asio::awaitable<void> run(std::shared_ptr<Loop> loop);
    boost::asio::awaitable<bool> acquireSlot(const std::shared_ptr<Loop>& loop);
    void releaseSlot();

    boost::asio::io_context context_{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    std::thread thread_;
    std::function<void()> resultsWaiting_;
    // Runner thread only.
    std::unordered_map<const routing::BackendState*, std::shared_ptr<Loop>> loops_;
    std::size_t inFlight_ = 0;
    std::vector<std::weak_ptr<Loop>> waiting_;   // FIFO, oldest first
    std::size_t waitingHead_ = 0;
    // Shared with the taker.
    std::mutex resultsMutex_;
    std::vector<CheckReport> results_;
};

} // namespace switchyard::health
