#include "switchyard/control/control_plane.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>

#include <fcntl.h>

#include <fmt/format.h>

#include "switchyard/config/config_loader.h"
#include "switchyard/control/snapshot_builder.h"
#include "switchyard/proxy/listen_socket.h"
#include "switchyard/rollout/sli_window.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::control {
namespace {

std::string describe(const config::Split& s) { return fmt::format("blue={} green={}", s.blue, s.green); }

} // namespace

ControlPlane::ControlPlane(boost::asio::io_context& context, config::Config config,
                           std::vector<std::unique_ptr<proxy::Worker>>& workers, std::string engineName)
    : context_(context), config_(std::move(config)), workers_(workers), engineName_(std::move(engineName)),
      store_(config_.stateFile), housekeepingTimer_(context) {}

Result<bool> ControlPlane::start() {
    const auto log = telemetry::logger("control");
    MasterState initial;
    for (const auto& service : config_.services) initial.services.push_back(makeServiceEntry(service));
    if (store_.enabled()) {
        auto merged = store_.load(initial);
        if (!merged) {
            log->error("state file {}: {}", store_.path(), merged.errorText());
        } else {
            for (const auto& k : merged->kept) log->info("state file keeps override: {}", k);
            for (const auto& r : merged->replaced) log->info("config replaces override: {}", r);
        }
    }
    for (const auto& service : config_.services) {
        auto opened = openListeners(service);
        if (!opened) return Result<bool>(opened.errors());
    }
    // A rollout the state file holds goes on: its step's window restarts, and the
    // third restart within one step rolls it back (SPEC.md "Progressive rollout").
    bool rolloutRestarted = false;
    for (auto& service : initial.services) {
        if (!service.rolloutActive()) continue;
        const rollout::TickResult restarted = rollout::onRestart(*service.rollout, rolloutNow(service));
        rolloutRestarted = true;
        if (restarted.event == rollout::Event::RolledBack) {
            applyRolloutSplit(service);
            ++service.generation;
            telemetry::logger("rollout")->warn("{}: {}", service.config.name, restarted.message);
        } else {
            telemetry::logger("rollout")->info("{}: {}", service.config.name, restarted.message);
        }
    }
    const auto now = routing::Clock::now();
    for (auto& service : initial.services) {
        // Nothing was flowing before start: no pool starts out draining.
        for (auto& pool : service.pools) pool.lastEffectiveWeight = service.effectiveSplit().weight(pool.colour);
        updatePoolDrains(service, now);
    }
    initial.revision = 1;
    publish(std::move(initial));
    if (rolloutRestarted && store_.enabled()) {
        // The restart count must reach the file, or a crash loop would never roll back.
        if (auto saved = store_.save(state_); !saved) {
            ++saveFailures_;
            log->warn("state file not saved after restarting a rollout's window: {}", saved.errorText());
        }
    }
    scheduleHousekeeping();
    return true;
}

Result<bool> ControlPlane::openListeners(const config::ServiceConfig& service) {
    std::vector<UniqueFd> fds;
    if (const int inherited = inheritedListeners_ ? inheritedListeners_(service) : -1; inherited >= 0) {
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            UniqueFd fd(::fcntl(inherited, F_DUPFD_CLOEXEC, 0));
            if (!fd.valid())
                return Result<bool>::failure(fmt::format("service {}: cannot share the inherited socket: {}",
                                                         service.name, std::strerror(errno)));
            ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
            fds.push_back(std::move(fd));
        }
        telemetry::logger("control")->info("service {}: accepting on the socket inherited from systemd", service.name);
    }
    for (std::size_t i = fds.size(); i < workers_.size(); ++i) {
        auto fd = proxy::openListenSocket(service.listen, /*reusePort=*/true);
        if (!fd) return Result<bool>::failure(fmt::format("service {}: {}", service.name, fd.errorText()));
        fds.push_back(std::move(fd).value());
    }
    for (std::size_t i = 0; i < workers_.size(); ++i) workers_[i]->addListener(service.name, std::move(fds[i]));
    return true;
}

void ControlPlane::closeListeners(const std::string& service) {
    for (auto& w : workers_) w->removeListener(service);
}

void ControlPlane::stopAccepting() {
    for (auto& w : workers_) w->stopAccepting();
}

void ControlPlane::publish(MasterState next) {
    state_ = std::move(next);
    auto snapshot = buildSnapshot(state_);
    for (auto& w : workers_) w->publish(snapshot);
    for (auto& listener : publishListeners_) listener(state_);
}

Outcome ControlPlane::checkTarget(const ServiceEntry& service, config::Colour colour, bool force) const {
    if (force) return Outcome::success();
    const PoolEntry& pool = service.pool(colour);
    const char* name = config::toString(colour);
    if (pool.offline)
        return Outcome::failure("refused", fmt::format("pool {} of {} is offline (use force to override)", name,
                                                       service.config.name));
    if (pool.backends.empty())
        return Outcome::failure("refused",
                                fmt::format("pool {} of {} is empty (use force to override)", name, service.config.name));
    if (pool.routableBackends() == 0)
        return Outcome::failure("refused", fmt::format("pool {} of {} has no healthy enabled backend (use force to override)",
                                                       name, service.config.name));
    return Outcome::success();
}

Outcome ControlPlane::checkRoutable(const ServiceEntry& service, bool force) const {
    const config::Split effective = service.effectiveSplit();
    uint32_t routable = 0;
    for (auto colour : config::kColours)
        if (service.pool(colour).routableBackends() > 0) routable += effective.weight(colour);
    if (routable == 0 && !force)
        return Outcome::failure("refused", fmt::format("the change would leave {} with no routable weight "
                                                       "(effective split {}; use force to override)",
                                                       service.config.name, describe(effective)));
    return Outcome::success();
}

Outcome ControlPlane::change(const std::string& serviceName, const ChangeGuard& guard, bool movesIntent,
                             const Mutation& mutate, bool publishFirst) {
    const ServiceEntry* current = state_.find(serviceName);
    if (!current) return Outcome::failure("no_such_service", fmt::format("no service named '{}'", serviceName));
    if (guard.ifGeneration && *guard.ifGeneration != current->generation)
        return Outcome::failure("generation_mismatch",
                                fmt::format("{} is at generation {}, not {}", serviceName, current->generation,
                                            *guard.ifGeneration));
    MasterState next = state_;
    ServiceEntry& service = *next.find(serviceName);
    Outcome outcome = mutate(service);
    if (!outcome.ok) return outcome;
    if (outcome.code == "unchanged") return Outcome::success();
    if (movesIntent) ++service.generation;
    ++service.revision;
    ++next.revision;
    updatePoolDrains(service, routing::Clock::now());
    if (publishFirst) {
        publish(std::move(next));
        if (store_.enabled()) {
            if (auto saved = store_.save(state_); !saved) {
                ++saveFailures_;
                telemetry::logger("control")->warn("{}: change published, state file not saved: {}", serviceName,
                                                   saved.errorText());
                return Outcome{true, {}, fmt::format("in effect, but the state file was not saved: {}",
                                                     saved.errorText())};
            }
        }
        return Outcome::success();
    }
    if (store_.enabled()) {
        auto saved = store_.save(next);
        if (!saved) {
            ++saveFailures_;
            telemetry::logger("control")->error("refusing change to {}: {}", serviceName, saved.errorText());
            return Outcome::failure("save_failed", saved.errorText());
        }
    }
    publish(std::move(next));
    return Outcome::success();
}

Outcome ControlPlane::yieldRollout(ServiceEntry& s, const ChangeGuard& guard, const char* command) const {
    if (!s.rolloutActive()) return Outcome::success();
    rollout::Rollout& r = *s.rollout;
    if (!guard.force)
        return Outcome::failure("rollout_active",
                                fmt::format("{} has a rollout to {} in progress (step {}/{}, {}%, {}); use "
                                            "rollout-abort or promote, or add force to abort it with this {}",
                                            s.config.name, config::toString(r.target()), r.step + 1,
                                            r.plan.steps.size(), r.percent(), rollout::toString(r.phase), command));
    rollout::act(r, rollout::Action::Abort, rolloutNow(s), fmt::format("aborted by a forced {}", command));
    applyRolloutSplit(s);
    telemetry::logger("rollout")->warn("{}: {}", s.config.name, r.reason);
    return Outcome::success();
}

Outcome ControlPlane::setSplit(const std::string& name, config::Split split, const ChangeGuard& guard) {
    return setSplitFor(name, split, guard, "split");
}

Outcome ControlPlane::setSplitFor(const std::string& name, config::Split split, const ChangeGuard& guard,
                                  const char* command) {
    return change(name, guard, true, [&](ServiceEntry& s) {
        if (split.blue == 0 && split.green == 0)
            return Outcome::failure("refused", "split blue=0 green=0 leaves no routable weight");
        if (auto o = yieldRollout(s, guard, command); !o.ok) return o;
        if (split == s.split) {
            // Setting the split it already has acknowledges a fallback (restore: manual).
            if (!s.fallback.active) return Outcome{true, "unchanged", {}};
            s.fallback = {};
            return checkRoutable(s, guard.force);
        }
        for (auto colour : config::kColours)
            if (split.weight(colour) > s.split.weight(colour))
                if (auto o = checkTarget(s, colour, guard.force); !o.ok) return o;
        s.rollbackSplit = s.split;
        s.split = split;
        // An operator's split ends a fallback: they have seen it and chose.
        s.fallback = {};
        return checkRoutable(s, guard.force);
    });
}

Outcome ControlPlane::cutover(const std::string& name, config::Colour colour, const ChangeGuard& guard) {
    config::Split split{0, 0};
    split.weight(colour) = 100;
    const ServiceEntry* s = state_.find(name);
    if (s && s->split.weight(config::other(colour)) == 0 && s->split.weight(colour) > 0) split = s->split;
    return setSplitFor(name, split, guard, "cutover");
}

Outcome ControlPlane::rollback(const std::string& name, const ChangeGuard& guard) {
    return change(name, guard, true, [&](ServiceEntry& s) {
        if (s.rolloutActive()) {
            // Forced: aborting the rollout is the rollback (a whole rollout is one
            // event); a second rollback brings its last split back.
            const config::Split during = s.split;
            if (auto o = yieldRollout(s, guard, "rollback"); !o.ok) return o;
            s.rollbackSplit = during;
            s.fallback = {};
            return checkRoutable(s, guard.force);
        }
        if (!s.rollbackSplit)
            return Outcome::failure("refused", fmt::format("{} has no earlier split to roll back to", name));
        const config::Split target = *s.rollbackSplit;
        for (auto colour : config::kColours)
            if (target.weight(colour) > s.split.weight(colour))
                if (auto o = checkTarget(s, colour, guard.force); !o.ok) return o;
        s.rollbackSplit = s.split;
        s.split = target;
        s.fallback = {};
        return checkRoutable(s, guard.force);
    });
}

namespace {

Outcome findBackend(ServiceEntry& s, config::Colour colour, const config::Endpoint& address, BackendEntry*& out) {
    out = s.pool(colour).find(address);
    if (!out)
        return Outcome::failure("no_such_backend", fmt::format("{} has no backend {} in pool {}", s.config.name,
                                                               address.toString(), config::toString(colour)));
    return Outcome::success();
}

} // namespace

Outcome ControlPlane::setBackendWeight(const std::string& name, config::Colour colour, const config::Endpoint& address,
                                       uint32_t weight, const ChangeGuard& guard) {
    return change(name, guard, true, [&](ServiceEntry& s) {
        BackendEntry* b = nullptr;
        if (auto o = findBackend(s, colour, address, b); !o.ok) return o;
        if (b->weight == weight) return Outcome{true, "unchanged", {}};
        b->weight = weight;
        return checkRoutable(s, guard.force);
    });
}

Outcome ControlPlane::setBackendAdminState(const std::string& name, config::Colour colour,
                                           const config::Endpoint& address, AdminState adminState,
                                           const ChangeGuard& guard) {
    return change(name, guard, true, [&](ServiceEntry& s) {
        BackendEntry* b = nullptr;
        if (auto o = findBackend(s, colour, address, b); !o.ok) return o;
        if (b->removing)
            return Outcome::failure("refused", fmt::format("backend {} is being removed", address.toString()));
        if (b->adminState == adminState) return Outcome{true, "unchanged", {}};
        if (adminState == AdminState::Enabled) markBackendReturned(*b, routing::Clock::now());
        b->adminState = adminState;
        b->drainDeadline = adminState == AdminState::Enabled ? routing::kNoDeadline
                                                             : routing::Clock::now() + s.config.drainTimeout;
        // Maintenance: a disabled backend is not checked, so its health is unknown.
        if (adminState == AdminState::Disabled) b->checked = false;
        return checkRoutable(s, guard.force);
    });
}

Outcome ControlPlane::addBackend(const std::string& name, config::Colour colour, const config::Endpoint& address,
                                 uint32_t weight, const ChangeGuard& guard) {
    return change(name, guard, true, [&](ServiceEntry& s) {
        for (auto c : config::kColours) {
            if (BackendEntry* existing = s.pool(c).find(address)) {
                if (c == colour && existing->removing) {
                    // Re-adding a backend that is still draining out: keep it.
                    existing->removing = false;
                    existing->drainDeadline = routing::kNoDeadline;
                    existing->weight = weight;
                    markBackendReturned(*existing, routing::Clock::now());
                    return Outcome::success();
                }
                return Outcome::failure("already_exists", fmt::format("{} already has backend {} in pool {}", name,
                                                                      address.toString(), config::toString(c)));
            }
        }
        BackendEntry entry = makeBackendEntry(s, colour, config::BackendConfig{address, weight});
        entry.addedAtRuntime = true;
        markBackendReturned(entry, routing::Clock::now());
        s.pool(colour).backends.push_back(std::move(entry));
        return Outcome::success();
    });
}

Outcome ControlPlane::removeBackend(const std::string& name, config::Colour colour, const config::Endpoint& address,
                                    const ChangeGuard& guard) {
    return change(name, guard, true, [&](ServiceEntry& s) {
        BackendEntry* b = nullptr;
        if (auto o = findBackend(s, colour, address, b); !o.ok) return o;
        if (b->removing) return Outcome{true, "unchanged", {}};
        b->removing = true;
        b->drainDeadline = routing::Clock::now() + s.config.drainTimeout;
        return checkRoutable(s, guard.force);
    });
}

Outcome ControlPlane::setPoolOffline(const std::string& name, config::Colour colour, bool offline,
                                     const ChangeGuard& guard) {
    return change(name, guard, true, [&](ServiceEntry& s) {
        PoolEntry& pool = s.pool(colour);
        if (pool.offline == offline) return Outcome{true, "unchanged", {}};
        pool.offline = offline;
        return checkRoutable(s, guard.force);
    });
}

Outcome ControlPlane::reset(const std::string& name, const ChangeGuard& guard) {
    const config::ServiceConfig* cfg = config_.findService(name);
    return change(name, guard, true, [&](ServiceEntry& s) {
        if (!cfg) return Outcome::failure("no_such_service", fmt::format("no service named '{}'", name));
        if (auto o = yieldRollout(s, guard, "reset"); !o.ok) return o;
        ServiceEntry fresh = makeServiceEntry(*cfg);
        const auto now = routing::Clock::now();
        // Keep identities (and so connection counts) of backends that stay;
        // backends that only runtime changes had added drain out.
        for (auto colour : config::kColours) {
            auto& freshPool = fresh.pool(colour);
            auto& oldPool = s.pool(colour);
            for (auto& b : freshPool.backends) {
                if (BackendEntry* old = oldPool.find(b.address)) {
                    b.handle = old->handle;
                    b.healthy = old->healthy;
                    b.checked = old->checked;
                    b.lastFailure = old->lastFailure;
                    b.rampStart = old->rampStart;
                } else {
                    b.handle = makeBackendEntry(s, colour, {b.address, b.configWeight}).handle;
                    markBackendReturned(b, now);
                }
            }
            for (auto& old : oldPool.backends)
                if (!freshPool.find(old.address)) {
                    BackendEntry leaving = old;
                    if (!leaving.removing) {
                        leaving.removing = true;
                        leaving.drainDeadline = now + cfg->drainTimeout;
                    }
                    freshPool.backends.push_back(std::move(leaving));
                }
            freshPool.drainDeadline = oldPool.drainDeadline;
            freshPool.lastEffectiveWeight = oldPool.lastEffectiveWeight;
        }
        fresh.rollbackSplit = s.split == fresh.split ? s.rollbackSplit : std::optional<config::Split>(s.split);
        fresh.generation = s.generation;
        fresh.revision = s.revision;
        fresh.state = s.state;
        fresh.poolCounters = s.poolCounters;
        fresh.rollout = std::move(s.rollout);   // ended (or just aborted): its record stays for rollout-status
        s = std::move(fresh);
        return Outcome::success();
    });
}

void ControlPlane::applyAutomatic(const std::string& service, const ServiceMutation& mutate, const char* why,
                                  bool movesIntent) {
    MasterState next = state_;
    ServiceEntry* s = next.find(service);
    if (!s || !mutate(*s)) return;
    if (movesIntent) ++s->generation;
    ++s->revision;
    ++next.revision;
    updatePoolDrains(*s, routing::Clock::now());
    publish(std::move(next));
    if (store_.enabled()) {
        if (auto saved = store_.save(state_); !saved) {
            ++saveFailures_;
            telemetry::logger("control")->warn("{}: state file not saved after {}: {}", service, why, saved.errorText());
        }
    }
}

ReloadReport ControlPlane::reload(bool apply) {
    const auto log = telemetry::logger("control");
    ReloadReport report;
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

    // Build the new state from the new config, then replay the current
    // overrides through the same rule a restart uses.
    MasterState fresh;
    for (const auto& service : next.services) fresh.services.push_back(makeServiceEntry(service));
    for (auto& service : fresh.services) {
        const ServiceEntry* old = state_.find(service.config.name);
        if (!old) continue;
        service.state = old->state;
        service.poolCounters = old->poolCounters;
        for (auto colour : config::kColours)
            for (auto& b : service.pool(colour).backends) {
                if (const BackendEntry* ob = const_cast<ServiceEntry*>(old)->pool(colour).find(b.address)) {
                    b.handle = ob->handle;
                    b.healthy = ob->healthy;
                    b.checked = ob->checked;
                    b.lastFailure = ob->lastFailure;
                    b.rampStart = ob->rampStart;
                } else {
                    b.handle = makeBackendEntry(service, colour, {b.address, b.configWeight}).handle;
                    // A backend the new config brings in joins with slow start,
                    // unless its whole service is new (nothing flowed yet).
                    markBackendReturned(b, routing::Clock::now());
                }
            }
    }
    auto merged = mergeOverrides(serializeState(state_), fresh);
    if (!merged) {
        if (apply) ++reloadsFailed_;
        report.outcome = Outcome::failure("refused", merged.errorText());
        return report;
    }
    // The replay is the restart rule; a reload keeps what lives in the running
    // daemon. Backends added at runtime came back as new entries: they are the
    // same backends, so they keep their identity (open connections), health and
    // slow-start ramp. A backend still drained or disabled keeps its drain
    // deadline (the replay assumes a restart, where nothing is left to drain).
    for (auto& service : fresh.services) {
        const ServiceEntry* old = state_.find(service.config.name);
        if (!old) continue;
        for (auto colour : config::kColours)
            for (auto& b : service.pool(colour).backends) {
                const BackendEntry* ob = const_cast<ServiceEntry*>(old)->pool(colour).find(b.address);
                if (!ob) continue;
                if (b.addedAtRuntime && ob->addedAtRuntime) {
                    b.handle = ob->handle;
                    b.healthy = ob->healthy;
                    b.checked = ob->checked;
                    b.lastFailure = ob->lastFailure;
                    b.rampStart = ob->rampStart;
                }
                if (b.adminState != AdminState::Enabled && ob->adminState == b.adminState)
                    b.drainDeadline = ob->drainDeadline;
            }
    }
    if (!apply) {
        report.overridesKept = merged->kept;
        report.overridesReplaced = merged->replaced;
        for (const auto& service : next.services)
            if (!config_.findService(service.name)) report.servicesAdded.push_back(service.name);
        for (const auto& service : config_.services)
            if (!next.findService(service.name)) report.servicesRemoved.push_back(service.name);
        report.preview = std::move(fresh);
        return report;
    }
    // New listeners first: a port that cannot be bound refuses the reload whole.
    std::vector<std::string> opened;
    for (const auto& service : next.services) {
        const config::ServiceConfig* old = config_.findService(service.name);
        if (old && old->listen == service.listen) continue;
        if (old) closeListeners(service.name);
        auto ok = openListeners(service);
        if (!ok) {
            for (const auto& name : opened) closeListeners(name);
            ++reloadsFailed_;
            report.outcome = Outcome::failure("refused", ok.errorText());
            return report;
        }
        opened.push_back(service.name);
        if (!old) report.servicesAdded.push_back(service.name);
    }
    for (const auto& service : config_.services)
        if (!next.findService(service.name)) {
            closeListeners(service.name);
            report.servicesRemoved.push_back(service.name);
        }
    const auto now = routing::Clock::now();
    for (auto& service : fresh.services) {
        const ServiceEntry* old = state_.find(service.config.name);
        for (auto colour : config::kColours) {
            auto& pool = service.pool(colour);
            if (old) {
                pool.drainDeadline = old->pool(colour).drainDeadline;
                pool.lastEffectiveWeight = old->pool(colour).lastEffectiveWeight;
                // Backends the new config dropped drain out like a `remove`, and
                // so does one added at runtime that a `remove` was draining.
                for (const auto& ob : old->pool(colour).backends)
                    if (!pool.find(ob.address) && (!ob.addedAtRuntime || ob.removing)) {
                        BackendEntry leaving = ob;
                        if (!leaving.removing) {
                            leaving.removing = true;
                            leaving.drainDeadline = now + service.config.drainTimeout;
                        }
                        pool.backends.push_back(std::move(leaving));
                    }
            } else {
                pool.lastEffectiveWeight = service.effectiveSplit().weight(colour);
            }
        }
        if (old) {
            // The merge kept the rollout (the split was not replaced): keep its live window too.
            if (service.rollout && old->rollout && old->rollout->id == service.rollout->id)
                service.rollout = old->rollout;
            service.fallback = old->fallback;
            service.panic = old->panic;   // the health monitor re-decides it next turn
            service.revision = old->revision + 1;
        }
        updatePoolDrains(service, now);
    }
    fresh.revision = state_.revision + 1;
    config_ = std::move(next);
    if (store_.enabled() && store_.path() != config_.stateFile)
        log->warn("state_file changed in the config; it takes effect at the next restart");
    if (store_.enabled()) {
        if (auto saved = store_.save(fresh); !saved) {
            ++saveFailures_;
            log->warn("state file not saved after reload: {}", saved.errorText());
        }
    }
    publish(std::move(fresh));
    report.overridesKept = merged->kept;
    report.overridesReplaced = merged->replaced;
    ++reloadsOk_;
    log->info("reloaded {}: {} override(s) kept, {} replaced, {} service(s) added, {} removed", config_.sourcePath,
              report.overridesKept.size(), report.overridesReplaced.size(), report.servicesAdded.size(),
              report.servicesRemoved.size());
    return report;
}

void ControlPlane::scheduleHousekeeping() {
    housekeepingTimer_.expires_after(std::chrono::seconds(1));
    housekeepingTimer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        housekeeping();
        scheduleHousekeeping();
    });
}

void ControlPlane::housekeeping() {
    const auto now = routing::Clock::now();
    // Slow start: a ramping backend's weight grows with time, so a new snapshot
    // each second lets traffic follow it; the one after the ramp ends gives the
    // full weight. An automatic change (revision, not generation), and not
    // saved: ramps are not state-file state.
    // Finished ramps are cleared in place (moving nothing anyone may point at).
    bool weightsMove = false;
    for (auto& service : state_.services) {
        bool moved = false;
        for (auto& pool : service.pools)
            for (auto& b : pool.backends) {
                if (b.rampStart == kNoRamp) continue;
                moved |= service.config.slowStart.count() > 0 && b.takesNewConnections();
                if (!ramping(b, service.config.slowStart, now)) b.rampStart = kNoRamp;
            }
        if (moved) ++service.revision;
        weightsMove |= moved;
    }
    if (weightsMove) {
        MasterState next = state_;
        ++next.revision;
        publish(std::move(next));
    }
    // Removed backends leave the state once their drain deadline passed.
    for (const auto& service : state_.services) {
        bool due = false;
        for (const auto& pool : service.pools)
            for (const auto& b : pool.backends)
                if (b.removing && b.drainDeadline <= now) due = true;
        if (!due) continue;
        applyAutomatic(service.config.name, [now](ServiceEntry& s) {
            bool changed = false;
            for (auto& pool : s.pools)
                changed |= std::erase_if(pool.backends, [now, &pool](const BackendEntry& b) {
                               const bool gone = b.removing && b.drainDeadline <= now;
                               if (gone && !b.addedAtRuntime) pool.removed.push_back({b.address, b.configWeight});
                               return gone;
                           }) > 0;
            return changed;
        }, "backend removal");
    }
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

void applyRolloutSplit(ServiceEntry& service) {
    const rollout::Rollout& r = *service.rollout;
    service.split = r.split();
    if (r.active() || r.phase == rollout::Phase::Promoted)
        service.rollbackSplit = r.startSplit;
    else
        service.rollbackSplit = r.startRollbackSplit;
}

Outcome ControlPlane::startRollout(const std::string& name, const rollout::RolloutPlan& plan,
                                   const ChangeGuard& guard) {
    return change(name, guard, true, [&](ServiceEntry& s) {
        if (plan.steps.empty()) return Outcome::failure("bad_argument", "rollout: no steps");
        if (auto o = yieldRollout(s, guard, "rollout"); !o.ok) return o;
        const config::Colour to = plan.to;
        const char* toName = config::toString(to);
        if (s.split.weight(config::other(to)) == 0 && s.split.weight(to) > 0 && !guard.force)
            return Outcome::failure("refused", fmt::format("{} already sends all traffic to {}: nothing to roll out",
                                                           name, toName));
        if (auto o = checkTarget(s, to, guard.force); !o.ok) return o;
        if (s.fallback.active && !guard.force)
            return Outcome::failure("refused", fmt::format("{} is in fallback away from pool {} ({}); settle it "
                                                           "first (use force to start anyway)",
                                                           name, config::toString(s.fallback.from), s.fallback.reason));
        // The id is the generation this change brings: it tells one rollout from the next.
        s.rollout = rollout::begin(s.generation + 1, plan, s.split, s.rollbackSplit, rolloutNow(s));
        applyRolloutSplit(s);
        telemetry::logger("rollout")->info("{}: rollout to {} started at step 1/{} ({}%), hold {} ms", name, toName,
                                           plan.steps.size(), plan.steps.front(), plan.hold.count());
        return checkRoutable(s, guard.force);
    });
}

Outcome ControlPlane::rolloutAction(const std::string& name, rollout::Action action, const ChangeGuard& guard) {
    const bool publishFirst = action == rollout::Action::Abort;
    return change(name, guard, true, [&](ServiceEntry& s) {
        if (!s.rollout || !s.rollout->active())
            return Outcome::failure("no_rollout",
                                    s.rollout ? fmt::format("{} has no rollout in progress (the last one {}: {})", name,
                                                            rollout::toString(s.rollout->phase), s.rollout->reason)
                                              : fmt::format("{} has no rollout in progress", name));
        if (action == rollout::Action::Promote)
            if (auto o = checkTarget(s, s.rollout->target(), guard.force); !o.ok) return o;
        if (auto refused = rollout::act(*s.rollout, action, rolloutNow(s)))
            return Outcome::failure("refused", fmt::format("{}: {}", name, *refused));
        applyRolloutSplit(s);
        telemetry::logger("rollout")->info("{}: {} ({})", name, rollout::toString(action),
                                           rollout::toString(s.rollout->phase));
        return checkRoutable(s, guard.force);
    }, publishFirst);
}

void ControlPlane::rolloutTick() {
    const auto log = telemetry::logger("rollout");
    std::vector<std::string> names;
    for (const auto& s : state_.services)
        if (s.rolloutActive()) names.push_back(s.config.name);
    for (const auto& name : names) {
        const ServiceEntry* current = state_.find(name);
        if (!current || !current->rolloutActive()) continue;
        rollout::Rollout next = *current->rollout;
        const rollout::TickResult result = rollout::tick(next, rolloutNow(*current), rolloutSignals(*current));
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
            const Outcome o = change(name, {}, true, [&](ServiceEntry& s) {
                s.rollout = next;
                applyRolloutSplit(s);
                return Outcome::success();
            });
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
                return true;
            }, "rollout rollback", /*movesIntent=*/true);
            break;
        case rollout::Event::Suspended:
            log->warn("{}: {}", name, result.message);
            applyAutomatic(name, [&](ServiceEntry& s) {
                s.rollout = next;
                return true;
            }, "rollout suspension");
            break;
        }
    }
}

} // namespace switchyard::control
