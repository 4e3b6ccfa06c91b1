#include "switchyard/control/overrides.h"

#include <algorithm>

#include <fmt/format.h>

namespace switchyard::control {
namespace {

bool differsFromConfig(const BackendEntry& b) {
    return b.weight != b.configWeight || b.adminState != AdminState::Enabled || b.addedAtRuntime || b.removing;
}

void mergePool(const PoolOverrides& saved, ServiceEntry& s, config::Colour colour, MergeReport& report,
               routing::TimePoint now) {
    const std::string& name = s.config.name;
    PoolEntry& pool = s.pool(colour);
    const char* cname = config::toString(colour);
    if (saved.offline) {
        pool.offline = true;
        report.kept.push_back(fmt::format("{}: pool {} offline", name, cname));
    }
    const auto removeFromPool = [&](const config::Endpoint& address, uint32_t configWeight) {
        const bool inConfig =
            std::erase_if(pool.backends, [&](const BackendEntry& b) { return b.address == address; }) > 0;
        const bool listed = std::any_of(pool.removed.begin(), pool.removed.end(),
                                        [&](const config::BackendConfig& r) { return r.address == address; });
        if (inConfig && !listed) pool.removed.push_back({address, configWeight});
        return inConfig;
    };
    for (const auto& r : saved.removed)
        if (removeFromPool(r.address, r.weight))
            report.kept.push_back(fmt::format("{}: {} backend {} removed", name, cname, r.address.toString()));
    for (const BackendOverride& b : saved.backends) {
        if (b.removing) {
            // It was draining out when the state was taken: finish the removal.
            if (!b.added) removeFromPool(b.address, b.configWeight);
            continue;
        }
        BackendEntry* entry = pool.find(b.address);
        if (b.added) {
            if (entry) {
                report.replaced.push_back(fmt::format("{}: {} backend {} added at runtime is now in the config", name,
                                                      cname, b.address.toString()));
            } else {
                BackendEntry e = makeBackendEntry(s, colour, config::BackendConfig{b.address, b.weight});
                e.addedAtRuntime = true;
                e.adminState = b.adminState;
                pool.backends.push_back(std::move(e));
                report.kept.push_back(fmt::format("{}: {} backend {} added", name, cname, b.address.toString()));
            }
            continue;
        }
        if (!entry) {
            report.replaced.push_back(
                fmt::format("{}: {} backend {} (no longer in the config)", name, cname, b.address.toString()));
            continue;
        }
        if (b.configWeight == entry->configWeight) {
            if (b.weight != entry->weight)
                report.kept.push_back(
                    fmt::format("{}: {} backend {} weight {}", name, cname, b.address.toString(), b.weight));
            entry->weight = b.weight;
        } else if (b.weight != b.configWeight) {
            report.replaced.push_back(fmt::format("{}: {} backend {} weight (config changed to {})", name, cname,
                                                  b.address.toString(), entry->configWeight));
        }
        if (b.adminState != AdminState::Enabled) {
            entry->adminState = b.adminState;
            entry->drainDeadline = now;
            report.kept.push_back(
                fmt::format("{}: {} backend {} {}", name, cname, b.address.toString(), toString(b.adminState)));
        }
    }
}

} // namespace

bool Overrides::empty() const {
    if (generation > 1 || !(split == configSplit) || rollbackSplit || fallback || rollout) return false;
    for (const auto& p : pools)
        if (p.offline || !p.backends.empty() || !p.removed.empty()) return false;
    return true;
}

Overrides overridesOf(const ServiceEntry& s) {
    Overrides o;
    o.generation = s.generation;
    o.split = s.split;
    o.configSplit = s.config.split;
    o.rollbackSplit = s.rollbackSplit;
    if (s.fallback.active) o.fallback = s.fallback;
    for (auto colour : config::kColours) {
        const PoolEntry& pool = s.pool(colour);
        PoolOverrides& out = o.pools[config::index(colour)];
        out.offline = pool.offline;
        out.removed = pool.removed;
        for (const BackendEntry& b : pool.backends)
            if (differsFromConfig(b))
                out.backends.push_back({b.address, b.weight, b.configWeight, b.adminState, b.addedAtRuntime, b.removing});
    }
    o.rollout = s.rollout;
    return o;
}

void mergeOverrides(const Overrides& saved, ServiceEntry& s, MergeReport& report, routing::TimePoint now) {
    const std::string& name = s.config.name;
    s.generation = std::max(s.generation, saved.generation);
    const config::Split& madeAgainst = saved.configSplit;
    if (madeAgainst == s.config.split) {
        if (!(saved.split == s.config.split))
            report.kept.push_back(fmt::format("{}: split blue={} green={}", name, saved.split.blue, saved.split.green));
        s.split = saved.split;
        if (saved.rollbackSplit) s.rollbackSplit = saved.rollbackSplit;
    } else if (!(saved.split == madeAgainst)) {
        // Only an override can be replaced: a split that simply followed the config is not one.
        report.replaced.push_back(fmt::format("{}: split (config changed to blue={} green={})", name,
                                              s.config.split.blue, s.config.split.green));
    }
    // The rollout (plan, step, history) goes with the split it drives: if the
    // config's split changed, an active rollout is dropped with the override.
    if (saved.rollout) {
        const rollout::Rollout& r = *saved.rollout;
        if (!r.active() || madeAgainst == s.config.split) {
            if (r.active())
                report.kept.push_back(fmt::format("{}: rollout to {} at step {}/{} ({}%, {})", name,
                                                  config::toString(r.target()), r.step + 1, r.plan.steps.size(),
                                                  r.percent(), rollout::toString(r.phase)));
            s.rollout = r;
        } else {
            report.replaced.push_back(fmt::format("{}: rollout to {} (config split changed; rollout dropped)", name,
                                                  config::toString(r.target())));
        }
    }
    if (saved.fallback) s.fallback = *saved.fallback;
    for (auto colour : config::kColours) mergePool(saved.pools[config::index(colour)], s, colour, report, now);
}

} // namespace switchyard::control
