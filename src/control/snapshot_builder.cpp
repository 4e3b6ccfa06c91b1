#include "switchyard/control/snapshot_builder.h"

#include <algorithm>

namespace switchyard::control {

void updatePoolDrains(ServiceEntry& service, routing::TimePoint now) {
    const config::Split effective = service.effectiveSplit();
    for (auto colour : config::kColours) {
        PoolEntry& pool = service.pool(colour);
        const uint32_t weight = effective.weight(colour);
        if (weight == 0 && pool.lastEffectiveWeight > 0 && pool.drainDeadline == routing::kNoDeadline)
            pool.drainDeadline = now + service.config.drainTimeout;
        if (weight > 0) pool.drainDeadline = routing::kNoDeadline;   // came back: stop draining
        pool.lastEffectiveWeight = weight;
    }
}

routing::RoutePtr buildRoute(const ServiceEntry& service, routing::TimePoint now) {
    auto route = std::make_shared<routing::ServiceRoute>();
    const auto& c = service.config;
    route->name = c.name;
    route->listen = c.listen;
    route->balance = c.balance;
    route->affinity = c.affinity;
    route->proxyProtocol = c.proxyProtocol;
    route->acceptProxy = c.acceptProxy;
    route->acceptProxyTimeout = c.acceptProxyTimeout;
    route->connectTimeout = c.timeouts.connect;
    route->idleTimeout = c.timeouts.idle;
    route->halfClosedTimeout = c.timeouts.halfClosed;
    route->drainSpread = c.drainSpread;
    route->retries = c.retries;
    route->maxConnections = c.maxConnections;
    route->generation = service.generation;
    route->revision = service.revision;
    route->state = service.state;
    route->panic = service.panic;
    route->outlierConsecutiveFailures = c.outlierDetection.enabled ? c.outlierDetection.consecutiveFailures : 0;
    route->outlierMaxEjectionPercent = c.outlierDetection.maxEjectionPercent;
    const config::Split effective = service.effectiveSplit();
    for (auto colour : config::kColours) {
        const PoolEntry& pool = service.pool(colour);
        routing::PoolRoute& out = route->pool(colour);
        out.colour = colour;
        out.offline = pool.offline;
        out.weight = pool.offline ? 0 : effective.weight(colour);
        out.draining = pool.drainDeadline != routing::kNoDeadline;
        out.drainDeadline = pool.drainDeadline;
        out.backends.reserve(pool.backends.size());
        for (const BackendEntry& backend : pool.backends) {
            routing::BackendRoute b;
            b.handle = backend.handle;
            b.weight = effectiveBackendWeight(backend, c.slowStart, now);
            // Panic mode: the least bad is every enabled backend, whatever its health.
            if (service.panic && b.weight == 0 && backend.takesNewConnectionsIgnoringHealth())
                b.weight = backend.weight;
            b.maxConnections = backend.maxConnections;
            const bool backendDraining = backend.adminState != AdminState::Enabled || backend.removing;
            b.draining = out.draining || backendDraining;
            b.drainDeadline =
                std::min(out.drainDeadline, backendDraining ? backend.drainDeadline : routing::kNoDeadline);
            out.backends.push_back(std::move(b));
        }
        out.computeSignature();
    }
    return route;
}

routing::SnapshotPtr buildSnapshot(const MasterState& state, routing::TimePoint now) {
    auto snapshot = std::make_shared<routing::RoutingSnapshot>();
    snapshot->revision = state.revision;
    snapshot->index = state.index();
    snapshot->services.reserve(state.services.size());
    for (const ServiceEntry& service : state.services) snapshot->services.push_back(buildRoute(service, now));
    return snapshot;
}

routing::SnapshotPtr buildSnapshot(const MasterState& state, const MasterState& previousState,
                                   const routing::RoutingSnapshot& previous, routing::TimePoint now) {
    // Positions only line up while the set of services is the same one.
    if (state.index() != previousState.index() || previous.services.size() != previousState.services.size())
        return buildSnapshot(state, now);
    auto snapshot = std::make_shared<routing::RoutingSnapshot>();
    snapshot->revision = state.revision;
    snapshot->index = state.index();
    snapshot->services.reserve(state.services.size());
    for (std::size_t i = 0; i < state.services.size(); ++i)
        snapshot->services.push_back(state.services.sameAt(i, previousState.services) ? previous.services.ptr(i)
                                                                                      : buildRoute(state.services[i], now));
    return snapshot;
}

routing::SnapshotPtr drainingEverything(const routing::RoutingSnapshot& snapshot, routing::TimePoint deadline,
                                        std::chrono::milliseconds spread) {
    auto out = std::make_shared<routing::RoutingSnapshot>();
    out->revision = snapshot.revision + 1;
    // A new index: workers then look at every route again (drain_schedule.h).
    for (const auto& service : snapshot.services) {
        routing::ServiceRoute route = service;
        route.drainSpread = spread;
        for (auto& pool : route.pools) {
            pool.weight = 0;
            for (auto& backend : pool.backends) {
                backend.weight = 0;
                backend.draining = true;
                backend.drainDeadline = std::min(backend.drainDeadline, deadline);
            }
        }
        out->services.push_back(std::move(route));
    }
    return out;
}

routing::SnapshotPtr withSuccessorDrains(const routing::RoutingSnapshot& retired, const SuccessorDrains& drains) {
    auto out = std::make_shared<routing::RoutingSnapshot>();
    out->revision = retired.revision + 1;
    for (std::size_t i = 0; i < retired.services.size(); ++i) {
        const auto it = drains.find(retired.services[i].name);
        if (it == drains.end() || it->second.backends.empty()) {
            out->services.push_back(retired.services.ptr(i));
            continue;
        }
        routing::ServiceRoute route = retired.services[i];
        route.drainSpread = std::min(route.drainSpread, config::Duration(it->second.spread));
        for (auto& pool : route.pools)
            for (auto& backend : pool.backends)
                for (const auto& [colour, key, deadline] : it->second.backends)
                    if (colour == pool.colour && key == backend.handle->key)
                        backend.drainDeadline = std::min(backend.drainDeadline, deadline);
        out->services.push_back(std::move(route));
    }
    return out;
}

} // namespace switchyard::control
