#pragma once

// The one writer of runtime state. Runs on the control thread (the daemon's
// main thread): admin commands, health results and timers all arrive here.
// The state is a value shared by structure (master_state.h); every command and
// automatic event is a transition of the services it touches
// (transitions.h), and commit() is the one place that orders the save and the
// publish that follow (docs/semantics.md "Order"): operator changes are saved, then
// published, then answered; automatic changes are published first and saved
// best-effort. A publish rebuilds the routes of the services that changed and
// shares the rest, so a change costs what it changes.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "switchyard/config/config.h"
#include "switchyard/control/health_seed.h"
#include "switchyard/control/listener_set.h"
#include "switchyard/control/master_state.h"
#include "switchyard/control/snapshot_builder.h"
#include "switchyard/control/state_store.h"
#include "switchyard/control/transitions.h"
#include "switchyard/control/writer_lock.h"
#include "switchyard/fleet/fleet_store.h"
#include "switchyard/proxy/worker.h"
#include "switchyard/rollout/fleet_sli.h"
#include "switchyard/rollout/rollout_controller.h"
#include "switchyard/util/result.h"

namespace switchyard::control {

// What an automatic mutation did to a service.
enum class Effect {
    None,             // nothing: the service keeps its entry (and its route)
    Publish,          // routing or health facts: a new snapshot, nothing to save
    PublishAndSave,   // also something the store keeps (fallback, rollout, removals)
};

// Which services the last publish changed (listeners: health, metrics).
struct ChangeSet {
    bool all = true;                       // start, reload: the set of services itself may differ
    std::vector<std::size_t> services;     // positions in the state, when !all
};

// An operator change in fleet mode: answered once etcd committed it (or
// refused it). The admin server waits on `done`; finish() runs on the control thread.
struct PendingChange {
    explicit PendingChange(boost::asio::io_context& context) : done(context) {
        done.expires_at(boost::asio::steady_timer::time_point::max());
    }
    void finish(Outcome result) {
        outcome = std::move(result);
        done.cancel();
    }
    boost::asio::steady_timer done;
    std::optional<Outcome> outcome;
};

// The code of an Outcome whose answer comes later (takePendingChange()).
inline constexpr const char* kPendingCode = "pending";

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

    // --- progressive rollouts (rollout/rollout_controller.h; docs/semantics.md "Progressive rollout") ---
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
    using ServiceMutation = std::function<Effect(ServiceEntry&)>;
    // Applies `mutate` to each named service, all in one snapshot (a health
    // batch). `movesIntent`: the change is intent the daemon changes on its own
    // (a rollout's rollback), so it moves generation too.
    void applyAutomatic(const std::vector<std::string>& services, const ServiceMutation& mutate, const char* why,
                        bool movesIntent = false);
    void applyAutomatic(const std::string& service, const ServiceMutation& mutate, const char* why,
                        bool movesIntent = false) {
        applyAutomatic(std::vector<std::string>{service}, mutate, why, movesIntent);
    }

    const MasterState& state() const { return state_; }
    // The snapshot the workers route by now; status and metrics read effective
    // weights from it rather than computing them a second time.
    const routing::SnapshotPtr& snapshot() const { return snapshot_; }
    const ChangeSet& lastChanges() const { return lastChanges_; }
    // Fleet mode (docs/fleet.md): the link to etcd, or null without `fleet:`.
    const fleet::FleetStore* fleet() const { return fleet_.get(); }
    // Runs once, after the first full read of the fleet's intent from etcd.
    void onFleetSynced(std::function<void()> listener) { fleetSynced_ = std::move(listener); }
    // The change the last operator call left waiting for etcd (its Outcome had
    // code kPendingCode), taken once.
    std::shared_ptr<PendingChange> takePendingChange() { return std::exchange(pendingChange_, nullptr); }
    // What `service`'s rollout is fed now: rolloutNow(), with the pools'
    // counters summed over every live member of the fleet in fleet mode.
    rollout::Now rolloutNowOf(const ServiceEntry& service) const;
    const config::Config& config() const { return config_; }
    const std::string& engineName() const { return engineName_; }
    uint64_t saveFailures() const { return saveFailures_; }
    uint64_t reloadsOk() const { return reloadsOk_; }
    uint64_t reloadsFailed() const { return reloadsFailed_; }

    // Called after every publish (health checker, metrics) with the new state;
    // lastChanges() says which services changed.
    void onPublished(std::function<void(const MasterState&)> listener) { publishListeners_.push_back(std::move(listener)); }

    // Stop accepting on every worker (SIGTERM).
    void stopAccepting() { listeners_.stopAccepting(); }

    // --- upgrade (daemon/upgrader.h) ---
    // Refuses every operator change and reload with the retryable code
    // `upgrading` and holds rollout steps, then saves every service's state,
    // so the next generation starts from exactly this state.
    Result<bool> freezeForUpgrade();
    // The upgrade failed: changes are taken again.
    void thaw() { frozen_ = false; }
    bool frozen() const { return frozen_; }
    // The next generation took over: nothing is published any more, and every
    // open connection closes by `deadline`, spread over `spread` before it.
    void retire(routing::TimePoint deadline, std::chrono::milliseconds spread);
    bool retired() const { return retired_; }
    // Retired: the next generation's drains reach the connections this one still serves.
    void applySuccessorDrains(const SuccessorDrains& drains);
    std::vector<ListenerSet::HandoverFd> handoverListeners() const { return listeners_.handoverFds(); }
    // `from` says where they come from, for the log.
    void setAdoptedListeners(ListenerSet::AdoptedLookup lookup, std::string from) {
        listeners_.setAdopted(std::move(lookup), std::move(from));
    }
    // Before start(): this process takes over from a running one (`upgrade`), it is no restart.
    void setTakingOver() { takingOver_ = beforeHandover_ = true; }
    // Taking over, once the previous generation handed over: takes the state
    // file's writer lock (control/writer_lock.h); until then nothing is saved.
    Result<bool> becomeWriter();
    // Before start(): the health the previous generation saw, for the first snapshot.
    void setHealthSeed(HealthSeed seed) { healthSeed_ = std::move(seed); }

    // Socket activation: the inherited listening fd for a service, or -1.
    using InheritedListenerLookup = ListenerSet::InheritedLookup;
    void setInheritedListeners(InheritedListenerLookup lookup) { listeners_.setInherited(std::move(lookup)); }

private:
    enum class Order {
        SaveFirst,      // operator intent: nothing is published that is not saved
        PublishFirst,   // automatic (and rollout-abort): traffic first, the save best-effort
    };
    using Transition = std::function<Outcome(ServiceEntry&)>;
    // The operator-change path: guard, transition on a copy of the service,
    // generation and revision, then commit.
    Outcome change(const std::string& service, const ChangeGuard& guard, const Transition& transition,
                   Order order = Order::SaveFirst);
    // Saves the services at `toSave` and publishes `next`, in `order`. The
    // only place that does either.
    Outcome commit(MasterState next, Order order, const std::vector<std::size_t>& toSave, std::string_view what);
    void publish(MasterState next);
    void scheduleHousekeeping();
    void housekeeping();
    // Fleet mode: an operator change goes to etcd as a compare-and-swap on the service's key.
    Outcome proposeToFleet(Outcome outcome, const ServiceEntry& changed);
    // Applies intents read from etcd as one snapshot (services not configured here are skipped).
    void applyFleetIntents(const std::vector<fleet::RemoteIntent>& intents);
    // After a full read: offers this member's overrides of services etcd holds no record of.
    void importToFleet(const std::vector<fleet::RemoteIntent>& present);
    // A member's published pool counters (null: it is gone) into the fleet's sums.
    void observeFleetMember(const std::string& instance, const nlohmann::json* value);
    // Fleet mode, each rollout turn: publishes this member's counters while a
    // rollout runs; true when this member decides the turn (it drives, etcd is reachable).
    bool fleetRolloutTurn();
    // A rollout step or verdict sent to etcd: logged once committed; the service
    // is not judged again until then.
    void awaitRolloutProposal(const std::string& service, std::string message, bool warn);

    boost::asio::io_context& context_;
    config::Config config_;
    std::vector<std::unique_ptr<proxy::Worker>>& workers_;
    std::string engineName_;
    MasterState state_;
    routing::SnapshotPtr snapshot_;
    ChangeSet lastChanges_;
    std::unique_ptr<StateStore> store_;
    ListenerSet listeners_;
    boost::asio::steady_timer housekeepingTimer_;
    std::vector<std::function<void(const MasterState&)>> publishListeners_;
    bool frozen_ = false;
    bool retired_ = false;
    routing::SnapshotPtr retiredSnapshot_;   // retire()'s, before the next generation's drains
    bool takingOver_ = false;
    std::optional<HealthSeed> healthSeed_;
    WriterLock writerLock_;
    bool beforeHandover_ = false;   // taking over, not the writer yet
    uint64_t saveFailures_ = 0;
    uint64_t reloadsOk_ = 0;
    uint64_t reloadsFailed_ = 0;
    std::vector<std::pair<std::string, routing::TimePoint>> rolloutRetryAt_;   // after a failed step save
    std::unique_ptr<fleet::FleetStore> fleet_;
    std::shared_ptr<PendingChange> pendingChange_;
    std::function<void()> fleetSynced_;
    std::unordered_map<std::string, int64_t> fleetApplied_;   // service -> etcd mod_revision applied here
    rollout::FleetSli fleetSli_;                               // every member's pool counters
    bool fleetDriving_ = false;                                // this member drove the last rollout turn
    std::vector<std::string> rolloutProposals_;                // services with a step on its way to etcd
    routing::TimePoint nextCountersPublish_{};
    std::vector<std::string> countersPublished_;               // services whose counters were published last
};

// What a service's rollout is fed now: the time and both pools' counter samples.
rollout::Now rolloutNow(const ServiceEntry& service);
// Health-side facts for a service's rollout: fallbacks, ejected target backends.
rollout::Signals rolloutSignals(const ServiceEntry& service);

} // namespace switchyard::control
