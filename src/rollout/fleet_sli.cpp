#include "switchyard/rollout/fleet_sli.h"

namespace switchyard::rollout {

void accumulate(PoolSample& into, const PoolSample& more) {
    into.attempts += more.attempts;
    into.failures += more.failures;
    into.earlyCloses += more.earlyCloses;
    into.connections += more.connections;
    into.ejections += more.ejections;
    into.connect.add(more.connect);
    into.ttfb.add(more.ttfb);
}

namespace {

// `into` += (`latest` - `first`): what a member counted since its first sample.
void accumulateSince(PoolSamples& into, const PoolSamples& first, const PoolSamples& latest) {
    for (std::size_t i = 0; i < into.size(); ++i) {
        const PoolSample& f = first[i];
        const PoolSample& l = latest[i];
        PoolSample d;
        d.attempts = l.attempts - f.attempts;
        d.failures = l.failures >= f.failures ? l.failures - f.failures : 0;
        d.earlyCloses = l.earlyCloses >= f.earlyCloses ? l.earlyCloses - f.earlyCloses : 0;
        d.connections = l.connections - f.connections;
        d.ejections = l.ejections >= f.ejections ? l.ejections - f.ejections : 0;
        d.connect = l.connect.minus(f.connect);
        d.ttfb = l.ttfb.minus(f.ttfb);
        accumulate(into[i], d);
    }
}

// Counters that went back: the member restarted (they start again from zero).
bool wentBack(const PoolSamples& before, const PoolSamples& now) {
    for (std::size_t i = 0; i < before.size(); ++i)
        if (now[i].attempts < before[i].attempts || now[i].connections < before[i].connections) return true;
    return false;
}

} // namespace

void FleetSli::retire(const std::string& service, const Counted& c) {
    accumulateSince(retired_[service], c.first, c.latest);
}

void FleetSli::observe(const std::string& instance, const std::map<std::string, PoolSamples>& services) {
    for (auto it = members_.lower_bound({instance, {}}); it != members_.end() && it->first.first == instance;) {
        if (services.contains(it->first.second)) {
            ++it;
            continue;
        }
        retire(it->first.second, it->second);   // no longer published: keeps what it counted
        it = members_.erase(it);
    }
    for (const auto& [service, samples] : services) {
        auto [it, added] = members_.try_emplace({instance, service}, Counted{samples, samples});
        if (added) continue;
        Counted& c = it->second;
        if (wentBack(c.latest, samples)) {
            retire(service, c);
            c.first = PoolSamples{};   // a new life counts from zero
        }
        c.latest = samples;
    }
}

PoolSamples FleetSli::sum(const std::string& service, const std::string& self, const PoolSamples& selfNow) const {
    PoolSamples total = selfNow;
    if (const auto r = retired_.find(service); r != retired_.end())
        for (std::size_t i = 0; i < total.size(); ++i) accumulate(total[i], r->second[i]);
    for (const auto& [key, counted] : members_)
        if (key.second == service && key.first != self) accumulateSince(total, counted.first, counted.latest);
    return total;
}

} // namespace switchyard::rollout
