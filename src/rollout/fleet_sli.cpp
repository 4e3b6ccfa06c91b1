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

void accumulate(PoolSamples& into, const PoolSamples& more) {
    for (std::size_t i = 0; i < into.size(); ++i) accumulate(into[i], more[i]);
}

bool wentBack(const PoolSamples& before, const PoolSamples& now) {
    for (std::size_t i = 0; i < before.size(); ++i)
        if (now[i].attempts < before[i].attempts || now[i].connections < before[i].connections) return true;
    return false;
}

} // namespace

void FleetSli::observe(const std::string& instance, const std::string& service, const PoolSamples& samples) {
    auto [it, added] = latest_.try_emplace({instance, service}, samples);
    if (added) return;
    // Counters that went back: the member restarted; its earlier life still counts.
    if (wentBack(it->second, samples)) accumulate(retired_[service], it->second);
    it->second = samples;
}

void FleetSli::forget(const std::string& instance) {
    for (auto it = latest_.lower_bound({instance, {}}); it != latest_.end() && it->first.first == instance;) {
        accumulate(retired_[it->first.second], it->second);
        it = latest_.erase(it);
    }
}

PoolSamples FleetSli::sum(const std::string& service, const std::string& self, const PoolSamples& selfNow) const {
    PoolSamples total = selfNow;
    if (const auto r = retired_.find(service); r != retired_.end()) accumulate(total, r->second);
    for (const auto& [key, samples] : latest_)
        if (key.second == service && key.first != self) accumulate(total, samples);
    return total;
}

} // namespace switchyard::rollout
