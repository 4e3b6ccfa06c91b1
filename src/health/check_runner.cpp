#include "switchyard/health/check_runner.h"

#include <cstring>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

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

struct CheckRunner::Loop {
    Loop(net::any_io_executor executor, routing::BackendHandle b, CheckPtr c)
        : backend(std::move(b)), check(std::move(c)), timer(std::move(executor)) {}
    routing::BackendHandle backend;
    CheckPtr check;   // shared by the loops of one service: memory per backend stays small
    CheckState state;
    net::steady_timer timer;
    bool stopped = false;
};

CheckRunner::CheckRunner(std::function<void()> resultsWaiting)
    : work_(context_.get_executor()), resultsWaiting_(std::move(resultsWaiting)) {}

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

void CheckRunner::add(routing::BackendHandle backend, CheckPtr check, std::chrono::milliseconds firstDelay) {
    net::post(context_, [this, backend = std::move(backend), check = std::move(check), firstDelay]() mutable {
        const routing::BackendState* key = backend.get();
        if (loops_.contains(key)) return;
        auto loop = std::make_shared<Loop>(context_.get_executor(), std::move(backend), std::move(check));
        loop->timer.expires_after(firstDelay);
        loops_.emplace(key, loop);
        net::co_spawn(context_, run(loop), [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                telemetry::logger("health")->error("check loop ended by an exception: {}", x.what());
            }
        });
    });
}

void CheckRunner::remove(const routing::BackendState* backend) {
    net::post(context_, [this, backend] {
        auto it = loops_.find(backend);
        if (it == loops_.end()) return;
        it->second->stopped = true;
        it->second->timer.cancel();
        loops_.erase(it);
    });
}

void CheckRunner::update(const routing::BackendState* backend, CheckPtr check) {
    net::post(context_, [this, backend, check = std::move(check)]() mutable {
        if (auto it = loops_.find(backend); it != loops_.end()) it->second->check = std::move(check);
    });
}

std::vector<CheckReport> CheckRunner::takeResults() {
    std::lock_guard lock(resultsMutex_);
    return std::exchange(results_, {});
}

net::awaitable<bool> CheckRunner::acquireSlot(const std::shared_ptr<Loop>& loop) {
    while (inFlight_ >= kMaxInFlight) {
        waiting_.push_back(loop);
        loop->timer.expires_at(std::chrono::steady_clock::time_point::max());
        co_await loop->timer.async_wait(net::as_tuple(net::use_awaitable));
        if (loop->stopped) co_return false;
    }
    ++inFlight_;
    co_return true;
}

void CheckRunner::releaseSlot() {
    --inFlight_;
    while (waitingHead_ < waiting_.size()) {
        auto next = waiting_[waitingHead_++].lock();
        if (next && !next->stopped) {
            next->timer.cancel();   // wakes it: it takes the place
            break;
        }
    }
    if (waitingHead_ == waiting_.size()) {
        waiting_.clear();
        waitingHead_ = 0;
    }
}

net::awaitable<void> CheckRunner::run(std::shared_ptr<Loop> loop) {
    for (;;) {
        co_await loop->timer.async_wait(net::as_tuple(net::use_awaitable));
        if (loop->stopped) co_return;
        if (!co_await acquireSlot(loop)) co_return;
        const CheckPtr held = loop->check;   // a reload may swap it meanwhile
        const config::HealthConfig& check = *held;
        const auto started = std::chrono::steady_clock::now();
        CheckResult result = co_await runCheck(toEndpoint(*loop->backend), check, loop->backend->key);
        releaseSlot();
        if (loop->stopped) co_return;
        // A check that could not run for a reason of this host's says nothing about the backend.
        if (!result.localError)
            loop->backend->checks.record(
                std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started),
                result.kind ? &*result.kind : nullptr);
        CheckReport report;
        report.backend = loop->backend;
        if (!result.localError) {
            // Out of fds or ports here: no verdict on the backend (like the data path).
            report.first = !loop->state.checked();
            report.change = loop->state.record(result.passed, check.rise, check.fall);
        }
        report.healthy = loop->state.healthy();
        report.failuresInARow = loop->state.failuresInARow();
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
        loop->timer.expires_at(started + check.interval - jitter(check.interval / 10));
    }
}

} // namespace switchyard::health
