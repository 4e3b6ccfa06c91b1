#include "switchyard/health/health_monitor.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "switchyard/telemetry/logging.h"

namespace switchyard::health {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr auto kPollEvery = std::chrono::milliseconds(100);
// The first checks of all backends are spread over at most this (or the interval).
constexpr auto kFirstCheckSpread = std::chrono::milliseconds(1000);

tcp::endpoint toEndpoint(const routing::BackendState& backend) {
    tcp::endpoint ep;
    std::memcpy(ep.data(), &backend.sockaddr, backend.sockaddrLen);
    ep.resize(backend.sockaddrLen);
    return ep;
}

control::BackendEntry* findBackend(control::ServiceEntry& service, const routing::BackendState* handle) {
    for (auto& pool : service.pools)
        for (auto& b : pool.backends)
            if (b.handle.get() == handle) return &b;
    return nullptr;
}

int64_t unixNowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string formatMs(std::chrono::milliseconds d) { return config::formatDuration(d); }

} // namespace

struct HealthMonitor::Checker {
    explicit Checker(net::any_io_executor executor) : timer(std::move(executor)) {}
    std::string service;
    config::Colour colour = config::Colour::Blue;
    routing::BackendHandle backend;
    CheckState state;
    net::steady_timer timer;
    bool stopped = false;
};

HealthMonitor::HealthMonitor(net::io_context& context, control::ControlPlane& control)
    : context_(context), control_(control), pollTimer_(context) {}

HealthMonitor::~HealthMonitor() {
    stop();
    *alive_ = false;
}

void HealthMonitor::start() {
    std::weak_ptr<bool> alive = alive_;
    control_.onPublished([this, alive](const control::MasterState&) {
        // Never re-enter the control plane from inside its publish: decide on the next turn.
        if (auto a = alive.lock(); a && *a && !stopped_) scheduleEvaluate();
    });
    syncCheckers();
    schedulePoll();
    telemetry::logger("health")->info("health checks started for {} backend(s)", checkers_.size());
}

void HealthMonitor::stop() {
    stopped_ = true;
    pollTimer_.cancel();
    for (auto& [_, checker] : checkers_) {
        checker->stopped = true;
        checker->timer.cancel();
    }
    checkers_.clear();
}

std::chrono::milliseconds HealthMonitor::jitter(std::chrono::milliseconds upTo) {
    if (upTo.count() <= 0) return std::chrono::milliseconds(0);
    std::uniform_int_distribution<int64_t> d(0, upTo.count() - 1);
    return std::chrono::milliseconds(d(random_));
}

void HealthMonitor::syncCheckers() {
    const auto log = telemetry::logger("health");
    std::unordered_set<const routing::BackendState*> wanted;
    std::vector<const routing::BackendState*> all;
    for (const control::ServiceEntry& service : control_.state().services) {
        for (const control::PoolEntry& pool : service.pools) {
            for (const control::BackendEntry& b : pool.backends) {
                all.push_back(b.handle.get());
                // Disabled = maintenance: not checked. Removed ones are on their way out.
                if (b.adminState == control::AdminState::Disabled || b.removing) continue;
                wanted.insert(b.handle.get());
                if (checkers_.contains(b.handle.get())) continue;
                auto checker = std::make_shared<Checker>(context_.get_executor());
                checker->service = service.config.name;
                checker->colour = pool.colour;
                checker->backend = b.handle;
                checker->timer.expires_after(jitter(std::min(service.config.health.interval, kFirstCheckSpread)));
                checkers_.emplace(b.handle.get(), checker);
                log->debug("{}: checking backend {} (pool {}) every {}", service.config.name, b.handle->key,
                           config::toString(pool.colour), formatMs(service.config.health.interval));
                net::co_spawn(context_, checkLoop(checker), [](std::exception_ptr e) {
                    if (!e) return;
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& x) {
                        telemetry::logger("health")->error("check loop ended by an exception: {}", x.what());
                    }
                });
            }
        }
    }
    std::erase_if(checkers_, [&wanted](auto& entry) {
        if (wanted.contains(entry.first)) return false;
        entry.second->stopped = true;
        entry.second->timer.cancel();
        return true;
    });
    outliers_.retain(all);
}

net::awaitable<void> HealthMonitor::checkLoop(std::shared_ptr<Checker> checker) {
    for (;;) {
        co_await checker->timer.async_wait(net::as_tuple(net::use_awaitable));
        if (checker->stopped) co_return;
        const control::ServiceEntry* service = control_.state().find(checker->service);
        if (!service) co_return;
        const config::HealthConfig check = service->config.health;
        const auto started = std::chrono::steady_clock::now();
        const CheckResult result = co_await runCheck(toEndpoint(*checker->backend), check, checker->backend->key);
        if (checker->stopped) co_return;
        // A check that could not run for a reason of this host's says nothing about the backend.
        if (!result.localError)
            checker->backend->checks.record(
                std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started),
                result.kind ? &*result.kind : nullptr);
        onResult(*checker, result);
        // Start to start, minus up to a tenth: never later than the interval, never in step.
        checker->timer.expires_at(started + check.interval - jitter(check.interval / 10));
    }
}

void HealthMonitor::onResult(Checker& checker, const CheckResult& result) {
    const control::ServiceEntry* service = control_.state().find(checker.service);
    if (!service) return;
    const config::HealthConfig& h = service->config.health;
    if (result.localError) {
        // Out of fds or ports here: no verdict on the backend (like the data path).
        telemetry::logger("health")->warn("{}: check of backend {} skipped: {}", checker.service,
                                          checker.backend->key, result.failure);
        return;
    }
    const bool first = !checker.state.checked();
    const auto change = checker.state.record(result.passed, h.rise, h.fall);
    const auto log = telemetry::logger("health");
    const char* pool = config::toString(checker.colour);
    if (change == CheckState::Change::WentDown) {
        if (first)
            log->warn("{}: backend {} (pool {}) is DOWN: its first check failed: {}", checker.service,
                      checker.backend->key, pool, result.failure);
        else
            log->warn("{}: backend {} (pool {}) is DOWN after {} failed check(s): {}", checker.service,
                      checker.backend->key, pool, checker.state.failuresInARow(), result.failure);
    } else if (change == CheckState::Change::WentUp) {
        log->info("{}: backend {} (pool {}) is UP after {} passed check(s)", checker.service, checker.backend->key,
                  pool, h.rise);
    } else if (!result.passed) {
        log->debug("{}: backend {} (pool {}) failed a check: {}", checker.service, checker.backend->key, pool,
                   result.failure);
    }
    pending_.push_back({checker.service, checker.backend, checker.state.healthy(),
                        result.passed ? std::string() : result.failure, change});
    if (!flushPosted_) {
        flushPosted_ = true;
        std::weak_ptr<bool> alive = alive_;
        // Results that arrive together become one snapshot.
        net::post(context_, [this, alive] {
            if (auto a = alive.lock(); a && *a) flushResults();
        });
    }
}

void HealthMonitor::flushResults() {
    flushPosted_ = false;
    std::vector<PendingResult> results = std::move(pending_);
    pending_.clear();
    std::vector<std::string> services;
    for (const auto& r : results)
        if (std::find(services.begin(), services.end(), r.service) == services.end()) services.push_back(r.service);
    const auto now = routing::Clock::now();
    for (const auto& name : services) {
        control_.applyAutomatic(name, [&](control::ServiceEntry& s) {
            bool changed = false;
            for (const auto& r : results) {
                if (r.service != name) continue;
                control::BackendEntry* b = findBackend(s, r.backend.get());
                if (!b || b->adminState == control::AdminState::Disabled) continue;
                if (!b->checked) {
                    b->checked = true;
                    changed = true;
                }
                if (b->healthy != r.healthy) {
                    b->healthy = r.healthy;
                    if (r.healthy) control::markBackendReturned(*b, now);
                    changed = true;
                }
                if (!r.failure.empty() && b->lastFailure != r.failure) {
                    b->lastFailure = r.failure;
                    changed = true;
                }
            }
            // Fallback and panic follow in the same snapshot as the flips that cause them.
            changed |= settle(s, policies_[name].evaluate(s, now));
            return changed;
        }, "health check");
    }
}

void HealthMonitor::scheduleEvaluate() {
    if (evaluatePosted_) return;
    evaluatePosted_ = true;
    std::weak_ptr<bool> alive = alive_;
    net::post(context_, [this, alive] {
        if (auto a = alive.lock(); a && *a && !stopped_) evaluate();
    });
}

void HealthMonitor::schedulePoll() {
    pollTimer_.expires_after(kPollEvery);
    pollTimer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopped_) return;
        evaluate();
        schedulePoll();
    });
}

void HealthMonitor::evaluate() {
    evaluatePosted_ = false;
    syncCheckers();
    std::vector<std::string> names;
    for (const auto& s : control_.state().services) names.push_back(s.config.name);
    std::erase_if(policies_, [&names](const auto& p) {
        return std::find(names.begin(), names.end(), p.first) == names.end();
    });
    for (const auto& name : names) evaluateService(name);
}

void HealthMonitor::evaluateService(const std::string& name) {
    const control::ServiceEntry* service = control_.state().find(name);
    if (!service) return;
    const auto log = telemetry::logger("health");
    const auto now = routing::Clock::now();

    const std::vector<OutlierEvent> events = outliers_.poll(*service, now);
    bool outliersChanged = false;
    std::vector<const routing::BackendState*> returned;
    for (const auto& e : events) {
        const auto& b = *e.backend;
        switch (e.kind) {
        case OutlierEvent::Kind::Ejected:
            outliersChanged = true;
            log->warn("{}: backend {} (pool {}) EJECTED for {} after {} consecutive failure(s) on real traffic "
                      "(ejection #{})",
                      name, b.key, config::toString(b.colour), formatMs(e.duration),
                      service->config.outlierDetection.consecutiveFailures, e.ejections);
            break;
        case OutlierEvent::Kind::Returned:
            outliersChanged = true;
            returned.push_back(e.backend.get());
            log->info("{}: backend {} (pool {}) is back from its outlier ejection", name, b.key,
                      config::toString(b.colour));
            break;
        case OutlierEvent::Kind::Refused:
            log->info("{}: backend {} (pool {}) not ejected: max_ejection_percent {} of its pool already ejected",
                      name, b.key, config::toString(b.colour), service->config.outlierDetection.maxEjectionPercent);
            break;
        }
    }

    const FallbackDecision d = policies_[name].evaluate(*service, now);
    if (!outliersChanged && d.action == FallbackDecision::Action::Keep && needsPanic(*service) == service->panic)
        return;
    const char* why = d.action != FallbackDecision::Action::Keep ? "fallback"
                      : outliersChanged                           ? "outlier ejection"
                                                                  : "panic mode";
    control_.applyAutomatic(name, [&](control::ServiceEntry& s) {
        for (const auto* handle : returned)
            if (control::BackendEntry* b = findBackend(s, handle)) control::markBackendReturned(*b, now);
        settle(s, d);
        // Ejections live in the backend handles; publishing still moves `revision`
        // so that observers see the change.
        return true;
    }, why);
}

bool HealthMonitor::settle(control::ServiceEntry& s, const FallbackDecision& d) {
    const auto log = telemetry::logger("health");
    const std::string& name = s.config.name;
    bool changed = false;
    if (d.action == FallbackDecision::Action::Engage) {
        log->warn("{}: FALLBACK from pool {} to pool {}: {}", name, config::toString(d.from),
                  config::toString(config::other(d.from)), d.reason);
        s.fallback = {true, d.from, d.reason, unixNowMs()};
        s.state->fallbacks.fetch_add(1, std::memory_order_relaxed);
        changed = true;
    } else if (d.action == FallbackDecision::Action::Lift) {
        log->warn("{}: fallback from pool {} lifted, the split applies again: {}", name,
                  config::toString(s.fallback.from), d.reason);
        s.fallback = {};
        changed = true;
    }
    // In the same snapshot as the change that causes it, so that no connection
    // meets a service with weight but nothing to route to.
    const bool panic = needsPanic(s);
    if (panic && !s.panic)
        log->error("{}: PANIC MODE: no pool that carries traffic has a healthy backend; routing to every enabled "
                   "backend regardless of health",
                   name);
    else if (!panic && s.panic)
        log->warn("{}: panic mode over: a pool that carries traffic has healthy backends again", name);
    changed |= panic != s.panic;
    s.panic = panic;
    return changed;
}

} // namespace switchyard::health
