#include "switchyard/control/control_plane.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>

#include <fmt/format.h>

#include "switchyard/config/config_loader.h"
#include "switchyard/control/snapshot_builder.h"
#include "switchyard/proxy/listen_socket.h"
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
    const auto now = routing::Clock::now();
    for (auto& service : initial.services) {
        // Nothing was flowing before start: no pool starts out draining.
        for (auto& pool : service.pools) pool.lastEffectiveWeight = service.effectiveSplit().weight(pool.colour);
        updatePoolDrains(service, now);
    }
    initial.revision = 1;
    publish(std::move(initial));
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
                             const Mutation& mutate) {
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

Outcome ControlPlane::setSplit(const std::string& name, config::Split split, const ChangeGuard& guard) {
    return change(name, guard, true, [&](ServiceEntry& s) {
        if (split.blue == 0 && split.green == 0)
            return Outcome::failure("refused", "split blue=0 green=0 leaves no routable weight");
        if (split == s.split) return Outcome{true, "unchanged", {}};
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
    return setSplit(name, split, guard);
}

Outcome ControlPlane::rollback(const std::string& name, const ChangeGuard& guard) {
    return change(name, guard, true, [&](ServiceEntry& s) {
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
                    return Outcome::success();
                }
                return Outcome::failure("already_exists", fmt::format("{} already has backend {} in pool {}", name,
                                                                      address.toString(), config::toString(c)));
            }
        }
        BackendEntry entry = makeBackendEntry(s, colour, config::BackendConfig{address, weight});
        entry.addedAtRuntime = true;
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
                } else {
                    b.handle = makeBackendEntry(s, colour, {b.address, b.configWeight}).handle;
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
        s = std::move(fresh);
        return Outcome::success();
    });
}

void ControlPlane::applyAutomatic(const std::string& service, const ServiceMutation& mutate, const char* why) {
    MasterState next = state_;
    ServiceEntry* s = next.find(service);
    if (!s || !mutate(*s)) return;
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

ReloadReport ControlPlane::reload() {
    const auto log = telemetry::logger("control");
    ReloadReport report;
    if (config_.sourcePath.empty()) {
        ++reloadsFailed_;
        report.outcome = Outcome::failure("refused", "this daemon runs a built-in config (--demo); nothing to reload");
        return report;
    }
    auto loaded = config::loadConfigFile(config_.sourcePath);
    if (!loaded) {
        ++reloadsFailed_;
        report.outcome = Outcome::failure("bad_config", loaded.errorText());
        log->error("reload refused, keeping the running config: {}", loaded.errorText());
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
                } else {
                    b.handle = makeBackendEntry(service, colour, {b.address, b.configWeight}).handle;
                }
            }
    }
    auto merged = mergeOverrides(serializeState(state_), fresh);
    if (!merged) {
        ++reloadsFailed_;
        report.outcome = Outcome::failure("refused", merged.errorText());
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
                // Backends the new config dropped drain out like a `remove`.
                for (const auto& ob : old->pool(colour).backends)
                    if (!pool.find(ob.address) && !ob.addedAtRuntime) {
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
            service.fallback = old->fallback;
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
    // Removed backends leave the state once their drain deadline passed.
    const auto now = routing::Clock::now();
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

} // namespace switchyard::control
