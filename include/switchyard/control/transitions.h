#pragma once

// The operator commands and the daemon's own bookkeeping as transitions of one
// service: each takes the service's entry (a private copy the control plane
// made), the command's input and the time, changes the entry, and says what
// happened. No sockets, no io_context, no file: ControlPlane::commit() orders
// the save and the publish that follow (docs/semantics.md "Order"), and the unit tests
// drive these directly with a fake clock.

#include <optional>
#include <string>

#include "switchyard/config/config.h"
#include "switchyard/control/master_state.h"
#include "switchyard/control/overrides.h"
#include "switchyard/rollout/rollout_controller.h"

namespace switchyard::control {

// Conditions an operator attaches to a change.
struct ChangeGuard {
    std::optional<uint64_t> ifGeneration;
    bool force = false;
};

// What a transition did; words only for the JSON reply and the log.
struct Outcome {
    bool ok = true;
    bool changed = true;    // false: the entry already was as asked (nothing to save or publish)
    std::string code;       // stable error word when !ok (admin protocol codes)
    std::string message;    // what and why; on success a warning, if any
    static Outcome success() { return {}; }
    static Outcome unchanged() { return {true, false, {}, {}}; }
    static Outcome failure(std::string code, std::string message) {
        return {false, false, std::move(code), std::move(message)};
    }
};

namespace transitions {

// `command` names the operator command in refusals and logs ("split", "cutover").
Outcome split(ServiceEntry& s, config::Split split, const ChangeGuard& guard, const char* command,
              const rollout::Now& now);
// All new connections to `colour`; a split already all on it is kept as it is.
config::Split cutoverSplit(const ServiceEntry& s, config::Colour colour);
Outcome rollback(ServiceEntry& s, const ChangeGuard& guard, const rollout::Now& now);
Outcome backendWeight(ServiceEntry& s, config::Colour colour, const config::Endpoint& address, uint32_t weight,
                      const ChangeGuard& guard);
Outcome backendAdminState(ServiceEntry& s, config::Colour colour, const config::Endpoint& address,
                          AdminState state, const ChangeGuard& guard, routing::TimePoint now);
Outcome addBackend(ServiceEntry& s, config::Colour colour, const config::Endpoint& address, uint32_t weight,
                   const ChangeGuard& guard, routing::TimePoint now);
Outcome removeBackend(ServiceEntry& s, config::Colour colour, const config::Endpoint& address,
                      const ChangeGuard& guard, routing::TimePoint now);
Outcome poolOffline(ServiceEntry& s, config::Colour colour, bool offline, const ChangeGuard& guard);
// Back to the config's values; backends that stay keep their identity and health.
Outcome reset(ServiceEntry& s, const config::ServiceConfig& config, const ChangeGuard& guard, const rollout::Now& now);
Outcome startRollout(ServiceEntry& s, const rollout::RolloutPlan& plan, const ChangeGuard& guard,
                     const rollout::Now& now);
Outcome rolloutAction(ServiceEntry& s, rollout::Action action, const ChangeGuard& guard, const rollout::Now& now);

// A reload: the service as the new `config` makes it, with the running
// overrides of `old` (null: a new service) merged in by the rule a restart
// uses, and what lives only in the running daemon kept (backend identities,
// health, ramps, drain deadlines, the live rollout window, fallback).
ServiceEntry reloaded(const ServiceEntry* old, const config::ServiceConfig& config, MergeReport& report,
                      routing::TimePoint now);

enum class IntentSource {
    Running,   // the running daemon's own overrides (reload)
    Fleet,     // another member's, read from the fleet's store (docs/fleet.md)
};
// reloaded() with the overrides given: the service as `config` makes it, with
// `intent` merged in and what lives only in this daemon kept from `old`
// (health, identities, ramps, drain deadlines, fallback: each member judges
// those from where it stands).
ServiceEntry withIntent(const ServiceEntry* old, const config::ServiceConfig& config, const Overrides& intent,
                        IntentSource source, MergeReport& report, routing::TimePoint now);

// Housekeeping. Removed backends whose drain deadline passed leave the pool.
bool expireRemovedBackends(ServiceEntry& s, routing::TimePoint now);
// Ends slow-start ramps that are over; true while a ramp moves weights (a new
// route is due each second until then).
bool advanceRamps(ServiceEntry& s, routing::TimePoint now);

// Refusals shared by the commands above (docs/semantics.md "Safety").
Outcome checkTarget(const ServiceEntry& s, config::Colour colour, bool force);
Outcome checkRoutable(const ServiceEntry& s, bool force);

} // namespace transitions

// Sets split and rollbackSplit from the service's rollout: a whole rollout is one
// split-changing event (docs/semantics.md "Rollback"); one that ended without promotion
// leaves `rollback` as if it had never happened.
void applyRolloutSplit(ServiceEntry& service);

} // namespace switchyard::control
