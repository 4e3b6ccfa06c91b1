#include "switchyard/health/fallback_policy.h"

#include <fmt/format.h>

namespace switchyard::health {
namespace {

using config::Colour;

std::string describeMin(const config::MinHealthy& min) {
    return min.percent ? fmt::format("{}%", min.value) : fmt::format("{}", min.value);
}

std::string describePool(Colour c, const PoolHealth& h) {
    return fmt::format("pool {}: {} of {} backend(s) healthy", config::toString(c), h.healthy, h.members);
}

} // namespace

const char* toString(PoolCondition c) {
    switch (c) {
    case PoolCondition::Unknown: return "unknown";
    case PoolCondition::Healthy: return "healthy";
    case PoolCondition::Failed: return "failed";
    }
    return "unknown";
}

bool meetsMinHealthy(uint32_t healthy, uint32_t members, const config::MinHealthy& min) {
    if (members == 0) return false;   // an empty pool serves nobody
    if (min.percent) return uint64_t{healthy} * 100 >= uint64_t{min.value} * members;
    return healthy >= min.value;
}

PoolHealth assessPool(const control::ServiceEntry& service, Colour colour) {
    const control::PoolEntry& pool = service.pool(colour);
    PoolHealth h;
    h.offline = pool.offline;
    h.weight = pool.offline ? 0 : service.split.weight(colour);
    for (const control::BackendEntry& b : pool.backends) {
        if (b.adminState == control::AdminState::Disabled || b.removing) continue;
        ++h.members;
        if (!b.checked) ++h.unchecked;
        if (b.healthy && !b.handle->ejected.load(std::memory_order_relaxed)) ++h.healthy;
    }
    if (h.unchecked > 0)
        h.condition = PoolCondition::Unknown;
    else
        h.condition = meetsMinHealthy(h.healthy, h.members, service.config.fallback.minHealthy) ? PoolCondition::Healthy
                                                                                               : PoolCondition::Failed;
    return h;
}

FallbackDecision FallbackPolicy::evaluate(const control::ServiceEntry& service, routing::TimePoint now) {
    const PoolHealth pools[2] = {assessPool(service, Colour::Blue), assessPool(service, Colour::Green)};
    auto of = [&pools](Colour c) -> const PoolHealth& { return pools[config::index(c)]; };
    const auto& fb = service.config.fallback;
    FallbackDecision d;

    if (!service.fallback.active) {
        recoveredSince_.reset();
        for (Colour failed : config::kColours) {
            const PoolHealth& f = of(failed);
            const Colour target = config::other(failed);
            const PoolHealth& t = of(target);
            if (f.weight == 0 || f.condition != PoolCondition::Failed) continue;
            if (t.offline || t.condition == PoolCondition::Unknown) continue;
            const bool leastBad = t.condition == PoolCondition::Failed && f.healthy == 0 && t.healthy > 0;
            if (t.condition != PoolCondition::Healthy && !leastBad) continue;
            d.action = FallbackDecision::Action::Engage;
            d.from = failed;
            d.reason = fmt::format("{} (min_healthy {}); traffic moved to pool {}", describePool(failed, f),
                                   describeMin(fb.minHealthy), config::toString(target));
            if (leastBad)
                d.reason += fmt::format(" ({}: below min_healthy too, but the least bad)", describePool(target, t));
            return d;
        }
        return d;
    }

    const Colour failed = service.fallback.from;
    const Colour target = config::other(failed);
    const PoolHealth& f = of(failed);
    const PoolHealth& t = of(target);
    d.from = failed;
    if (f.weight == 0) {
        d.action = FallbackDecision::Action::Lift;
        d.reason = fmt::format("pool {} carries no weight in the split any more", config::toString(failed));
        return d;
    }
    if (t.offline) {
        d.action = FallbackDecision::Action::Lift;
        d.reason = fmt::format("pool {} went offline", config::toString(target));
        return d;
    }
    if (t.condition == PoolCondition::Failed &&
        (f.condition == PoolCondition::Healthy || (f.healthy > 0 && t.healthy == 0))) {
        d.action = FallbackDecision::Action::Lift;
        d.reason = fmt::format("{} while {}", describePool(target, t), describePool(failed, f));
        return d;
    }
    if (t.condition == PoolCondition::Failed && t.healthy == 0 && f.healthy == 0) {
        // Neither pool is better: the operator's split applies again, in panic mode.
        d.action = FallbackDecision::Action::Lift;
        d.reason = fmt::format("{} as well as {}", describePool(target, t), describePool(failed, f));
        return d;
    }
    if (f.condition != PoolCondition::Healthy) {
        recoveredSince_.reset();
        return d;
    }
    if (fb.restore != config::Restore::Auto) return d;   // manual: an operator's split ends it
    if (!recoveredSince_) recoveredSince_ = now;
    if (now - *recoveredSince_ >= fb.hold) {
        d.action = FallbackDecision::Action::Lift;
        d.reason = fmt::format("{} for the hold of {} (restore: auto)", describePool(failed, f),
                               config::formatDuration(fb.hold));
        recoveredSince_.reset();
    }
    return d;
}

bool needsPanic(const control::ServiceEntry& service) {
    const config::Split effective = service.effectiveSplit();
    bool anyWeight = false;
    bool anyEnabled = false;
    for (Colour c : config::kColours) {
        const control::PoolEntry& pool = service.pool(c);
        if (pool.offline || effective.weight(c) == 0) continue;
        anyWeight = true;
        for (const control::BackendEntry& b : pool.backends) {
            if (b.takesNewConnections() && !b.handle->ejected.load(std::memory_order_relaxed)) return false;
            if (b.takesNewConnectionsIgnoringHealth()) anyEnabled = true;
        }
    }
    return anyWeight && anyEnabled;
}

} // namespace switchyard::health
