#include "switchyard/health/check_runner.h"

#include <cstring>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include "switchyard/telemetry/logging.h"

namespace switchyard::health {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

tcp::endpoint toEndpoint(const routing::BackendState& backend) {
    tcp::endpoint ep;
    std::memcpy(ep.data(), &backend.sockaddr, backend.sockaddrLen);
    ep.resize(backend.sockaddrLen);
    return ep;
}

std::chrono::milliseconds jitter(std::chrono::milliseconds upTo) {
    thread_local std::mt19937_64 random{std::random_device{}()};
    if (upTo.count() <= 0) return std::chrono::milliseconds(0);
    std::uniform_int_distribution<int64_t> d(0, upTo.count() - 1);
    return std::chrono::milliseconds(d(random));
}

} // namespace

struct CheckRunner::Target {
    Target(routing::BackendHandle b, CheckPtr c) : backend(std::move(b)), check(std::move(c)) {}
    routing::BackendHandle backend;
    CheckPtr check;   // shared by the backends of one service
    CheckState state;
    bool stopped = false;
};

CheckRunner::CheckRunner(std::function<void()> resultsWaiting)
    : work_(context_.get_executor()), resultsWaiting_(std::move(resultsWaiting)), wake_(context_) {}

CheckRunner::~CheckRunner() { stop(); }

void CheckRunner::start() {
    thread_ = std::thread([this] {
        for (;;) {
            try {
                context_.run();
                return;
            } catch (const std::exception& e) {
                telemetry::logger("health")->error("check runner: unexpected exception: {}", e.what());
            }
        }
    });
}

void CheckRunner::stop() {
    if (!thread_.joinable()) return;
    work_.reset();
    context_.stop();
    thread_.join();
}

void CheckRunner::add(routing::BackendHandle backend, CheckPtr check, std::chrono::milliseconds firstDelay,
                      std::optional<bool> known) {
    net::post(context_, [this, backend = std::move(backend), check = std::move(check), firstDelay, known]() mutable {
        const routing::BackendState* key = backend.get();
        if (targets_.contains(key)) return;
        auto target = std::make_shared<Target>(std::move(backend), std::move(check));
        if (known) target->state.assume(*known);
        targets_.emplace(key, target);
        schedule(std::move(target), Clock::now() + firstDelay);
    });
}

void CheckRunner::remove(const routing::BackendState* backend) {
    net::post(context_, [this, backend] {
        auto it = targets_.find(backend);
        if (it == targets_.end()) return;
        it->second->stopped = true;   // its queue entry is skipped; a check in flight reports nothing
        targets_.erase(it);
    });
}

void CheckRunner::update(const routing::BackendState* backend, CheckPtr check) {
    net::post(context_, [this, backend, check = std::move(check)]() mutable {
        if (auto it = targets_.find(backend); it != targets_.end()) it->second->check = std::move(check);
    });
}

std::vector<CheckReport> CheckRunner::takeResults() {
    std::lock_guard lock(resultsMutex_);
    return std::exchange(results_, {});
}

void CheckRunner::schedule(TargetPtr target, Clock::time_point at) {
    due_.push({at, std::move(target)});
    if (at < wakeAt_ && inFlight_ < kMaxInFlight) runDue();
}

void CheckRunner::runDue() {
    const auto now = Clock::now();
    while (!due_.empty() && due_.top().at <= now && inFlight_ < kMaxInFlight) {
        TargetPtr target = due_.top().target;
        due_.pop();
        if (target->stopped) continue;
        ++inFlight_;
        net::co_spawn(context_, checkOnce(std::move(target)), net::detached);
    }
    // Sleep until the next is due; with every place taken, the next check to end wakes this.
    if (due_.empty() || inFlight_ >= kMaxInFlight) return;
    const auto next = due_.top().at;
    if (next == wakeAt_) return;
    wakeAt_ = next;
    wake_.expires_at(next);
    wake_.async_wait([this, next](const boost::system::error_code& ec) {
        if (ec || wakeAt_ != next) return;   // re-armed for an earlier one meanwhile
        wakeAt_ = Clock::time_point::max();
        runDue();
    });
}

net::awaitable<void> CheckRunner::checkOnce(TargetPtr target) {
    const CheckPtr held = target->check;   // a reload may swap it meanwhile
    const config::HealthConfig& check = *held;
    const auto started = Clock::now();
    CheckResult result;
    try {
        result = co_await runCheck(toEndpoint(*target->backend), check, target->backend->key);
    } catch (const std::exception& e) {
        result.passed = false;
        result.failure = fmt::format("check failed to run: {}", e.what());
        result.localError = true;
    }
    --inFlight_;
    if (!target->stopped) {
        // A check that could not run for a reason of this host's says nothing about the backend.
        if (!result.localError)
            target->backend->checks.record(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started),
                result.kind ? &*result.kind : nullptr);
        CheckReport report;
        report.backend = target->backend;
        if (!result.localError) {
            report.first = !target->state.checked();
            report.change = target->state.record(result.passed, check.rise, check.fall);
        }
        report.healthy = target->state.healthy();
        report.failuresInARow = target->state.failuresInARow();
        report.rise = check.rise;
        report.result = std::move(result);
        bool wasEmpty = false;
        {
            std::lock_guard lock(resultsMutex_);
            wasEmpty = results_.empty();
            results_.push_back(std::move(report));
        }
        if (wasEmpty) resultsWaiting_();
        // Start to start, minus up to a tenth: never later than the interval, never in step.
        schedule(target, started + check.interval - jitter(check.interval / 10));
    }
    runDue();   // a place is free
}

} // namespace switchyard::health
