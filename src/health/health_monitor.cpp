#include "switchyard/health/health_monitor.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include "switchyard/telemetry/logging.h"

namespace switchyard::health {
namespace {

namespace net = boost::asio;

constexpr auto kPollEvery = std::chrono::milliseconds(100);
// Results are folded into the state at most this often: one snapshot per batch.
constexpr auto kBatchEvery = std::chrono::milliseconds(25);
// The first checks of all backends are spread over at most this (or the interval).
constexpr auto kFirstCheckSpread = std::chrono::milliseconds(1000);

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

HealthMonitor::HealthMonitor(net::io_context& context, control::ControlPlane& control)
    : context_(context), control_(control), pollTimer_(context), flushTimer_(context) {
    std::weak_ptr<bool> alive = alive_;
    // Called on the runner's thread: the batch is taken on the control thread.
    runner_ = std::make_unique<CheckRunner>([this, alive] {
        net::post(context_, [this, alive] {
            if (auto a = alive.lock(); a && *a && !stopped_) armFlush();
        });
    });
}

HealthMonitor::~HealthMonitor() {
    stop();
    *alive_ = false;
}

void HealthMonitor::start() {
    std::weak_ptr<bool> alive = alive_;
    control_.onPublished([this, alive](const control::MasterState&) {
        if (auto a = alive.lock(); a && *a && !stopped_) onPublished();
    });
    runner_->start();
    starting_ = true;
    syncAll();
    starting_ = false;
    dirtyAll_ = false;
    schedulePoll();
    std::size_t checked = 0;
    for (const auto& [_, c] : checked_) checked += c.backends.size();
    telemetry::logger("health")->info("health checks started for {} backend(s)", checked);
}

void HealthMonitor::stop() {
    stopped_ = true;
    pollTimer_.cancel();
    flushTimer_.cancel();
    if (runner_) runner_->stop();
    checked_.clear();
}

std::chrono::milliseconds HealthMonitor::jitter(std::chrono::milliseconds upTo) {
    if (upTo.count() <= 0) return std::chrono::milliseconds(0);
    std::uniform_int_distribution<int64_t> d(0, upTo.count() - 1);
    return std::chrono::milliseconds(d(random_));
}

void HealthMonitor::syncService(const control::ServiceEntry& service) {
    Checked& had = checked_[service.config.name];
    if (!had.check || !(*had.check == service.config.health)) {
        // A reload changed the check: loops that stay use it from their next round.
        had.check = std::make_shared<const config::HealthConfig>(service.config.health);
        for (const routing::BackendState* backend : had.backends) runner_->update(backend, had.check);
    }
    const config::HealthConfig& check = *had.check;
    std::vector<const routing::BackendState*> wanted;
    for (const control::PoolEntry& pool : service.pools)
        for (const control::BackendEntry& b : pool.backends) {
            // Disabled = maintenance: not checked. Removed ones are on their way out.
            if (b.adminState == control::AdminState::Disabled || b.removing) continue;
            wanted.push_back(b.handle.get());
            if (std::find(had.backends.begin(), had.backends.end(), b.handle.get()) != had.backends.end()) continue;
            // At start, a backend already checked was checked by the previous generation (`upgrade`).
            runner_->add(b.handle, had.check, jitter(std::min(check.interval, kFirstCheckSpread)),
                         starting_ && b.checked ? std::optional<bool>(b.healthy) : std::nullopt);
        }
    for (const routing::BackendState* backend : had.backends)
        if (std::find(wanted.begin(), wanted.end(), backend) == wanted.end()) runner_->remove(backend);
    had.backends = std::move(wanted);
}

void HealthMonitor::syncAll() {
    const control::MasterState& state = control_.state();
    for (const control::ServiceEntry& service : state.services) syncService(service);
    // Services no longer configured: their loops end.
    for (auto it = checked_.begin(); it != checked_.end();) {
        if (state.find(it->first)) {
            ++it;
            continue;
        }
        for (const routing::BackendState* backend : it->second.backends) runner_->remove(backend);
        it = checked_.erase(it);
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

void HealthMonitor::logReport(const std::string& service, const CheckReport& r) const {
    const auto log = telemetry::logger("health");
    const routing::BackendState& b = *r.backend;
    const char* pool = config::toString(b.colour);
    if (r.result.localError) {
        log->warn("{}: check of backend {} skipped: {}", service, b.key, r.result.failure);
    } else if (r.change == CheckState::Change::WentDown) {
        if (r.first)
            log->warn("{}: backend {} (pool {}) is DOWN: its first check failed: {}", service, b.key, pool,
                      r.result.failure);
        else
            log->warn("{}: backend {} (pool {}) is DOWN after {} failed check(s): {}", service, b.key, pool,
                      r.failuresInARow, r.result.failure);
    } else if (r.change == CheckState::Change::WentUp) {
        log->info("{}: backend {} (pool {}) is UP after {} passed check(s)", service, b.key, pool, r.rise);
    } else if (!r.result.passed) {
        log->debug("{}: backend {} (pool {}) failed a check: {}", service, b.key, pool, r.result.failure);
    }
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
    const std::vector<CheckReport> reports = runner_->takeResults();
    const control::MasterState& state = control_.state();
    std::unordered_map<std::string, std::vector<const CheckReport*>> byService;
    std::vector<std::string> services;
    for (const CheckReport& r : reports) {
        const std::string& name = r.backend->service;
        logReport(name, r);
        if (r.result.localError) continue;
        // A result that changes nothing the state holds costs nothing more.
        const control::ServiceEntry* service = state.find(name);
        const control::BackendEntry* b = service ? findBackend(*service, r.backend.get()) : nullptr;
        if (!b) continue;
        const bool sameFailure = r.result.passed || b->lastFailure == r.result.failure;
        if (b->checked && b->healthy == r.healthy && sameFailure) continue;
        auto [it, inserted] = byService.try_emplace(name);
        if (inserted) services.push_back(name);
        it->second.push_back(&r);
    }
    if (services.empty()) return;
    const auto now = routing::Clock::now();
    control_.applyAutomatic(services, [&](control::ServiceEntry& s) {
        bool changed = false;
        for (const CheckReport* r : byService[s.config.name]) {
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
            if (!r->result.passed && b->lastFailure != r->result.failure) {
                b->lastFailure = r->result.failure;
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
