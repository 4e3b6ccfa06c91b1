#include "switchyard/control/control_plane.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "switchyard/config/config_loader.h"
#include "switchyard/control/overrides.h"
#include "switchyard/control/snapshot_builder.h"
#include "switchyard/rollout/rollout_json.h"
#include "switchyard/rollout/sli_window.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::control {

namespace {

Outcome upgradingRefusal() {
    return Outcome::failure("upgrading", "switchyard is handing over to a new binary (upgrade); retry in a moment");
}

} // namespace

ControlPlane::ControlPlane(boost::asio::io_context& context, config::Config config,
                           std::vector<std::unique_ptr<proxy::Worker>>& workers, std::string engineName)
    : context_(context), config_(std::move(config)), workers_(workers), engineName_(std::move(engineName)),
      store_(makeStateStore(config_.stateFile)), listeners_(workers), housekeepingTimer_(context) {
    if (config_.fleet.enabled()) {
        fleet::FleetStore::Callbacks callbacks;
        callbacks.onIntents = [this](const std::vector<fleet::RemoteIntent>& intents, bool full) {
            applyFleetIntents(intents);
            if (full) importToFleet(intents);
            if (full && fleetSynced_) std::exchange(fleetSynced_, nullptr)();
        };
        callbacks.onMember = [this](const std::string& instance, const nlohmann::json* value) {
            observeFleetMember(instance, value);
        };
        fleet_ = std::make_unique<fleet::FleetStore>(context_, config_.fleet, std::move(callbacks));
    }
}

Result<bool> ControlPlane::start() {
    const auto log = telemetry::logger("control");
    if (fleet_)
        if (auto ok = fleet_->loadCredentials(); !ok) return ok;
    // One writer per state file. Taking over (`upgrade`), the running
    // generation holds it until the hand-over: becomeWriter() then.
    if (store_ && !takingOver_)
        if (auto locked = writerLock_.take(store_->where()); !locked)
            return Result<bool>::failure(fmt::format("state: {}", locked.errorText()));
    MasterState initial;
    for (const auto& service : config_.services) initial.add(makeServiceEntry(service));
    if (store_) {
        auto loaded = store_->load(initial);
        if (!loaded) return Result<bool>::failure(fmt::format("state: {}", loaded.errorText()));
        for (const auto& w : loaded->warnings) log->error("state: {}", w);
        for (const auto& k : loaded->merge.kept) log->info("state file keeps override: {}", k);
        for (const auto& r : loaded->merge.replaced) log->info("config replaces override: {}", r);
    }
    for (const auto& service : config_.services)
        if (auto opened = listeners_.open(service); !opened) return opened;
    // A rollout the state holds goes on: its step's window restarts, and the
    // third restart within one step rolls it back (docs/semantics.md "Progressive rollout").
    std::vector<std::size_t> restarted;
    const auto now = routing::Clock::now();
    for (std::size_t i = 0; i < initial.services.size(); ++i) {
        if (!initial.services[i].rolloutActive()) continue;
        ServiceEntry& service = initial.services.edit(i);
        // A fleet member's restart counts for nothing either: the fleet's driver judges the
        // step, and the record etcd holds replaces this cached one at the first sync.
        const bool restart = !takingOver_ && !fleet_;
        const rollout::TickResult result = restart ? rollout::onRestart(*service.rollout, rolloutNow(service))
                                                   : rollout::onHandover(*service.rollout, rolloutNow(service));
        restarted.push_back(i);
        if (result.event == rollout::Event::RolledBack) {
            applyRolloutSplit(service);
            ++service.generation;
            telemetry::logger("rollout")->warn("{}: {}", service.config.name, result.message);
        } else {
            telemetry::logger("rollout")->info("{}: {}", service.config.name, result.message);
        }
    }
    for (std::size_t i = 0; i < initial.services.size(); ++i) {
        ServiceEntry& service = initial.services.edit(i);
        // Taking over: down stays down (and up stays up) until this process's own checks say otherwise.
        if (healthSeed_) healthSeed_->applyTo(service);
        // Nothing was flowing before start: no pool starts out draining.
        for (auto& pool : service.pools) pool.lastEffectiveWeight = service.effectiveSplit().weight(pool.colour);
        updatePoolDrains(service, now);
    }
    healthSeed_.reset();
    initial.revision = 1;
    // The restart count must reach the store, or a crash loop would never roll back.
    commit(std::move(initial), Order::PublishFirst, restarted, "restarting a rollout's window");
    scheduleHousekeeping();
    // Until etcd answers, the state file's copy of the fleet's intent is served.
    if (fleet_) fleet_->start();
    return true;
}

Outcome ControlPlane::commit(MasterState next, Order order, const std::vector<std::size_t>& toSave,
                             std::string_view what) {
    // A retired generation is no writer any more: the next one saves and publishes.
    if (retired_) return Outcome::success();
    const auto save = [&](const MasterState& state) -> Result<bool> {
        if (!store_ || toSave.empty()) return true;
        // Taking over, before the hand-over: the running generation saved it all and is the writer.
        if (beforeHandover_) return true;
        if (!writerLock_.held())
            return Result<bool>::failure("this process does not hold the state file's writer lock");
        std::vector<const ServiceEntry*> services;
        services.reserve(toSave.size());
        for (std::size_t i : toSave) services.push_back(&state.services[i]);
        return store_->save(services);
    };
    if (order == Order::SaveFirst) {
        if (auto saved = save(next); !saved) {
            ++saveFailures_;
            telemetry::logger("control")->error("refusing {}: {}", what, saved.errorText());
            return Outcome::failure("save_failed", saved.errorText());
        }
        publish(std::move(next));
        return Outcome::success();
    }
    publish(std::move(next));
    if (auto saved = save(state_); !saved) {
        ++saveFailures_;
        telemetry::logger("control")->warn("{}: in effect, state not saved: {}", what, saved.errorText());
        return Outcome{true, true, {}, fmt::format("in effect, but the state was not saved: {}", saved.errorText())};
    }
    return Outcome::success();
}

void ControlPlane::publish(MasterState next) {
    ChangeSet changes;
    if (snapshot_ && next.index() == state_.index() && next.services.size() == state_.services.size()) {
        changes.all = false;
        for (std::size_t i = 0; i < next.services.size(); ++i)
            if (!next.services.sameAt(i, state_.services)) changes.services.push_back(i);
        snapshot_ = buildSnapshot(next, state_, *snapshot_);
    } else {
        snapshot_ = buildSnapshot(next);
    }
    state_ = std::move(next);
    lastChanges_ = std::move(changes);
    for (auto& w : workers_) w->publish(snapshot_);
    for (auto& listener : publishListeners_) listener(state_);
}

Outcome ControlPlane::change(const std::string& name, const ChangeGuard& guard, const Transition& transition,
                             Order order) {
    if (frozen_) return upgradingRefusal();
    const std::size_t i = state_.indexOf(name);
    if (i == routing::ServiceIndex::kNone)
        return Outcome::failure("no_such_service", fmt::format("no service named '{}'", name));
    const ServiceEntry& current = state_.services[i];
    if (guard.ifGeneration && *guard.ifGeneration != current.generation)
        return Outcome::failure("generation_mismatch", fmt::format("{} is at generation {}, not {}", name,
                                                                   current.generation, *guard.ifGeneration));
    MasterState next = state_;
    ServiceEntry& service = next.services.edit(i);
    Outcome outcome = transition(service);
    if (!outcome.ok || !outcome.changed) return outcome;
    ++service.generation;
    ++service.revision;
    ++next.revision;
    updatePoolDrains(service, routing::Clock::now());
    if (fleet_) return proposeToFleet(std::move(outcome), service);
    Outcome committed = commit(std::move(next), order, {i}, fmt::format("change to {}", name));
    if (!committed.ok || !committed.message.empty()) return committed;
    return outcome;
}

void ControlPlane::applyAutomatic(const std::vector<std::string>& names, const ServiceMutation& mutate,
                                  const char* why, bool movesIntent) {
    MasterState next = state_;
    std::vector<std::size_t> toSave;
    bool changed = false;
    const auto now = routing::Clock::now();
    for (const auto& name : names) {
        const std::size_t i = next.indexOf(name);
        if (i == routing::ServiceIndex::kNone) continue;
        const auto before = next.services.ptr(i);
        ServiceEntry& s = next.services.edit(i);
        const Effect effect = mutate(s);
        if (effect == Effect::None) {
            next.services.set(i, before);   // untouched: it keeps its route
            continue;
        }
        if (movesIntent) ++s.generation;
        ++s.revision;
        updatePoolDrains(s, now);
        if (effect == Effect::PublishAndSave) toSave.push_back(i);
        changed = true;
    }
    if (!changed) return;
    ++next.revision;
    commit(std::move(next), Order::PublishFirst, toSave, why);
}

// --- fleet mode ---

Outcome ControlPlane::proposeToFleet(Outcome outcome, const ServiceEntry& changed) {
    const std::string name = changed.config.name;
    if (!fleet_->available())
        return Outcome::failure("store_unavailable",
                                "the fleet's store (etcd) is unavailable: serving the last applied intent, "
                                "changes are refused until it is back");
    Overrides intent = overridesOf(changed);
    intent.fallback.reset();   // the fallback overlay is this member's judgement, never the fleet's
    auto pending = std::make_shared<PendingChange>(context_);
    pendingChange_ = pending;
    const std::string value = overridesToJson(intent).dump();
    fleet_->propose(name, value, fleet_->modRevisionOf(name),
                    [this, pending, name, value, outcome = std::move(outcome)](fleet::ProposeResult r) {
                        using Kind = fleet::ProposeResult::Kind;
                        if (r.kind == Kind::Committed) {
                            applyFleetIntents({fleet::RemoteIntent{name, value, r.revision, false}});
                            pending->finish(outcome);
                            return;
                        }
                        if (r.kind == Kind::Conflict) {
                            if (r.current) applyFleetIntents({*r.current});
                            const ServiceEntry* now = state_.find(name);
                            pending->finish(Outcome::failure(
                                "generation_mismatch",
                                fmt::format("{} was changed by another member of the fleet meanwhile; it is at "
                                            "generation {} now, nothing was applied",
                                            name, now ? now->generation : 0)));
                            return;
                        }
                        pending->finish(Outcome::failure(
                            "store_unavailable",
                            fmt::format("the fleet's store (etcd) did not commit the change: {}", r.why)));
                    });
    return Outcome{true, true, kPendingCode, {}};
}

void ControlPlane::importToFleet(const std::vector<fleet::RemoteIntent>& present) {
    // A service the fleet has no record of, with overrides here (a single
    // instance's state file, now in a fleet): offered as the fleet's first
    // record, created only if still absent, so the first member to start wins
    // and the others take its intent (docs/fleet.md "Moving an instance into a fleet").
    for (const ServiceEntry& s : state_.services) {
        const std::string& name = s.config.name;
        if (std::any_of(present.begin(), present.end(), [&](const auto& r) { return r.service == name; })) continue;
        Overrides intent = overridesOf(s);
        intent.fallback.reset();
        if (intent.empty()) continue;
        std::string value = overridesToJson(intent).dump();
        fleet_->propose(name, value, 0, [this, name, value](fleet::ProposeResult r) {
            if (r.kind == fleet::ProposeResult::Kind::Committed) {
                telemetry::logger("fleet")->info("{}: this member's intent became the fleet's first record", name);
                applyFleetIntents({fleet::RemoteIntent{name, value, r.revision, false}});
            } else if (r.kind == fleet::ProposeResult::Kind::Conflict && r.current) {
                applyFleetIntents({*r.current});
            }
        });
    }
}

void ControlPlane::applyFleetIntents(const std::vector<fleet::RemoteIntent>& intents) {
    const auto log = telemetry::logger("fleet");
    MasterState next = state_;
    std::vector<std::size_t> touched;
    const auto now = routing::Clock::now();
    for (const auto& remote : intents) {
        const std::size_t i = next.indexOf(remote.service);
        const config::ServiceConfig* config = config_.findService(remote.service);
        if (i == routing::ServiceIndex::kNone || !config) continue;   // a service this member does not serve
        int64_t& applied = fleetApplied_[remote.service];
        if (remote.modRevision != 0 && remote.modRevision <= applied) continue;   // already in effect
        const ServiceEntry& old = next.services[i];
        Overrides intent;
        if (remote.deleted) {
            intent = overridesOf(makeServiceEntry(*config));   // back to the config's values
            intent.generation = old.generation + 1;
        } else {
            try {
                const auto j = nlohmann::json::parse(remote.value);
                if (!floatsInRange(j)) throw std::invalid_argument("a number is out of range");
                intent = overridesFromJson(j);
            } catch (const std::exception& e) {
                log->error("{}: the fleet's record at revision {} is unusable, keeping the current intent: {}",
                           remote.service, remote.modRevision, e.what());
                applied = remote.modRevision;
                continue;
            }
        }
        intent.fallback = overridesOf(old).fallback;   // fallback stays this member's own
        MergeReport report;
        ServiceEntry updated =
            transitions::withIntent(&old, *config, intent, transitions::IntentSource::Fleet, report, now);
        // The record carries the step, not the window: this member's own window goes on.
        if (updated.rollout)
            rollout::adoptWindow(*updated.rollout, old.rollout ? &*old.rollout : nullptr, rolloutNowOf(old));
        log->info("{}: the fleet's intent (etcd revision {}) applied: generation {}, split blue={} green={}",
                  remote.service, remote.modRevision, updated.generation, updated.split.blue, updated.split.green);
        next.services.edit(i) = std::move(updated);
        applied = remote.modRevision;
        // A watch message may carry several writes of one key: one record to save.
        if (std::find(touched.begin(), touched.end(), i) == touched.end()) touched.push_back(i);
    }
    if (!touched.empty()) {
        ++next.revision;
        // Published first; the state file caches the fleet's intent for a restart while etcd is down.
        commit(std::move(next), Order::PublishFirst, touched, "the fleet's intent");
    }
    fleet_->publishApplied(fleet_->appliedRevision());
}

// --- operator changes ---

Outcome ControlPlane::setSplit(const std::string& name, config::Split split, const ChangeGuard& guard) {
    return change(name, guard,
                  [&](ServiceEntry& s) { return transitions::split(s, split, guard, "split", rolloutNowOf(s)); });
}

Outcome ControlPlane::cutover(const std::string& name, config::Colour colour, const ChangeGuard& guard) {
    return change(name, guard, [&](ServiceEntry& s) {
        return transitions::split(s, transitions::cutoverSplit(s, colour), guard, "cutover", rolloutNowOf(s));
    });
}

Outcome ControlPlane::rollback(const std::string& name, const ChangeGuard& guard) {
    return change(name, guard, [&](ServiceEntry& s) { return transitions::rollback(s, guard, rolloutNowOf(s)); });
}

Outcome ControlPlane::setBackendWeight(const std::string& name, config::Colour colour, const config::Endpoint& address,
                                       uint32_t weight, const ChangeGuard& guard) {
    return change(name, guard,
                  [&](ServiceEntry& s) { return transitions::backendWeight(s, colour, address, weight, guard); });
}

Outcome ControlPlane::setBackendAdminState(const std::string& name, config::Colour colour,
                                           const config::Endpoint& address, AdminState adminState,
                                           const ChangeGuard& guard) {
    return change(name, guard, [&](ServiceEntry& s) {
        return transitions::backendAdminState(s, colour, address, adminState, guard, routing::Clock::now());
    });
}

Outcome ControlPlane::addBackend(const std::string& name, config::Colour colour, const config::Endpoint& address,
                                 uint32_t weight, const ChangeGuard& guard) {
    return change(name, guard, [&](ServiceEntry& s) {
        return transitions::addBackend(s, colour, address, weight, guard, routing::Clock::now());
    });
}

Outcome ControlPlane::removeBackend(const std::string& name, config::Colour colour, const config::Endpoint& address,
                                    const ChangeGuard& guard) {
    return change(name, guard, [&](ServiceEntry& s) {
        return transitions::removeBackend(s, colour, address, guard, routing::Clock::now());
    });
}

Outcome ControlPlane::setPoolOffline(const std::string& name, config::Colour colour, bool offline,
                                     const ChangeGuard& guard) {
    return change(name, guard, [&](ServiceEntry& s) { return transitions::poolOffline(s, colour, offline, guard); });
}

Outcome ControlPlane::reset(const std::string& name, const ChangeGuard& guard) {
    const config::ServiceConfig* cfg = config_.findService(name);
    if (!cfg) return Outcome::failure("no_such_service", fmt::format("no service named '{}'", name));
    return change(name, guard, [&](ServiceEntry& s) { return transitions::reset(s, *cfg, guard, rolloutNowOf(s)); });
}

// --- reload ---

ReloadReport ControlPlane::reload(bool apply) {
    const auto log = telemetry::logger("control");
    ReloadReport report;
    if (apply && frozen_) {
        report.outcome = upgradingRefusal();
        return report;
    }
    if (config_.sourcePath.empty()) {
        if (apply) ++reloadsFailed_;
        report.outcome = Outcome::failure("refused", "this daemon runs a built-in config (--demo); nothing to reload");
        return report;
    }
    auto loaded = config::loadConfigFile(config_.sourcePath);
    if (!loaded) {
        if (apply) ++reloadsFailed_;
        report.outcome = Outcome::failure("bad_config", loaded.errorText());
        if (apply) log->error("reload refused, keeping the running config: {}", loaded.errorText());
        return report;
    }
    config::Config next = std::move(loaded).value();

    // The new state from the new config, then the running overrides merged in
    // by the rule a restart uses; what lives only in the running daemon
    // (identities, health, ramps, drains, live rollout windows) is kept.
    const auto now = routing::Clock::now();
    MergeReport merged;
    MasterState fresh;
    for (const auto& config : next.services)
        fresh.add(transitions::reloaded(state_.find(config.name), config, merged, now));
    if (!apply) {
        for (const auto& service : next.services)
            if (!config_.findService(service.name)) report.servicesAdded.push_back(service.name);
        for (const auto& service : config_.services)
            if (!next.findService(service.name)) report.servicesRemoved.push_back(service.name);
        report.overridesKept = std::move(merged.kept);
        report.overridesReplaced = std::move(merged.replaced);
        report.preview = std::move(fresh);
        return report;
    }
    // New listeners first: a port that cannot be bound refuses the reload whole.
    std::vector<std::string> opened;
    for (const auto& service : next.services) {
        const config::ServiceConfig* old = config_.findService(service.name);
        if (old && old->listen == service.listen) continue;
        if (old) listeners_.close(service.name);
        auto ok = listeners_.open(service);
        if (!ok) {
            for (const auto& name : opened) listeners_.close(name);
            ++reloadsFailed_;
            report.outcome = Outcome::failure("refused", ok.errorText());
            return report;
        }
        opened.push_back(service.name);
        if (!old) report.servicesAdded.push_back(service.name);
    }
    for (const auto& service : config_.services)
        if (!next.findService(service.name)) {
            listeners_.close(service.name);
            report.servicesRemoved.push_back(service.name);
        }
    fresh.revision = state_.revision + 1;
    const bool fleetChanged = !(config_.fleet == next.fleet);
    config_ = std::move(next);
    if (fleetChanged) log->warn("fleet changed in the config; it takes effect at the next restart");
    if (store_ && store_->where() != config_.stateFile)
        log->warn("state_file changed in the config; it takes effect at the next restart");
    std::vector<std::size_t> all(fresh.services.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    commit(std::move(fresh), Order::PublishFirst, all, "reload");
    if (store_ && !report.servicesRemoved.empty())
        if (auto forgotten = store_->forget(report.servicesRemoved); !forgotten)
            log->warn("state of removed services not dropped: {}", forgotten.errorText());
    report.overridesKept = std::move(merged.kept);
    report.overridesReplaced = std::move(merged.replaced);
    ++reloadsOk_;
    log->info("reloaded {}: {} override(s) kept, {} replaced, {} service(s) added, {} removed", config_.sourcePath,
              report.overridesKept.size(), report.overridesReplaced.size(), report.servicesAdded.size(),
              report.servicesRemoved.size());
    return report;
}

// --- housekeeping: slow-start ramps and removals ---

void ControlPlane::scheduleHousekeeping() {
    housekeepingTimer_.expires_after(std::chrono::seconds(1));
    housekeepingTimer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        housekeeping();
        scheduleHousekeeping();
    });
}

void ControlPlane::housekeeping() {
    if (retired_) return;
    const auto now = routing::Clock::now();
    // Only services with a ramp or a removal due are touched: a ramping
    // backend's weight grows with time, so each second brings its service a new
    // route (revision, not generation; ramps are not saved), and a removed
    // backend leaves once its drain deadline passed (saved).
    std::vector<std::string> due;
    for (const ServiceEntry& s : state_.services) {
        bool touch = false;
        for (const auto& pool : s.pools)
            for (const auto& b : pool.backends) touch |= b.rampStart != kNoRamp || (b.removing && b.drainDeadline <= now);
        if (touch) due.push_back(s.config.name);
    }
    if (due.empty()) return;
    applyAutomatic(due, [now](ServiceEntry& s) {
        const bool moved = transitions::advanceRamps(s, now);
        if (transitions::expireRemovedBackends(s, now)) return Effect::PublishAndSave;
        return moved ? Effect::Publish : Effect::None;
    }, "housekeeping");
}

// --- progressive rollouts ---

rollout::Now rolloutNow(const ServiceEntry& service) {
    rollout::Now now;
    now.steady = routing::Clock::now();
    now.unixMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    for (auto colour : config::kColours) {
        rollout::PoolSample& sample = now.samples[config::index(colour)];
        if (const auto& counters = service.poolCounters[config::index(colour)]) sample = rollout::samplePool(*counters);
        for (const BackendEntry& b : service.pool(colour).backends)
            sample.ejections += b.handle->ejections.load(std::memory_order_relaxed);
    }
    return now;
}

rollout::Signals rolloutSignals(const ServiceEntry& service) {
    rollout::Signals signals;
    if (!service.rollout) return signals;
    const config::Colour target = service.rollout->target();
    if (service.fallback.active) {
        signals.targetFallback = service.fallback.from == target;
        signals.baselineFallback = service.fallback.from != target;
        signals.fallbackReason = service.fallback.reason;
    }
    for (const BackendEntry& b : service.pool(target).backends)
        if (b.handle->ejected.load(std::memory_order_relaxed)) signals.ejectedTargets.push_back(b.address.toString());
    return signals;
}

Outcome ControlPlane::startRollout(const std::string& name, const rollout::RolloutPlan& plan,
                                   const ChangeGuard& guard) {
    return change(name, guard,
                  [&](ServiceEntry& s) { return transitions::startRollout(s, plan, guard, rolloutNowOf(s)); });
}

Outcome ControlPlane::rolloutAction(const std::string& name, rollout::Action action, const ChangeGuard& guard) {
    // rollout-abort is a rollback: traffic first, so a full disk never keeps a bad target in traffic.
    const Order order = action == rollout::Action::Abort ? Order::PublishFirst : Order::SaveFirst;
    return change(name, guard,
                  [&](ServiceEntry& s) { return transitions::rolloutAction(s, action, guard, rolloutNowOf(s)); }, order);
}

rollout::Now ControlPlane::rolloutNowOf(const ServiceEntry& service) const {
    rollout::Now now = rolloutNow(service);
    if (fleet_) now.samples = fleetSli_.sum(service.config.name, fleet_->config().instance, now.samples);
    return now;
}

void ControlPlane::observeFleetMember(const std::string& instance, const nlohmann::json* value) {
    std::map<std::string, rollout::PoolSamples> services;
    const auto pools = value ? value->find("pools") : nlohmann::json::const_iterator{};
    if (value && pools != value->end() && pools->is_object())
        for (const auto& [service, both] : pools->items()) {
            try {
                rollout::PoolSamples samples;
                for (auto colour : config::kColours)
                    samples[config::index(colour)] = rollout::sampleFrom(both.at(config::toString(colour)));
                services.emplace(service, samples);
            } catch (const std::exception& e) {
                telemetry::logger("fleet")->debug("{}: counters of {} unusable: {}", instance, service, e.what());
            }
        }
    fleetSli_.observe(instance, services);   // gone (null), or services no longer listed: their counts stay
}

bool ControlPlane::fleetRolloutTurn() {
    // Every member publishes its counters while a rollout runs (at once when one starts or
    // ends, then once a second): the driver sums them.
    const auto now = routing::Clock::now();
    std::vector<std::string> running;
    for (const ServiceEntry& s : state_.services)
        if (s.rolloutActive()) running.push_back(s.config.name);
    if (running != countersPublished_ || (!running.empty() && now >= nextCountersPublish_)) {
        nextCountersPublish_ = now + std::chrono::seconds(1);
        nlohmann::json pools = nlohmann::json::object();
        for (const auto& name : running) {
            const rollout::Now local = rolloutNow(*state_.find(name));
            nlohmann::json& both = pools[name];
            for (auto colour : config::kColours)
                both[config::toString(colour)] = rollout::sampleJson(local.samples[config::index(colour)]);
        }
        fleet_->publishCounters(std::move(pools));
        countersPublished_ = std::move(running);
    }
    // Without etcd nothing is decided on partial data: the step holds.
    const bool driving = fleet_->driving();
    if (driving && !fleetDriving_)
        telemetry::logger("rollout")->info("this member judges the fleet's rollouts from now on");
    fleetDriving_ = driving;
    return driving;
}

void ControlPlane::awaitRolloutProposal(const std::string& service, std::string message, bool warn) {
    std::shared_ptr<PendingChange> pending = takePendingChange();
    if (!pending) return;
    rolloutProposals_.push_back(service);
    pending->done.async_wait([this, pending, service, message = std::move(message), warn](const auto&) {
        std::erase(rolloutProposals_, service);
        const auto log = telemetry::logger("rollout");
        if (pending->outcome && pending->outcome->ok) {
            if (warn) log->warn("{}: {}", service, message);
            else log->info("{}: {}", service, message);
        } else {
            log->warn("{}: not recorded in the fleet's store, judged again next turn: {}", service,
                      pending->outcome ? pending->outcome->message : std::string("no answer"));
        }
    });
}

void ControlPlane::rolloutTick() {
    if (frozen_) return;   // the next generation takes the step (deadlines are absolute in the state)
    if (fleet_ && !fleetRolloutTurn()) return;
    const auto log = telemetry::logger("rollout");
    std::vector<std::string> names;
    for (const auto& s : state_.services)
        if (s.rolloutActive() && std::find(rolloutProposals_.begin(), rolloutProposals_.end(), s.config.name) ==
                                     rolloutProposals_.end())
            names.push_back(s.config.name);
    for (const auto& name : names) {
        const ServiceEntry* current = state_.find(name);
        if (!current || !current->rolloutActive()) continue;
        rollout::Rollout next = *current->rollout;
        const rollout::TickResult result = rollout::tick(next, rolloutNowOf(*current), rolloutSignals(*current));
        if (result.event == rollout::Event::None) continue;
        const Transition takeStep = [&](ServiceEntry& s) {
            s.rollout = next;
            applyRolloutSplit(s);
            return Outcome::success();
        };
        if (fleet_) {
            // Every verdict is the fleet's: one compare-and-swap on the service's record,
            // which every member (this one too) then applies.
            const bool warn = result.event == rollout::Event::RolledBack || result.event == rollout::Event::Suspended;
            const Outcome o = change(name, {}, takeStep);
            if (o.ok && o.code == kPendingCode) awaitRolloutProposal(name, result.message, warn);
            else if (!o.ok)
                log->warn("{}: not recorded in the fleet's store, judged again next turn: {}", name, o.message);
            continue;
        }
        switch (result.event) {
        case rollout::Event::None:
            break;
        case rollout::Event::Advanced:
        case rollout::Event::Canary:
        case rollout::Event::Promoted: {
            auto retry = std::find_if(rolloutRetryAt_.begin(), rolloutRetryAt_.end(),
                                      [&](const auto& e) { return e.first == name; });
            const auto now = routing::Clock::now();
            if (retry != rolloutRetryAt_.end() && now < retry->second) break;
            const Outcome o = change(name, {}, takeStep);
            if (!o.ok) {
                // Holding the step is safe; stepping forward unsaved is not (a restart would forget it).
                log->error("{}: step not taken, retrying in 5s: {}", name, o.message);
                if (retry == rolloutRetryAt_.end()) rolloutRetryAt_.emplace_back(name, now + std::chrono::seconds(5));
                else retry->second = now + std::chrono::seconds(5);
                break;
            }
            if (retry != rolloutRetryAt_.end()) rolloutRetryAt_.erase(retry);
            log->info("{}: {}", name, result.message);
            break;
        }
        case rollout::Event::RolledBack:
            log->warn("{}: {}", name, result.message);
            applyAutomatic(name, [&](ServiceEntry& s) {
                s.rollout = next;
                applyRolloutSplit(s);
                return Effect::PublishAndSave;
            }, "rollout rollback", /*movesIntent=*/true);
            break;
        case rollout::Event::Suspended:
            log->warn("{}: {}", name, result.message);
            applyAutomatic(name, [&](ServiceEntry& s) {
                s.rollout = next;
                return Effect::PublishAndSave;
            }, "rollout suspension");
            break;
        }
    }
}


// --- upgrade ---

Result<bool> ControlPlane::freezeForUpgrade() {
    frozen_ = true;
    if (!store_) return true;
    std::vector<const ServiceEntry*> services;
    for (const auto& s : state_.services) services.push_back(&s);
    if (auto saved = store_->save(services); !saved) {
        frozen_ = false;
        ++saveFailures_;
        return Result<bool>::failure(fmt::format("cannot save the state before handing over: {}", saved.errorText()));
    }
    return true;
}

void ControlPlane::retire(routing::TimePoint deadline, std::chrono::milliseconds spread) {
    frozen_ = true;
    retired_ = true;
    writerLock_.release();   // the next generation writes from now on
    housekeepingTimer_.cancel();
    listeners_.stopAccepting();
    // The next generation is the fleet's member now (same instance name, its own lease).
    if (fleet_) fleet_->leave();
    if (!snapshot_) return;
    snapshot_ = drainingEverything(*snapshot_, deadline, spread);
    retiredSnapshot_ = snapshot_;
    for (auto& w : workers_) w->publish(snapshot_);
}

Result<bool> ControlPlane::becomeWriter() {
    beforeHandover_ = false;
    if (!store_) return true;
    return writerLock_.take(store_->where());
}

void ControlPlane::applySuccessorDrains(const SuccessorDrains& drains) {
    if (!retiredSnapshot_) return;
    snapshot_ = withSuccessorDrains(*retiredSnapshot_, drains);
    for (auto& w : workers_) w->publish(snapshot_);
}

} // namespace switchyard::control
