#include "switchyard/admin/status_report.h"

#include <chrono>

#include "switchyard/config/split_json.h"
#include "switchyard/rollout/rollout_json.h"
#include "switchyard/util/json_writer.h"

namespace switchyard::admin {
namespace {

void deadline(JsonWriter& w, routing::TimePoint at, routing::TimePoint now) {
    if (at == routing::kNoDeadline) {
        w.null();
        return;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - now).count();
    w.value(int64_t{left < 0 ? 0 : left});
}

// A drain is over once its deadline has passed and its last connection has
// closed: the deadline stays in the state (a pool coming back before it stops
// the drain), but status should not show an idle pool as draining for ever.
bool drainOver(routing::TimePoint deadline, routing::TimePoint now, int64_t connections) {
    return deadline != routing::kNoDeadline && deadline <= now && connections == 0;
}

void split(JsonWriter& w, const config::Split& s) {
    w.beginObject().field("blue", s.blue).field("green", s.green).endObject();
}

void backendStatus(JsonWriter& w, const control::ServiceEntry& service, const control::PoolEntry& pool,
                   bool poolDraining, const control::BackendEntry& b, uint32_t effectiveWeight,
                   routing::TimePoint now) {
    const auto& c = service.config;
    const int64_t active = b.handle->active.load(std::memory_order_relaxed);
    const telemetry::TrafficTotals traffic = b.handle->traffic.totals();
    const bool backendDraining = b.adminState != control::AdminState::Enabled || b.removing;
    const bool draining = poolDraining || backendDraining;
    const routing::TimePoint drainAt =
        std::min(pool.drainDeadline, backendDraining ? b.drainDeadline : routing::kNoDeadline);
    w.beginObject();
    w.field("address", b.address.toString());
    w.field("weight", b.weight);
    w.field("effective_weight", pool.offline ? 0u : effectiveWeight);
    w.key("slow_start_remaining_ms");
    if (control::ramping(b, c.slowStart, now)) deadline(w, b.rampStart + c.slowStart, now);
    else w.null();
    w.key("max_connections");
    if (b.maxConnections == 0) w.null();
    else w.value(b.maxConnections);
    w.field("limit_skips", b.handle->limitSkips.load(std::memory_order_relaxed));
    w.field("admin_state", b.removing ? "removing" : toString(b.adminState));
    w.field("health", b.healthy ? "up" : "down");
    w.field("checked", b.checked);
    w.key("last_failure");
    if (b.lastFailure.empty()) w.null();
    else w.value(b.lastFailure);
    w.field("ejected", b.handle->ejected.load(std::memory_order_relaxed));
    w.field("ejections", b.handle->ejections.load(std::memory_order_relaxed));
    w.field("active", draining ? int64_t{0} : active);
    w.field("draining_connections", draining ? active : int64_t{0});
    w.key("drain_deadline_ms");
    if (draining && !drainOver(drainAt, now, active)) deadline(w, drainAt, now);
    else w.null();
    w.field("origin", b.addedAtRuntime ? "runtime" : "config");
    w.field("connect_attempts", traffic.connectAttempts);
    w.field("connect_failures", traffic.connectFailures);
    w.field("connections", traffic.connections);
    w.endObject();
}

void poolStatus(JsonWriter& w, const control::ServiceEntry& service, const routing::ServiceRoute& route,
                config::Colour colour, routing::TimePoint now) {
    const control::PoolEntry& pool = service.pool(colour);
    const routing::PoolRoute& poolRoute = route.pool(colour);
    int64_t poolConnections = 0;
    for (const control::BackendEntry& b : pool.backends)
        poolConnections += b.handle->active.load(std::memory_order_relaxed);
    const bool poolDraining =
        pool.drainDeadline != routing::kNoDeadline && !drainOver(pool.drainDeadline, now, poolConnections);
    int64_t poolActive = 0;
    int64_t poolDrainingConnections = 0;
    for (const control::BackendEntry& b : pool.backends) {
        const int64_t active = b.handle->active.load(std::memory_order_relaxed);
        const bool draining = poolDraining || b.adminState != control::AdminState::Enabled || b.removing;
        (draining ? poolDrainingConnections : poolActive) += active;
    }
    w.beginObject();
    w.field("state", pool.offline ? "offline" : "online");
    w.field("weight", service.split.weight(colour));
    w.field("effective_weight", poolRoute.weight);
    w.field("draining", poolDraining);
    w.key("drain_deadline_ms");
    if (poolDraining) deadline(w, pool.drainDeadline, now);
    else w.null();
    w.field("active", poolActive);
    w.field("draining_connections", poolDrainingConnections);
    w.key("backends").beginArray();
    // The route lists the entry's backends in the entry's order: what traffic
    // gets (after health, panic and slow start) is read, not computed again.
    for (std::size_t i = 0; i < pool.backends.size(); ++i)
        backendStatus(w, service, pool, poolDraining, pool.backends[i],
                      i < poolRoute.backends.size() ? poolRoute.backends[i].weight : 0, now);
    w.endArray();
    w.endObject();
}

} // namespace

void serviceStatus(JsonWriter& w, const control::ServiceEntry& service, const routing::ServiceRoute& route,
                   const control::ControlPlane* control) {
    const auto now = routing::Clock::now();
    const auto& c = service.config;
    const routing::ServiceState& st = *service.state;
    w.beginObject();
    w.field("name", c.name);
    w.field("listen", c.listen.toString());
    w.field("balance", config::toString(c.balance));
    w.field("affinity", config::toString(c.affinity));
    w.key("split");
    split(w, service.split);
    w.key("effective_split");
    split(w, {route.pool(config::Colour::Blue).weight, route.pool(config::Colour::Green).weight});
    w.key("rollback_split");
    if (service.rollbackSplit) split(w, *service.rollbackSplit);
    else w.null();
    w.field("generation", service.generation);
    w.field("revision", service.revision);
    w.field("active_connections", st.active.load(std::memory_order_relaxed));
    w.field("accepted_connections", st.accepted.load(std::memory_order_relaxed));
    w.field("max_connections", c.maxConnections);
    w.field("refused_at_limit", st.refusedAtLimit.load(std::memory_order_relaxed));
    w.field("backends_full", st.backendsFull.load(std::memory_order_relaxed));
    w.field("proxy_protocol", config::toString(c.proxyProtocol));
    w.field("accept_proxy", c.acceptProxy);
    w.field("proxy_header_errors", st.proxyHeaderErrors.load(std::memory_order_relaxed));
    w.field("proxy_header_timeouts", st.proxyHeaderTimeouts.load(std::memory_order_relaxed));
    w.field("slow_start_ms", static_cast<int64_t>(c.slowStart.count()));
    w.key("fallback").beginObject();
    w.field("active", service.fallback.active);
    if (service.fallback.active) {
        w.field("from", config::toString(service.fallback.from));
        w.field("reason", service.fallback.reason);
        w.field("since", service.fallback.sinceUnixMs);
    } else {
        w.key("reason").null();
        w.key("since").null();
    }
    w.field("count", st.fallbacks.load(std::memory_order_relaxed));
    w.endObject();
    w.field("panic", service.panic);
    w.key("rollout");
    if (service.rollout) {
        const rollout::Now fed = control ? control->rolloutNowOf(service) : control::rolloutNow(service);
        w.raw(rollout::statusJson(*service.rollout, fed).dump());
    } else {
        w.null();
    }
    w.key("pools").beginObject();
    for (auto colour : config::kColours) {
        w.key(config::toString(colour));
        poolStatus(w, service, route, colour, now);
    }
    w.endObject();
    w.endObject();
}

nlohmann::json serviceStatus(const control::ServiceEntry& service, const routing::ServiceRoute& route) {
    JsonWriter w;
    serviceStatus(w, service, route);
    return nlohmann::json::parse(w.take());
}

std::string statusReportText(const control::ControlPlane& control, std::string_view service,
                             const std::optional<DrainingGeneration>& draining) {
    const control::MasterState& state = control.state();
    const routing::RoutingSnapshot& snapshot = *control.snapshot();   // built from `state`: the same positions
    JsonWriter w;
    w.reserve(service.empty() ? 512 + state.services.size() * 1024 : 4096);
    w.beginObject();
    w.field("ok", true);
    w.field("version", SWITCHYARD_VERSION);
    w.field("engine", control.engineName());
    w.field("revision", state.revision);
    if (const fleet::FleetStore* fleet = control.fleet()) {
        // docs/fleet.md: a member counts as converged when it applied the newest intent this one knows.
        const int64_t newest = fleet->appliedRevision();
        bool converged = fleet->available() && fleet->synced();
        w.key("fleet").beginObject();
        w.field("instance", fleet->config().instance);
        w.field("store", fleet->available() ? "ok" : "unavailable");
        w.key("driver");   // the member that judges the fleet's rollouts
        if (fleet->driver().empty()) w.null();
        else w.value(fleet->driver());
        w.field("generation", newest);
        w.key("members").beginArray();
        for (const auto& [instance, applied] : fleet->members()) {
            w.beginObject();
            w.field("instance", instance);
            w.field("generation", applied);
            w.endObject();
            converged = converged && applied >= newest;
        }
        w.endArray();
        w.field("converged", converged);
        w.endObject();
    }
    w.key("draining_generation");
    if (draining) {
        w.beginObject();
        w.field("pid", static_cast<int64_t>(draining->pid));
        w.field("connections", draining->connections);
        w.field("deadline_unix_ms", draining->deadlineUnixMs);
        w.endObject();
    } else {
        w.null();
    }
    w.key("services").beginArray();
    if (!service.empty()) {
        if (const std::size_t i = state.indexOf(service); i != routing::ServiceIndex::kNone)
            serviceStatus(w, state.services[i], snapshot.services[i], &control);
    } else {
        for (std::size_t i = 0; i < state.services.size(); ++i)
            serviceStatus(w, state.services[i], snapshot.services[i], &control);
    }
    w.endArray();
    w.endObject();
    return w.take();
}

nlohmann::json statusReport(const control::ControlPlane& control, std::string_view service) {
    return nlohmann::json::parse(statusReportText(control, service));
}

} // namespace switchyard::admin
