#include "switchyard/control/master_state.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace switchyard::control {

const char* toString(AdminState s) {
    switch (s) {
    case AdminState::Enabled: return "enabled";
    case AdminState::Drain: return "drain";
    case AdminState::Disabled: return "disabled";
    }
    return "enabled";
}

BackendEntry* PoolEntry::find(const config::Endpoint& address) {
    for (auto& b : backends)
        if (b.address == address) return &b;
    return nullptr;
}

const BackendEntry* PoolEntry::find(const config::Endpoint& address) const {
    for (const auto& b : backends)
        if (b.address == address) return &b;
    return nullptr;
}

std::size_t PoolEntry::routableBackends() const {
    std::size_t n = 0;
    for (const auto& b : backends)
        if (b.takesNewConnections()) ++n;
    return n;
}

config::Split ServiceEntry::effectiveSplit() const {
    config::Split effective = split;
    for (auto colour : config::kColours) {
        if (pool(colour).offline) effective.weight(colour) = 0;
    }
    if (fallback.active) {
        // The failed pool's share goes to the other pool.
        const auto failed = fallback.from;
        const auto target = config::other(failed);
        if (!pool(target).offline) {
            effective.weight(target) += effective.weight(failed);
            effective.weight(failed) = 0;
            if (effective.weight(target) == 0) effective.weight(target) = 1;
        }
    }
    return effective;
}

std::size_t MasterState::indexOf(std::string_view name) const { return index_->find(name); }

const ServiceEntry* MasterState::find(std::string_view name) const {
    const std::size_t i = indexOf(name);
    return i == routing::ServiceIndex::kNone ? nullptr : &services[i];
}

ServiceEntry* MasterState::edit(std::string_view name) {
    const std::size_t i = indexOf(name);
    return i == routing::ServiceIndex::kNone ? nullptr : &services.edit(i);
}

void MasterState::add(ServiceEntry service) {
    // Snapshots share the index: one published already is never changed.
    if (index_.use_count() > 1) index_ = std::make_shared<routing::ServiceIndex>(*index_);
    index_->add(service.config.name, services.size());
    services.push_back(std::move(service));
}

BackendEntry makeBackendEntry(const ServiceEntry& service, config::Colour colour, const config::BackendConfig& backend) {
    BackendEntry entry;
    entry.address = backend.address;
    entry.configWeight = backend.weight;
    entry.weight = backend.weight;
    entry.maxConnections = backend.maxConnections;
    entry.handle = std::make_shared<routing::BackendState>(service.config.name, colour, backend.address,
                                                           service.poolCounters[config::index(colour)]);
    return entry;
}

routing::TimePoint deadlineAfter(routing::TimePoint now, config::Duration after) {
    if (after.count() <= 0) return now;
    const auto room = std::chrono::duration_cast<config::Duration>(routing::kNoDeadline - now);
    if (after >= room) return routing::kNoDeadline;
    return now + after;
}

void keepLiveFacts(BackendEntry& fresh, const BackendEntry& old) {
    fresh.handle = old.handle;
    fresh.healthy = old.healthy;
    fresh.checked = old.checked;
    fresh.lastFailure = old.lastFailure;
    fresh.rampStart = old.rampStart;
}

void markBackendReturned(BackendEntry& backend, routing::TimePoint now) {
    backend.rampStart = now;
}

uint32_t slowStartWeight(uint32_t weight, routing::TimePoint rampStart, config::Duration slowStart,
                         routing::TimePoint now) {
    if (weight == 0 || slowStart.count() <= 0 || rampStart == kNoRamp) return weight;
    const auto elapsed = now - rampStart;
    if (elapsed >= slowStart) return weight;
    const double fraction = std::max(0.1, std::chrono::duration<double>(elapsed) / slowStart);
    const auto ramped = static_cast<uint32_t>(std::lround(weight * fraction));
    return std::clamp<uint32_t>(ramped, 1, weight);
}

uint32_t effectiveBackendWeight(const BackendEntry& backend, config::Duration slowStart, routing::TimePoint now) {
    if (!backend.takesNewConnections()) return 0;
    return slowStartWeight(backend.weight, backend.rampStart, slowStart, now);
}

bool ramping(const BackendEntry& backend, config::Duration slowStart, routing::TimePoint now) {
    return backend.rampStart != kNoRamp && slowStart.count() > 0 && now - backend.rampStart < slowStart;
}

ServiceEntry makeServiceEntry(const config::ServiceConfig& config) {
    ServiceEntry entry;
    entry.config = config;
    entry.split = config.split;
    for (auto& counters : entry.poolCounters) counters = std::make_shared<telemetry::PoolCounters>();
    for (auto colour : config::kColours) {
        auto& pool = entry.pool(colour);
        pool.colour = colour;
        for (const auto& b : config.pool(colour)) pool.backends.push_back(makeBackendEntry(entry, colour, b));
    }
    return entry;
}

} // namespace switchyard::control
