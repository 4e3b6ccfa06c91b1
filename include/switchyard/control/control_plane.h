#pragma once

// The one writer of runtime state. Runs on the control thread (the daemon's
// main thread): admin commands, health results and timers all arrive here.
// Every change follows SPEC.md "Order": operator changes are validated, saved
// to the state file, published as one new snapshot, then answered; automatic
// changes are published first and saved best-effort.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "switchyard/config/config.h"
#include "switchyard/control/master_state.h"
#include "switchyard/control/state_store.h"
#include "switchyard/proxy/worker.h"
#include "switchyard/rollout/rollout_controller.h"
#include "switchyard/util/result.h"

namespace switchyard::control {

// Conditions an operator attaches to a change.
struct ChangeGuard {
    std::optional<uint64_t> ifGeneration;
    bool force = false;
};

// The answer to an operator change.
struct Outcome {
    bool ok = true;
    std::string code;       // stable error word when !ok (SPEC.md admin codes)
    std::string message;    // what and why
    static Outcome success() { return {}; }
    static Outcome failure(std::string code, std::string message) { return {false, std::move(code), std::move(message)}; }
};

struct ReloadReport {
    Outcome outcome;
    std::vector<std::string> overridesKept;       // "web: split blue=0 green=100"
    std::vector<std::string> overridesReplaced;   // "web: split (config changed to blue=100 green=0)"
    std::vector<std::string> servicesAdded;
    std::vector<std::string> servicesRemoved;
    // reload(false) only: the state the reload would publish (nothing was applied).
    std::optional<MasterState> preview;
};

class ControlPlane {
public:
    ControlPlane(boost::asio::io_context& context, config::Config config,
                 std::vector<std::unique_ptr<proxy::Worker>>& workers, std::string engineName);

    // Loads the state file, opens listeners, publishes the first snapshot.
    Result<bool> start();

    // --- operator changes (control thread only) ---
    Outcome setSplit(const std::string& service, config::Split split, const ChangeGuard& guard);
    Outcome cutover(const std::string& service, config::Colour colour, const ChangeGuard& guard);
    Outcome rollback(const std::string& service, const ChangeGuard& guard);
    Outcome setBackendWeight(const std::string& service, config::Colour colour, const config::Endpoint& address,
                             uint32_t weight, const ChangeGuard& guard);
    Outcome setBackendAdminState(const std::string& service, config::Colour colour,
                                 const config::Endpoint& address, AdminState state, const ChangeGuard& guard);
    Outcome addBackend(const std::string& service, config::Colour colour, const config::Endpoint& address,
                       uint32_t weight, const ChangeGuard& guard);
    Outcome removeBackend(const std::string& service, config::Colour colour, const config::Endpoint& address,
                          const ChangeGuard& guard);
    Outcome setPoolOffline(const std::string& service, config::Colour colour, bool offline, const ChangeGuard& guard);
    Outcome reset(const std::string& service, const ChangeGuard& guard);
    // apply=false is a dry run (reload-check): the same validation and merge,
    // reported with the state it would publish, and nothing applied, saved or
    // counted. New listeners are not opened, so a port that cannot be bound is
    // found only by the real reload.
    ReloadReport reload(bool apply = true);

    // --- progressive rollouts (rollout/rollout_controller.h; SPEC.md "Progressive rollout") ---
    // Starting, pausing, resuming and promoting are operator changes (saved, then
    // published). rollout-abort is a rollback: published first, saved best-effort,
    // so a full disk never keeps a bad target in traffic (a failed save comes back
    // as a success whose message says so).
    Outcome startRollout(const std::string& service, const rollout::RolloutPlan& plan, const ChangeGuard& guard);
    Outcome rolloutAction(const std::string& service, rollout::Action action, const ChangeGuard& guard);
    // Advances every active rollout (the rollout driver's timer). A step forward is
    // the daemon acting for the operator: it moves generation and is saved before it
    // is published (a failed save holds the step and retries). A rollback or a
    // suspension is automatic: published first, saved best-effort.
    void rolloutTick();

    // --- automatic changes: published first, saved best-effort ---
    using ServiceMutation = std::function<bool(ServiceEntry&)>;   // returns true if it changed anything
    // `movesIntent`: the change is intent the daemon changes on its own (a rollout's
    // rollback), so it moves generation too.
    void applyAutomatic(const std::string& service, const ServiceMutation& mutate, const char* why,
                        bool movesIntent = false);

    const MasterState& state() const { return state_; }
    const config::Config& config() const { return config_; }
    const std::string& engineName() const { return engineName_; }
    uint64_t saveFailures() const { return saveFailures_; }
    uint64_t reloadsOk() const { return reloadsOk_; }
    uint64_t reloadsFailed() const { return reloadsFailed_; }

    // Called after every publish (health checker, metrics) with the new state.
    void onPublished(std::function<void(const MasterState&)> listener) { publishListeners_.push_back(std::move(listener)); }

    // Stop accepting on every worker (SIGTERM).
    void stopAccepting();

    // Socket activation: the inherited listening fd for a service, or -1.
    // Every worker then accepts from that one socket (dup'd), because closing a
    // per-worker SO_REUSEPORT listener would reset the connections queued on it.
    using InheritedListenerLookup = std::function<int(const config::ServiceConfig&)>;
    void setInheritedListeners(InheritedListenerLookup lookup) { inheritedListeners_ = std::move(lookup); }

private:
    using Mutation = std::function<Outcome(ServiceEntry&)>;
    // Validate on a copy, save, publish: the operator-change path. `publishFirst`
    // (rollout-abort): validate, publish, then save best-effort.
    Outcome change(const std::string& service, const ChangeGuard& guard, bool movesIntent, const Mutation& mutate,
                   bool publishFirst = false);
    Outcome setSplitFor(const std::string& service, config::Split split, const ChangeGuard& guard, const char* command);
    // A split-changing command during a rollout: refused (rollout_active) unless
    // forced, which aborts the rollout first.
    Outcome yieldRollout(ServiceEntry& service, const ChangeGuard& guard, const char* command) const;
    Outcome checkRoutable(const ServiceEntry& service, bool force) const;
    Outcome checkTarget(const ServiceEntry& service, config::Colour colour, bool force) const;
    void publish(MasterState next);
    Result<bool> openListeners(const config::ServiceConfig& service);
    void closeListeners(const std::string& service);
    void scheduleHousekeeping();
    void housekeeping();

    boost::asio::io_context& context_;
    config::Config config_;
    std::vector<std::unique_ptr<proxy::Worker>>& workers_;
    std::string engineName_;
    MasterState state_;
    StateStore store_;
    boost::asio::steady_timer housekeepingTimer_;
    std::vector<std::function<void(const MasterState&)>> publishListeners_;
    InheritedListenerLookup inheritedListeners_;
    uint64_t saveFailures_ = 0;
    uint64_t reloadsOk_ = 0;
    uint64_t reloadsFailed_ = 0;
    std::vector<std::pair<std::string, routing::TimePoint>> rolloutRetryAt_;   // after a failed step save
};

// What a service's rollout is fed now: the time and both pools' counter samples.
rollout::Now rolloutNow(const ServiceEntry& service);
// Health-side facts for a service's rollout: fallbacks, ejected target backends.
rollout::Signals rolloutSignals(const ServiceEntry& service);
// Sets split and rollbackSplit from the service's rollout: a whole rollout is one
// split-changing event (SPEC.md "Rollback"); one that ended without promotion
// leaves `rollback` as if it had never happened.
void applyRolloutSplit(ServiceEntry& service);

} // namespace switchyard::control
