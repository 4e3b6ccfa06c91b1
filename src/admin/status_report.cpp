#include "switchyard/admin/status_report.h"

#include <chrono>

#include "switchyard/config/split_json.h"
#include "switchyard/rollout/rollout_json.h"

namespace switchyard::admin {
namespace {

using nlohmann::json;

json deadlineJson(routing::TimePoint deadline, routing::TimePoint now) {
    if (deadline == routing::kNoDeadline) return nullptr;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    return left < 0 ? 0 : left;
}

// A drain is over once its deadline has passed and its last connection has
// closed: the deadline stays in the state (a pool coming back before it stops
// the drain), but status should not show an idle pool as draining for ever.
bool drainOver(routing::TimePoint deadline, routing::TimePoint now, int64_t connections) {
    return deadline != routing::kNoDeadline && deadline <= now && connections == 0;
}

} // namespace

json serviceStatus(const control::ServiceEntry& service, const routing::ServiceRoute& route) {
    const auto now = routing::Clock::now();
    const auto& c = service.config;
    const config::Split effective{route.pool(config::Colour::Blue).weight, route.pool(config::Colour::Green).weight};
    json pools = json::object();
    for (auto colour : config::kColours) {
        const control::PoolEntry& pool = service.pool(colour);
        const routing::PoolRoute& poolRoute = route.pool(colour);
        std::size_t position = 0;
        int64_t poolConnections = 0;
        for (const control::BackendEntry& b : pool.backends)
            poolConnections += b.handle->active.load(std::memory_order_relaxed);
        const bool poolDraining =
            pool.drainDeadline != routing::kNoDeadline && !drainOver(pool.drainDeadline, now, poolConnections);
        json backends = json::array();
        int64_t poolActive = 0;
        int64_t poolDrainingConnections = 0;
        for (const control::BackendEntry& b : pool.backends) {
            // The route lists the entry's backends in the entry's order.
            const uint32_t effectiveWeight =
                position < poolRoute.backends.size() ? poolRoute.backends[position].weight : 0;
            ++position;
            const int64_t active = b.handle->active.load(std::memory_order_relaxed);
            const telemetry::TrafficTotals traffic = b.handle->traffic.totals();
            const bool backendDraining = b.adminState != control::AdminState::Enabled || b.removing;
            const bool draining = poolDraining || backendDraining;
            const routing::TimePoint deadline =
                std::min(pool.drainDeadline, backendDraining ? b.drainDeadline : routing::kNoDeadline);
            poolActive += draining ? 0 : active;
            poolDrainingConnections += draining ? active : 0;
            backends.push_back({
                {"address", b.address.toString()},
                {"weight", b.weight},
                {"effective_weight", pool.offline ? 0 : effectiveWeight},
                {"slow_start_remaining_ms",
                 control::ramping(b, c.slowStart, now) ? deadlineJson(b.rampStart + c.slowStart, now) : json(nullptr)},
                {"max_connections", b.maxConnections == 0 ? json(nullptr) : json(b.maxConnections)},
                {"limit_skips", b.handle->limitSkips.load(std::memory_order_relaxed)},
                {"admin_state", b.removing ? "removing" : toString(b.adminState)},
                {"health", b.healthy ? "up" : "down"},
                {"checked", b.checked},
                {"last_failure", b.lastFailure.empty() ? json(nullptr) : json(b.lastFailure)},
                {"ejected", b.handle->ejected.load(std::memory_order_relaxed)},
                {"ejections", b.handle->ejections.load(std::memory_order_relaxed)},
                {"active", draining ? 0 : active},
                {"draining_connections", draining ? active : 0},
                {"drain_deadline_ms",
                 draining && !drainOver(deadline, now, active) ? deadlineJson(deadline, now) : json(nullptr)},
                {"origin", b.addedAtRuntime ? "runtime" : "config"},
                {"connect_attempts", traffic.connectAttempts},
                {"connect_failures", traffic.connectFailures},
                {"connections", traffic.connections},
            });
        }
        pools[config::toString(colour)] = {
            {"state", pool.offline ? "offline" : "online"},
            {"weight", service.split.weight(colour)},
            {"effective_weight", effective.weight(colour)},
            {"draining", poolDraining},
            {"drain_deadline_ms", poolDraining ? deadlineJson(pool.drainDeadline, now) : json(nullptr)},
            {"active", poolActive},
            {"draining_connections", poolDrainingConnections},
            {"backends", backends},
        };
    }
    json fallback = {{"active", service.fallback.active}, {"reason", nullptr}, {"since", nullptr}};
    if (service.fallback.active) {
        fallback["from"] = config::toString(service.fallback.from);
        fallback["reason"] = service.fallback.reason;
        fallback["since"] = service.fallback.sinceUnixMs;
    }
    fallback["count"] = service.state->fallbacks.load(std::memory_order_relaxed);
    const routing::ServiceState& st = *service.state;
    return {
        {"name", c.name},
        {"listen", c.listen.toString()},
        {"balance", config::toString(c.balance)},
        {"affinity", config::toString(c.affinity)},
        {"split", config::splitToJson(service.split)},
        {"effective_split", config::splitToJson(effective)},
        {"rollback_split", service.rollbackSplit ? config::splitToJson(*service.rollbackSplit) : json(nullptr)},
        {"generation", service.generation},
        {"revision", service.revision},
        {"active_connections", service.state->active.load(std::memory_order_relaxed)},
        {"accepted_connections", service.state->accepted.load(std::memory_order_relaxed)},
        {"max_connections", c.maxConnections},
        {"refused_at_limit", st.refusedAtLimit.load(std::memory_order_relaxed)},
        {"backends_full", st.backendsFull.load(std::memory_order_relaxed)},
        {"proxy_protocol", config::toString(c.proxyProtocol)},
        {"accept_proxy", c.acceptProxy},
        {"proxy_header_errors", st.proxyHeaderErrors.load(std::memory_order_relaxed)},
        {"proxy_header_timeouts", st.proxyHeaderTimeouts.load(std::memory_order_relaxed)},
        {"slow_start_ms", c.slowStart.count()},
        {"fallback", fallback},
        {"panic", service.panic},
        {"rollout", service.rollout ? rollout::statusJson(*service.rollout, control::rolloutNow(service)) : json(nullptr)},
        {"pools", pools},
    };
}

json statusReport(const control::ControlPlane& control, std::string_view service) {
    json services = json::array();
    const control::MasterState& state = control.state();
    const routing::RoutingSnapshot& snapshot = *control.snapshot();   // built from `state`: the same positions
    if (!service.empty()) {
        if (const std::size_t i = state.indexOf(service); i != routing::ServiceIndex::kNone)
            services.push_back(serviceStatus(state.services[i], snapshot.services[i]));
    } else {
        for (std::size_t i = 0; i < state.services.size(); ++i)
            services.push_back(serviceStatus(state.services[i], snapshot.services[i]));
    }
    return {{"ok", true},
            {"version", SWITCHYARD_VERSION},
            {"engine", control.engineName()},
            {"revision", control.state().revision},
            {"services", services}};
}

} // namespace switchyard::admin
