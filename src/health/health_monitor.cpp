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
// Results are folded into the state at most this often: one snapshot per batch.
constexpr auto kBatchEvery = std::chrono::milliseconds(25);
// Checks running at once; more wait for a place (a storm of 20,000 checks
// must not take every descriptor the daemon has).
constexpr std::size_t kMaxChecksInFlight = 512;
// The first checks of all backends are spread over at most this (or the interval).
constexpr auto kFirstCheckSpread = std::chrono::milliseconds(1000);

tcp::endpoint toEndpoint(const routing::BackendState& backend) {
    tcp::endpoint ep;
    std::memcpy(ep.data(), &backend.sockaddr, backend.sockaddrLen);
    ep.resize(backend.sockaddrLen);
    return ep;
}

template <class Entry>   // ServiceEntry or const ServiceEntry
auto findBackend(Entry& service, const routing::BackendState* handle) -> decltype(&service.pools[0].backends[0]) {
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
    : context_(context), control_(control), pollTimer_(context), flushTimer_(context) {}

HealthMonitor::~HealthMonitor() {
    stop();
    *alive_ = false;
}

void HealthMonitor::start() {
    std::weak_ptr<bool> alive = alive_;
    control_.onPublished([this, alive](const control::MasterState&) {
        if (auto a = alive.lock(); a && *a && !stopped_) onPublished();
    });
    syncAll();
    dirtyAll_ = false;
    schedulePoll();
    telemetry::logger("health")->info("health checks started for {} backend(s)", checkers_.size());
}

void HealthMonitor::stop() {
    stopped_ = true;
    pollTimer_.cancel();
    flushTimer_.cancel();
    waitingForSlot_.clear();
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

void HealthMonitor::syncService(const control::ServiceEntry& service) {
    const auto log = telemetry::logger("health");
    std::vector<const routing::BackendState*> wanted;
    for (const control::PoolEntry& pool : service.pools) {
        for (const control::BackendEntry& b : pool.backends) {
            // Disabled = maintenance: not checked. Removed ones are on their way out.
            if (b.adminState == control::AdminState::Disabled || b.removing) continue;
            wanted.push_back(b.handle.get());
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
    auto& had = checkedByService_[service.config.name];
    for (const routing::BackendState* backend : had) {
        if (std::find(wanted.begin(), wanted.end(), backend) != wanted.end()) continue;
        if (auto it = checkers_.find(backend); it != checkers_.end()) {
            it->second->stopped = true;
            it->second->timer.cancel();
            checkers_.erase(it);
        }
    }
    had = std::move(wanted);
}

void HealthMonitor::syncAll() {
    const control::MasterState& state = control_.state();
    for (const control::ServiceEntry& service : state.services) syncService(service);
    // Services no longer configured: their loops end.
    for (auto it = checkedByService_.begin(); it != checkedByService_.end();) {
        if (state.find(it->first)) {
            ++it;
            continue;
        }
        for (const routing::BackendState* backend : it->second)
            if (auto c = checkers_.find(backend); c != checkers_.end()) {
                c->second->stopped = true;
                c->second->timer.cancel();
                checkers_.erase(c);
            }
        it = checkedByService_.erase(it);
    }
    outliers_.dropGone();
}

void HealthMonitor::onPublished() {
    // Never re-enter the control plane from inside its publish: note what
    // changed, decide on the next turn.
    const control::ChangeSet& changes = control_.lastChanges();
    if (changes.all) {
        dirtyAll_ = true;
    } else if (!dirtyAll_) {
        const control::MasterState& state = control_.state();
        for (std::size_t i : changes.services) dirty_.push_back(state.services[i].config.name);
    }
    scheduleEvaluate();
}

net::awaitable<bool> HealthMonitor::acquireCheckSlot(std::shared_ptr<Checker> checker) {
    while (checksInFlight_ >= kMaxChecksInFlight) {
        waitingForSlot_.push_back(checker);
        checker->timer.expires_at(std::chrono::steady_clock::time_point::max());
        co_await checker->timer.async_wait(net::as_tuple(net::use_awaitable));
        if (checker->stopped || stopped_) co_return false;
    }
    ++checksInFlight_;
    co_return true;
}

void HealthMonitor::releaseCheckSlot() {
    --checksInFlight_;
    while (!waitingForSlot_.empty()) {
        auto next = waitingForSlot_.front().lock();
        waitingForSlot_.pop_front();
        if (next && !next->stopped) {
            next->timer.cancel();   // wakes it: it takes the place
            return;
        }
    }
}

net::awaitable<void> HealthMonitor::checkLoop(std::shared_ptr<Checker> checker) {
    for (;;) {
        co_await checker->timer.async_wait(net::as_tuple(net::use_awaitable));
        if (checker->stopped) co_return;
        const control::ServiceEntry* service = control_.state().find(checker->service);
        if (!service) co_return;
        const config::HealthConfig check = service->config.health;
        if (!co_await acquireCheckSlot(checker)) co_return;
        const auto started = std::chrono::steady_clock::now();
        const CheckResult result = co_await runCheck(toEndpoint(*checker->backend), check, checker->backend->key);
        releaseCheckSlot();
        if (checker->stopped) co_return;
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
    // A result that changes nothing the state holds costs nothing more.
    if (const control::BackendEntry* b = findBackend(*service, checker.backend.get())) {
        const bool sameFailure = result.passed || b->lastFailure == result.failure;
        if (b->checked && b->healthy == checker.state.healthy() && sameFailure) return;
    }
    pending_.push_back({checker.service, checker.backend, checker.state.healthy(),
                        result.passed ? std::string() : result.failure, change});
    armFlush();
}

void HealthMonitor::armFlush() {
    if (flushArmed_) return;
    flushArmed_ = true;
    std::weak_ptr<bool> alive = alive_;
    // Results that arrive within one batch interval become one snapshot.
    flushTimer_.expires_after(kBatchEvery);
    flushTimer_.async_wait([this, alive](const boost::system::error_code& ec) {
        if (auto a = alive.lock(); !a || !*a) return;
        flushArmed_ = false;
        if (!ec && !stopped_) flushResults();
    });
}

void HealthMonitor::flushResults() {
    std::vector<PendingResult> results = std::move(pending_);
    pending_.clear();
    std::unordered_map<std::string, std::vector<const PendingResult*>> byService;
    std::vector<std::string> services;
    for (const auto& r : results) {
        auto [it, inserted] = byService.try_emplace(r.service);
        if (inserted) services.push_back(r.service);
        it->second.push_back(&r);
    }
    const auto now = routing::Clock::now();
    control_.applyAutomatic(services, [&](control::ServiceEntry& s) {
        bool changed = false;
        for (const PendingResult* r : byService[s.config.name]) {
            control::BackendEntry* b = findBackend(s, r->backend.get());
            if (!b || b->adminState == control::AdminState::Disabled) continue;
            if (!b->checked) {
                b->checked = true;
                changed = true;
            }
            if (b->healthy != r->healthy) {
                b->healthy = r->healthy;
                if (r->healthy) control::markBackendReturned(*b, now);
                changed = true;
            }
            if (!r->failure.empty() && b->lastFailure != r->failure) {
                b->lastFailure = r->failure;
                changed = true;
            }
        }
        // Fallback and panic follow in the same snapshot as the flips that cause them.
        const control::FallbackState fallbackBefore = s.fallback;
        const bool settled = settle(s, policies_[s.config.name].evaluate(s, now));
        if (settled && (s.fallback.active != fallbackBefore.active || s.fallback.from != fallbackBefore.from))
            return control::Effect::PublishAndSave;
        return changed || settled ? control::Effect::Publish : control::Effect::None;
    }, "health check");
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
    const control::MasterState& state = control_.state();
    const bool all = dirtyAll_;
    if (all) {
        syncAll();
        std::erase_if(policies_, [&state](const auto& p) { return !state.find(p.first); });
        std::erase_if(ejecting_, [&state](const auto& name) { return !state.find(name); });
        tripsSeen_.clear();
    } else {
        for (const auto& name : dirty_)
            if (const control::ServiceEntry* s = state.find(name)) syncService(*s);
    }
    // Which services need a look (cost follows what changed): those whose
    // entry changed, those in fallback (restore: auto waits out its hold),
    // those where a worker tripped an ejection, and those with an ejection to end.
    std::vector<std::string> names;
    std::unordered_set<std::string> changed(dirty_.begin(), dirty_.end());
    for (const control::ServiceEntry& s : state.services) {
        bool look = all || changed.contains(s.config.name) || s.fallback.active || ejecting_.contains(s.config.name);
        if (s.state) {
            const uint64_t trips = s.state->outlierTrips.load(std::memory_order_relaxed);
            auto [seen, inserted] = tripsSeen_.try_emplace(s.state.get(), trips);
            if (!inserted && seen->second != trips) {
                seen->second = trips;
                look = true;
            }
        }
        if (look) names.push_back(s.config.name);
    }
    dirtyAll_ = false;
    dirty_.clear();
    for (const auto& name : names) evaluateService(name);
}

void HealthMonitor::evaluateService(const std::string& name) {
    const control::ServiceEntry* service = control_.state().find(name);
    if (!service) return;
    const auto log = telemetry::logger("health");
    const auto now = routing::Clock::now();

    const std::vector<OutlierEvent> events = outliers_.poll(*service, now);
    if (outliers_.anyEjected(*service)) ejecting_.insert(name);
    else ejecting_.erase(name);
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
        const bool fallbackBefore = s.fallback.active;
        settle(s, d);
        // Ejections live in the backend handles; publishing still moves `revision`
        // so that observers see the change.
        return s.fallback.active != fallbackBefore ? control::Effect::PublishAndSave : control::Effect::Publish;
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
