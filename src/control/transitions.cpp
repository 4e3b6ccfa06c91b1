#include "switchyard/control/transitions.h"

#include <algorithm>

#include <fmt/format.h>

#include "switchyard/control/snapshot_builder.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::control {
namespace {

std::string describe(const config::Split& s) { return fmt::format("blue={} green={}", s.blue, s.green); }

BackendEntry* findBackend(ServiceEntry& s, config::Colour colour, const config::Endpoint& address,
                          Outcome& refusal) {
    BackendEntry* b = s.pool(colour).find(address);
    if (!b)
        refusal = Outcome::failure("no_such_backend", fmt::format("{} has no backend {} in pool {}", s.config.name,
                                                                  address.toString(), config::toString(colour)));
    return b;
}

// A split-changing command during a rollout: refused (rollout_active) unless
// forced, which aborts the rollout first.
Outcome yieldRollout(ServiceEntry& s, const ChangeGuard& guard, const char* command, const rollout::Now& now) {
    if (!s.rolloutActive()) return Outcome::success();
    rollout::Rollout& r = *s.rollout;
    if (!guard.force)
        return Outcome::failure("rollout_active",
                                fmt::format("{} has a rollout to {} in progress (step {}/{}, {}%, {}); use "
                                            "rollout-abort or promote, or add force to abort it with this {}",
                                            s.config.name, config::toString(r.target()), r.step + 1,
                                            r.plan.steps.size(), r.percent(), rollout::toString(r.phase), command));
    rollout::act(r, rollout::Action::Abort, now, fmt::format("aborted by a forced {}", command));
    applyRolloutSplit(s);
    telemetry::logger("rollout")->warn("{}: {}", s.config.name, r.reason);
    return Outcome::success();
}

} // namespace

void applyRolloutSplit(ServiceEntry& service) {
    const rollout::Rollout& r = *service.rollout;
    service.split = r.split();
    if (r.active() || r.phase == rollout::Phase::Promoted)
        service.rollbackSplit = r.startSplit;
    else
        service.rollbackSplit = r.startRollbackSplit;
}

namespace transitions {

Outcome checkTarget(const ServiceEntry& s, config::Colour colour, bool force) {
    if (force) return Outcome::success();
    const PoolEntry& pool = s.pool(colour);
    const char* name = config::toString(colour);
    if (pool.offline)
        return Outcome::failure("refused",
                                fmt::format("pool {} of {} is offline (use force to override)", name, s.config.name));
    if (pool.backends.empty())
        return Outcome::failure("refused",
                                fmt::format("pool {} of {} is empty (use force to override)", name, s.config.name));
    if (pool.routableBackends() == 0)
        return Outcome::failure("refused", fmt::format("pool {} of {} has no healthy enabled backend (use force to "
                                                       "override)",
                                                       name, s.config.name));
    return Outcome::success();
}

Outcome checkRoutable(const ServiceEntry& s, bool force) {
    const config::Split effective = s.effectiveSplit();
    uint32_t routable = 0;
    for (auto colour : config::kColours)
        if (s.pool(colour).routableBackends() > 0) routable += effective.weight(colour);
    if (routable == 0 && !force)
        return Outcome::failure("refused", fmt::format("the change would leave {} with no routable weight "
                                                       "(effective split {}; use force to override)",
                                                       s.config.name, describe(effective)));
    return Outcome::success();
}

Outcome split(ServiceEntry& s, config::Split split, const ChangeGuard& guard, const char* command,
              const rollout::Now& now) {
    if (split.blue == 0 && split.green == 0)
        return Outcome::failure("refused", "split blue=0 green=0 leaves no routable weight");
    const bool hadRollout = s.rolloutActive();
    if (auto o = yieldRollout(s, guard, command, now); !o.ok) return o;
    if (split == s.split) {
        // Setting the split it already has acknowledges a fallback (restore:
        // manual); a forced one that aborted a rollout changed that much.
        if (!s.fallback.active && !hadRollout) return Outcome::unchanged();
        s.fallback = {};
        return checkRoutable(s, guard.force);
    }
    for (auto colour : config::kColours)
        if (split.weight(colour) > s.split.weight(colour))
            if (auto o = checkTarget(s, colour, guard.force); !o.ok) return o;
    s.rollbackSplit = s.split;
    s.split = split;
    // An operator's split ends a fallback: they have seen it and chose.
    s.fallback = {};
    return checkRoutable(s, guard.force);
}

config::Split cutoverSplit(const ServiceEntry& s, config::Colour colour) {
    if (s.split.weight(config::other(colour)) == 0 && s.split.weight(colour) > 0) return s.split;
    config::Split split{0, 0};
    split.weight(colour) = 100;
    return split;
}

Outcome rollback(ServiceEntry& s, const ChangeGuard& guard, const rollout::Now& now) {
    if (s.rolloutActive()) {
        // Forced: aborting the rollout is the rollback (a whole rollout is one
        // event); a second rollback brings its last split back.
        const config::Split during = s.split;
        if (auto o = yieldRollout(s, guard, "rollback", now); !o.ok) return o;
        s.rollbackSplit = during;
        s.fallback = {};
        return checkRoutable(s, guard.force);
    }
    if (!s.rollbackSplit)
        return Outcome::failure("refused", fmt::format("{} has no earlier split to roll back to", s.config.name));
    const config::Split target = *s.rollbackSplit;
    for (auto colour : config::kColours)
        if (target.weight(colour) > s.split.weight(colour))
            if (auto o = checkTarget(s, colour, guard.force); !o.ok) return o;
    s.rollbackSplit = s.split;
    s.split = target;
    s.fallback = {};
    return checkRoutable(s, guard.force);
}

Outcome backendWeight(ServiceEntry& s, config::Colour colour, const config::Endpoint& address, uint32_t weight,
                      const ChangeGuard& guard) {
    Outcome refusal;
    BackendEntry* b = findBackend(s, colour, address, refusal);
    if (!b) return refusal;
    if (b->weight == weight) return Outcome::unchanged();
    b->weight = weight;
    return checkRoutable(s, guard.force);
}

Outcome backendAdminState(ServiceEntry& s, config::Colour colour, const config::Endpoint& address,
                          AdminState adminState, const ChangeGuard& guard, routing::TimePoint now) {
    Outcome refusal;
    BackendEntry* b = findBackend(s, colour, address, refusal);
    if (!b) return refusal;
    if (b->removing) return Outcome::failure("refused", fmt::format("backend {} is being removed", address.toString()));
    if (b->adminState == adminState) return Outcome::unchanged();
    if (adminState == AdminState::Enabled) markBackendReturned(*b, now);
    b->adminState = adminState;
    b->drainDeadline = adminState == AdminState::Enabled ? routing::kNoDeadline
                                                         : deadlineAfter(now, s.config.drainTimeout);
    // Maintenance: a disabled backend is not checked, so its health is unknown.
    if (adminState == AdminState::Disabled) b->checked = false;
    return checkRoutable(s, guard.force);
}

Outcome addBackend(ServiceEntry& s, config::Colour colour, const config::Endpoint& address, uint32_t weight,
                   const ChangeGuard&, routing::TimePoint now) {
    for (auto c : config::kColours) {
        if (BackendEntry* existing = s.pool(c).find(address)) {
            if (c == colour && existing->removing) {
                // Re-adding a backend that is still draining out: keep it.
                existing->removing = false;
                existing->drainDeadline = routing::kNoDeadline;
                existing->weight = weight;
                markBackendReturned(*existing, now);
                return Outcome::success();
            }
            return Outcome::failure("already_exists", fmt::format("{} already has backend {} in pool {}",
                                                                  s.config.name, address.toString(), config::toString(c)));
        }
    }
    BackendEntry entry = makeBackendEntry(s, colour, config::BackendConfig{address, weight});
    entry.addedAtRuntime = true;
    markBackendReturned(entry, now);
    s.pool(colour).backends.push_back(std::move(entry));
    return Outcome::success();
}

Outcome removeBackend(ServiceEntry& s, config::Colour colour, const config::Endpoint& address,
                      const ChangeGuard& guard, routing::TimePoint now) {
    Outcome refusal;
    BackendEntry* b = findBackend(s, colour, address, refusal);
    if (!b) return refusal;
    if (b->removing) return Outcome::unchanged();
    b->removing = true;
    b->drainDeadline = deadlineAfter(now, s.config.drainTimeout);
    return checkRoutable(s, guard.force);
}

Outcome poolOffline(ServiceEntry& s, config::Colour colour, bool offline, const ChangeGuard& guard) {
    PoolEntry& pool = s.pool(colour);
    if (pool.offline == offline) return Outcome::unchanged();
    pool.offline = offline;
    return checkRoutable(s, guard.force);
}

Outcome reset(ServiceEntry& s, const config::ServiceConfig& config, const ChangeGuard& guard,
              const rollout::Now& now) {
    if (auto o = yieldRollout(s, guard, "reset", now); !o.ok) return o;
    ServiceEntry fresh = makeServiceEntry(config);
    // Keep identities (and so connection counts) of backends that stay;
    // backends that only runtime changes had added drain out.
    for (auto colour : config::kColours) {
        auto& freshPool = fresh.pool(colour);
        auto& oldPool = s.pool(colour);
        for (auto& b : freshPool.backends) {
            if (const BackendEntry* old = oldPool.find(b.address)) {
                keepLiveFacts(b, *old);
            } else {
                b.handle = makeBackendEntry(s, colour, {b.address, b.configWeight}).handle;
                markBackendReturned(b, now.steady);
            }
        }
        for (auto& old : oldPool.backends)
            if (!freshPool.find(old.address)) {
                BackendEntry leaving = old;
                if (!leaving.removing) {
                    leaving.removing = true;
                    leaving.drainDeadline = deadlineAfter(now.steady, config.drainTimeout);
                }
                freshPool.backends.push_back(std::move(leaving));
            }
        freshPool.drainDeadline = oldPool.drainDeadline;
        freshPool.lastEffectiveWeight = oldPool.lastEffectiveWeight;
    }
    fresh.rollbackSplit = s.split == fresh.split ? s.rollbackSplit : std::optional<config::Split>(s.split);
    fresh.generation = s.generation;
    fresh.revision = s.revision;
    fresh.state = s.state;
    fresh.poolCounters = s.poolCounters;
    fresh.rollout = std::move(s.rollout);   // ended (or just aborted): its record stays for rollout-status
    fresh.panic = s.panic;
    s = std::move(fresh);
    return Outcome::success();
}

Outcome startRollout(ServiceEntry& s, const rollout::RolloutPlan& plan, const ChangeGuard& guard,
                     const rollout::Now& now) {
    const std::string& name = s.config.name;
    if (plan.steps.empty()) return Outcome::failure("bad_argument", "rollout: no steps");
    if (auto o = yieldRollout(s, guard, "rollout", now); !o.ok) return o;
    const config::Colour to = plan.to;
    const char* toName = config::toString(to);
    if (s.split.weight(config::other(to)) == 0 && s.split.weight(to) > 0 && !guard.force)
        return Outcome::failure("refused",
                                fmt::format("{} already sends all traffic to {}: nothing to roll out", name, toName));
    if (auto o = checkTarget(s, to, guard.force); !o.ok) return o;
    if (s.fallback.active && !guard.force)
        return Outcome::failure("refused", fmt::format("{} is in fallback away from pool {} ({}); settle it "
                                                       "first (use force to start anyway)",
                                                       name, config::toString(s.fallback.from), s.fallback.reason));
    // The id is the generation this change brings: it tells one rollout from the next.
    s.rollout = rollout::begin(s.generation + 1, plan, s.split, s.rollbackSplit, now);
    applyRolloutSplit(s);
    telemetry::logger("rollout")->info("{}: rollout to {} started at step 1/{} ({}%), hold {} ms", name, toName,
                                       plan.steps.size(), plan.steps.front(), plan.hold.count());
    return checkRoutable(s, guard.force);
}

Outcome rolloutAction(ServiceEntry& s, rollout::Action action, const ChangeGuard& guard, const rollout::Now& now) {
    const std::string& name = s.config.name;
    if (!s.rollout || !s.rollout->active())
        return Outcome::failure("no_rollout",
                                s.rollout ? fmt::format("{} has no rollout in progress (the last one {}: {})", name,
                                                        rollout::toString(s.rollout->phase), s.rollout->reason)
                                          : fmt::format("{} has no rollout in progress", name));
    if (action == rollout::Action::Promote)
        if (auto o = checkTarget(s, s.rollout->target(), guard.force); !o.ok) return o;
    if (auto refused = rollout::act(*s.rollout, action, now))
        return Outcome::failure("refused", fmt::format("{}: {}", name, *refused));
    applyRolloutSplit(s);
    telemetry::logger("rollout")->info("{}: {} ({})", name, rollout::toString(action),
                                       rollout::toString(s.rollout->phase));
    return checkRoutable(s, guard.force);
}

ServiceEntry reloaded(const ServiceEntry* old, const config::ServiceConfig& config, MergeReport& report,
                      routing::TimePoint now) {
    return withIntent(old, config, old ? overridesOf(*old) : Overrides{}, IntentSource::Running, report, now);
}

ServiceEntry withIntent(const ServiceEntry* old, const config::ServiceConfig& config, const Overrides& intent,
                        IntentSource source, MergeReport& report, routing::TimePoint now) {
    ServiceEntry service = makeServiceEntry(config);
    if (!old) {
        // A new service: nothing flowed yet, so no pool starts out draining.
        for (auto& pool : service.pools) pool.lastEffectiveWeight = service.effectiveSplit().weight(pool.colour);
        updatePoolDrains(service, now);
        return service;
    }
    service.state = old->state;
    service.poolCounters = old->poolCounters;
    for (auto colour : config::kColours)
        for (auto& b : service.pool(colour).backends) {
            if (const BackendEntry* ob = old->pool(colour).find(b.address)) {
                keepLiveFacts(b, *ob);
            } else {
                b.handle = makeBackendEntry(service, colour, {b.address, b.configWeight}).handle;
                // A backend the new config brings in joins with slow start.
                markBackendReturned(b, now);
            }
        }
    mergeOverrides(intent, service, report, now);
    for (auto colour : config::kColours) {
        PoolEntry& pool = service.pool(colour);
        const PoolEntry& oldPool = old->pool(colour);
        for (auto& b : pool.backends) {
            const BackendEntry* ob = oldPool.find(b.address);
            if (!ob) continue;
            // Backends added at runtime came back as new entries: they are the
            // same backends (open connections, health, ramp).
            if (b.addedAtRuntime && ob->addedAtRuntime) keepLiveFacts(b, *ob);
            // A backend still drained or disabled keeps its drain deadline.
            if (b.adminState != AdminState::Enabled && ob->adminState == b.adminState) b.drainDeadline = ob->drainDeadline;
            // Another member's drain, disable or remove drains here as it would have locally
            // (the merge's "nothing left to drain" is for a restart, not for a running member).
            const bool newlyOut = (b.adminState != AdminState::Enabled && ob->adminState == AdminState::Enabled) ||
                                  (b.removing && !ob->removing);
            if (source == IntentSource::Fleet && newlyOut) b.drainDeadline = deadlineAfter(now, service.config.drainTimeout);
        }
        pool.drainDeadline = oldPool.drainDeadline;
        pool.lastEffectiveWeight = oldPool.lastEffectiveWeight;
        // Backends the new config dropped drain out like a `remove`, and so
        // does one added at runtime that a `remove` was draining.
        for (const auto& ob : oldPool.backends)
            if (!pool.find(ob.address) && (!ob.addedAtRuntime || ob.removing)) {
                BackendEntry leaving = ob;
                if (!leaving.removing) {
                    leaving.removing = true;
                    leaving.drainDeadline = deadlineAfter(now, service.config.drainTimeout);
                }
                pool.backends.push_back(std::move(leaving));
            }
    }
    // The merge kept the rollout (the split was not replaced): keep its live window too.
    // (A fleet's intent carries the step another member took: that one wins.)
    if (source == IntentSource::Running && service.rollout && old->rollout && old->rollout->id == service.rollout->id)
        service.rollout = old->rollout;
    service.fallback = old->fallback;
    service.panic = old->panic;   // the health monitor re-decides it next turn
    service.revision = old->revision + 1;
    updatePoolDrains(service, now);
    return service;
}

bool expireRemovedBackends(ServiceEntry& s, routing::TimePoint now) {
    bool changed = false;
    for (auto& pool : s.pools)
        changed |= std::erase_if(pool.backends, [now, &pool](const BackendEntry& b) {
                       const bool gone = b.removing && b.drainDeadline <= now;
                       const bool listed = std::any_of(pool.removed.begin(), pool.removed.end(),
                                                       [&](const auto& r) { return r.address == b.address; });
                       if (gone && !b.addedAtRuntime && !listed) pool.removed.push_back({b.address, b.configWeight});
                       return gone;
                   }) > 0;
    return changed;
}

bool advanceRamps(ServiceEntry& s, routing::TimePoint now) {
    bool moving = false;
    for (auto& pool : s.pools)
        for (auto& b : pool.backends) {
            if (b.rampStart == kNoRamp) continue;
            moving |= s.config.slowStart.count() > 0 && b.takesNewConnections();
            if (!ramping(b, s.config.slowStart, now)) b.rampStart = kNoRamp;
        }
    return moving;
}

} // namespace transitions
} // namespace switchyard::control
