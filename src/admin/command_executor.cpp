#include "switchyard/admin/command_executor.h"

#include <sstream>

#include <fmt/format.h>

#include "switchyard/admin/command_parser.h"
#include "switchyard/admin/status_report.h"
#include "switchyard/config/proxy_loop.h"
#include "switchyard/config/split_json.h"
#include "switchyard/control/snapshot_builder.h"
#include "switchyard/rollout/rollout_json.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::admin {
namespace {

using nlohmann::json;

rollout::RolloutPlan planFrom(const RolloutRequest& r) {
    rollout::RolloutPlan p;
    p.to = r.to;
    p.steps = r.steps;
    p.hold = r.hold;
    p.maxHold = r.maxHold.value_or(config::saturatingMultiply(r.hold, 4));
    p.gates.maxErrorRate = r.maxErrorRate;
    p.gates.maxConnectP99 = r.maxConnectP99;
    p.gates.maxTtfbP99 = r.maxTtfbP99;
    p.gates.maxErrorRateVsBaseline = r.maxErrorRateVsBaseline;
    p.gates.minConnections = r.minConnections;
    return p;
}

json rolloutJson(const control::ControlPlane& control, const control::ServiceEntry& s) {
    return s.rollout ? rollout::statusJson(*s.rollout, control.rolloutNowOf(s)) : json(nullptr);
}

} // namespace

json CommandExecutor::errorReply(const std::string& code, const std::string& message) {
    return {{"ok", false}, {"code", code}, {"error", message}};
}

json CommandExecutor::changeReply(const control::Outcome& outcome, const std::string& service) {
    if (outcome.ok && outcome.code == control::kPendingCode) {
        // Fleet mode: etcd answers later; the admin server waits, then finishPending().
        pending_ = {control_.takePendingChange(), service, false};
        return {{"pending", true}};
    }
    if (!outcome.ok) return errorReply(outcome.code, outcome.message);
    const control::ServiceEntry* s = control_.state().find(service);
    if (!s) return {{"ok", true}, {"service", service}};
    json reply = {{"ok", true},
                  {"service", service},
                  {"generation", s->generation},
                  {"revision", s->revision},
                  {"split", config::splitToJson(s->split)},
                  {"effective_split", config::splitToJson(s->effectiveSplit())}};
    if (!outcome.message.empty()) reply["warning"] = outcome.message;
    return reply;
}

json CommandExecutor::rolloutReply(const control::Outcome& outcome, const std::string& service) {
    json reply = changeReply(outcome, service);
    if (pending_.change) {
        pending_.rollout = true;
        return reply;
    }
    if (outcome.ok)
        if (const control::ServiceEntry* s = control_.state().find(service)) reply["rollout"] = rolloutJson(control_, *s);
    return reply;
}

json CommandExecutor::finishPending(const Pending& pending) {
    const control::Outcome outcome = pending.change && pending.change->outcome
                                         ? *pending.change->outcome
                                         : control::Outcome::failure("store_unavailable", "no answer from the fleet's store");
    return pending.rollout ? rolloutReply(outcome, pending.service) : changeReply(outcome, pending.service);
}

json CommandExecutor::execute(const Command& c) {
    const control::ChangeGuard guard{c.ifGeneration, c.force};
    // SPEC "Bounds": a backend that is one of our own listeners would loop.
    // Taking such a backend out of rotation (drain, disable, remove) stays allowed.
    const bool sendsTraffic = c.kind == CommandKind::Add || c.kind == CommandKind::BackendWeight ||
                              c.kind == CommandKind::BackendEnable;
    if (sendsTraffic && c.backend)
        if (auto loop = config::proxyLoopReason(*c.backend, control_.config().services))
            return errorReply("bad_argument", fmt::format("{}: {}", toString(c.kind), *loop));
    switch (c.kind) {
    case CommandKind::Help: {
        json lines = json::array();
        std::istringstream text(helpText());
        for (std::string line; std::getline(text, line);)
            if (!line.empty()) lines.push_back(line);
        return {{"ok", true}, {"commands", lines}};
    }
    case CommandKind::Status:
        if (!c.service.empty() && !control_.state().find(c.service))
            return errorReply("no_such_service", fmt::format("no service named '{}'", c.service));
        replyText_ = statusReportText(control_, c.service, draining_ ? draining_() : std::nullopt);
        return {{"ok", true}};
    case CommandKind::Split:
        return changeReply(control_.setSplit(c.service, *c.split, guard), c.service);
    case CommandKind::Cutover:
        return changeReply(control_.cutover(c.service, *c.colour, guard), c.service);
    case CommandKind::Rollback:
        return changeReply(control_.rollback(c.service, guard), c.service);
    case CommandKind::BackendWeight:
        return changeReply(control_.setBackendWeight(c.service, *c.colour, *c.backend, *c.weight, guard), c.service);
    case CommandKind::BackendDrain:
        return changeReply(
            control_.setBackendAdminState(c.service, *c.colour, *c.backend, control::AdminState::Drain, guard),
            c.service);
    case CommandKind::BackendDisable:
        return changeReply(
            control_.setBackendAdminState(c.service, *c.colour, *c.backend, control::AdminState::Disabled, guard),
            c.service);
    case CommandKind::BackendEnable:
        return changeReply(
            control_.setBackendAdminState(c.service, *c.colour, *c.backend, control::AdminState::Enabled, guard),
            c.service);
    case CommandKind::Add:
        return changeReply(control_.addBackend(c.service, *c.colour, *c.backend, c.weight.value_or(100), guard),
                           c.service);
    case CommandKind::Remove:
        return changeReply(control_.removeBackend(c.service, *c.colour, *c.backend, guard), c.service);
    case CommandKind::PoolOffline:
        return changeReply(control_.setPoolOffline(c.service, *c.colour, true, guard), c.service);
    case CommandKind::PoolOnline:
        return changeReply(control_.setPoolOffline(c.service, *c.colour, false, guard), c.service);
    case CommandKind::Reset:
        return changeReply(control_.reset(c.service, guard), c.service);
    case CommandKind::Reload: {
        const control::ReloadReport report = control_.reload();
        if (!report.outcome.ok) return errorReply(report.outcome.code, report.outcome.message);
        return {{"ok", true},
                {"overrides_kept", report.overridesKept},
                {"overrides_replaced", report.overridesReplaced},
                {"services_added", report.servicesAdded},
                {"services_removed", report.servicesRemoved}};
    }
    case CommandKind::ReloadCheck: {
        control::ReloadReport report = control_.reload(false);
        if (!report.outcome.ok) return errorReply(report.outcome.code, report.outcome.message);
        nlohmann::json services = nlohmann::json::array();
        if (report.preview)
            for (const auto& s : report.preview->services) services.push_back(serviceStatus(s, *control::buildRoute(s)));
        return {{"ok", true},
                {"applied", false},
                {"overrides_kept", report.overridesKept},
                {"overrides_replaced", report.overridesReplaced},
                {"services_added", report.servicesAdded},
                {"services_removed", report.servicesRemoved},
                {"services", services}};
    }
    case CommandKind::Upgrade:   // asynchronous: the admin server hands it to the upgrader
        return errorReply("refused", "this daemon cannot upgrade itself (no upgrader)");
    case CommandKind::Rollout:
        return rolloutReply(control_.startRollout(c.service, planFrom(*c.rollout), guard), c.service);
    case CommandKind::RolloutStatus: {
        const control::ServiceEntry* s = control_.state().find(c.service);
        if (!s) return errorReply("no_such_service", fmt::format("no service named '{}'", c.service));
        return rolloutReply(control::Outcome::success(), c.service);
    }
    case CommandKind::RolloutHistory: {
        const control::ServiceEntry* s = control_.state().find(c.service);
        if (!s) return errorReply("no_such_service", fmt::format("no service named '{}'", c.service));
        nlohmann::json rollouts = nlohmann::json::array();
        if (history_) {
            rollouts = history_->entries(c.service);
        }
        // The running one (not history yet) comes first.
        if (s->rollout && s->rollout->active())
            rollouts.insert(rollouts.begin(), rollout::historyEntry(*s->rollout, rollout::toString(s->rollout->phase), 0));
        return {{"ok", true}, {"service", c.service}, {"rollouts", rollouts}};
    }
    case CommandKind::RolloutPause:
        return rolloutReply(control_.rolloutAction(c.service, rollout::Action::Pause, guard), c.service);
    case CommandKind::RolloutResume:
        return rolloutReply(control_.rolloutAction(c.service, rollout::Action::Resume, guard), c.service);
    case CommandKind::RolloutAbort:
        return rolloutReply(control_.rolloutAction(c.service, rollout::Action::Abort, guard), c.service);
    case CommandKind::Promote:
        return rolloutReply(control_.rolloutAction(c.service, rollout::Action::Promote, guard), c.service);
    }
    return errorReply("unknown_command", "unknown command");
}

} // namespace switchyard::admin
