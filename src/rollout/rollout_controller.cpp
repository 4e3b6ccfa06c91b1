#include "switchyard/rollout/rollout_controller.h"

#include <fmt/format.h>

namespace switchyard::rollout {

const char* toString(Phase p) {
    switch (p) {
    case Phase::Running: return "running";
    case Phase::Paused: return "paused";
    case Phase::Suspended: return "suspended";
    case Phase::Canary: return "awaiting_promote";
    case Phase::Promoted: return "promoted";
    case Phase::RolledBack: return "rolled_back";
    case Phase::Aborted: return "aborted";
    }
    return "running";
}

std::optional<Phase> phaseFrom(const std::string& word) {
    for (Phase p : {Phase::Running, Phase::Paused, Phase::Suspended, Phase::Canary, Phase::Promoted,
                    Phase::RolledBack, Phase::Aborted})
        if (word == toString(p)) return p;
    return std::nullopt;
}

bool isActive(Phase p) {
    return p == Phase::Running || p == Phase::Paused || p == Phase::Suspended || p == Phase::Canary;
}

const char* toString(Event e) {
    switch (e) {
    case Event::None: return "none";
    case Event::Advanced: return "advanced";
    case Event::Canary: return "awaiting_promote";
    case Event::Promoted: return "promoted";
    case Event::RolledBack: return "rolled_back";
    case Event::Suspended: return "suspended";
    }
    return "none";
}

const char* toString(Action a) {
    switch (a) {
    case Action::Pause: return "rollout-pause";
    case Action::Resume: return "rollout-resume";
    case Action::Abort: return "rollout-abort";
    case Action::Promote: return "promote";
    }
    return "rollout";
}

config::Split Rollout::split() const {
    switch (phase) {
    case Phase::RolledBack:
    case Phase::Aborted:
        return startSplit;
    case Phase::Promoted: {
        config::Split s{0, 0};
        s.weight(target()) = 100;
        return s;
    }
    default: {
        config::Split s{0, 0};
        s.weight(target()) = percent();
        s.weight(baseline()) = 100 - percent();
        return s;
    }
    }
}

Millis Rollout::stepElapsed(TimePoint now) const {
    const TimePoint until = pausedAt ? *pausedAt : now;
    const auto elapsed = std::chrono::duration_cast<Millis>(until - stepStart) - pausedFor;
    return elapsed.count() < 0 ? Millis(0) : elapsed;
}

PoolSli Rollout::targetWindow(const Now& now) const {
    const auto i = config::index(target());
    return windowSli(windowStart[i], now.samples[i]);
}

PoolSli Rollout::baselineWindow(const Now& now) const {
    const auto i = config::index(baseline());
    return windowSli(windowStart[i], now.samples[i]);
}

namespace {

void restartWindow(Rollout& r, const Now& now) {
    r.stepStart = now.steady;
    r.pausedFor = Millis(0);
    r.pausedAt.reset();
    r.windowStart = now.samples;
}

// Writes the current step's verdict with the numbers it was taken on.
void record(Rollout& r, const Now& now, const std::string& verdict, const std::string& reason, const PoolSli& target,
            const PoolSli& baseline, const GateReport& report) {
    StepRecord& s = r.steps.at(r.step);
    s.verdict = verdict;
    s.reason = reason;
    s.endedUnixMs = now.unixMs;
    s.windowMs = std::chrono::duration_cast<Millis>(now.steady - r.stepStart).count();
    s.judged = true;
    s.target = target;
    s.baseline = baseline;
    s.gates = report.gates;
}

void skipRest(Rollout& r) {
    for (std::size_t i = r.step + 1; i < r.steps.size(); ++i) r.steps[i].verdict = "skipped";
}

std::string stepName(const Rollout& r) {
    return fmt::format("step {}/{} ({}% {})", r.step + 1, r.plan.steps.size(), r.percent(),
                       config::toString(r.target()));
}

TickResult rollBack(Rollout& r, const Now& now, const std::string& reason) {
    const PoolSli target = r.targetWindow(now);
    const PoolSli baseline = r.baselineWindow(now);
    record(r, now, "failed", reason, target, baseline, evaluateGates(r.plan.gates, target, baseline));
    skipRest(r);
    r.phase = Phase::RolledBack;
    r.endedUnixMs = now.unixMs;
    r.reason = fmt::format("{} failed: {}", stepName(r), reason);
    return {Event::RolledBack, "rolled back: " + r.reason};
}

bool passedLastStep(const Rollout& r) {
    return r.step + 1 == r.steps.size() && r.steps[r.step].verdict == "passed";
}

} // namespace

Rollout begin(uint64_t id, RolloutPlan plan, config::Split current, std::optional<config::Split> currentRollbackSplit,
              const Now& now) {
    Rollout r;
    r.id = id;
    r.plan = std::move(plan);
    r.startSplit = current;
    r.startRollbackSplit = currentRollbackSplit;
    r.startedUnixMs = now.unixMs;
    for (uint32_t p : r.plan.steps) {
        StepRecord s;
        s.percent = p;
        r.steps.push_back(std::move(s));
    }
    r.steps.at(0).verdict = "running";
    r.steps.at(0).startedUnixMs = now.unixMs;
    restartWindow(r, now);
    return r;
}

TickResult tick(Rollout& r, const Now& now, const Signals& signals) {
    if (!r.active()) return {};
    // Target-side facts act in every active phase, suspended included.
    if (signals.targetFallback)
        return rollBack(r, now, fmt::format("fallback away from the target pool {}{}", config::toString(r.target()),
                                            signals.fallbackReason.empty() ? "" : ": " + signals.fallbackReason));
    if (!signals.ejectedTargets.empty()) {
        std::string list;
        for (const auto& b : signals.ejectedTargets) list += (list.empty() ? "" : ", ") + b;
        return rollBack(r, now, fmt::format("outlier detection ejected target backend {}", list));
    }
    // An ejection that already ended still happened within the step.
    if (const uint64_t ejections = r.targetWindow(now).ejections; ejections > 0)
        return rollBack(r, now, fmt::format("outlier detection ejected {} target backend(s) during the step", ejections));
    if (r.phase == Phase::Suspended) return {};
    if (signals.baselineFallback) {
        if (!r.pausedAt) r.pausedAt = now.steady;
        r.phase = Phase::Suspended;
        r.reason = fmt::format("fallback away from the baseline pool {}{}; gates suspended until an operator "
                               "resumes, promotes or aborts",
                               config::toString(r.baseline()),
                               signals.fallbackReason.empty() ? "" : " (" + signals.fallbackReason + ")");
        return {Event::Suspended, "suspended: " + r.reason};
    }

    const PoolSli target = r.targetWindow(now);
    const PoolSli baseline = r.baselineWindow(now);
    const GateReport report = evaluateGates(r.plan.gates, target, baseline);
    if (r.phase == Phase::Paused || r.phase == Phase::Canary) {
        // The clock is frozen (or done), but a failing gate still rolls back.
        if (report.enoughSamples && report.failed) return rollBack(r, now, report.failureSummary());
        return {};
    }

    const Millis elapsed = r.stepElapsed(now.steady);
    if (elapsed < r.plan.hold) return {};
    if (!report.enoughSamples) {
        if (elapsed < r.plan.maxHold) return {};
        return rollBack(r, now, fmt::format("insufficient samples: {} of min_connections {} attempts on {} within "
                                            "max_hold {}ms",
                                            target.attempts, r.plan.gates.minConnections,
                                            config::toString(r.target()), r.plan.maxHold.count()));
    }
    if (report.failed) return rollBack(r, now, report.failureSummary());

    record(r, now, "passed", "", target, baseline, report);
    const std::string passed = stepName(r);
    if (r.step + 1 == r.steps.size()) {
        if (r.percent() == 100) {
            r.phase = Phase::Promoted;
            r.endedUnixMs = now.unixMs;
            r.reason = fmt::format("all {} steps passed", r.steps.size());
            return {Event::Promoted, fmt::format("promoted: {} passed, {} takes all traffic", passed,
                                                 config::toString(r.target()))};
        }
        r.phase = Phase::Canary;
        r.reason = fmt::format("canary at {}%: waiting for promote or rollout-abort", r.percent());
        return {Event::Canary, fmt::format("{} passed; {}", passed, r.reason)};
    }
    ++r.step;
    StepRecord& next = r.steps[r.step];
    next.verdict = "running";
    next.startedUnixMs = now.unixMs;
    restartWindow(r, now);
    return {Event::Advanced, fmt::format("{} passed; now {}", passed, stepName(r))};
}

std::optional<std::string> act(Rollout& r, Action action, const Now& now, const std::string& why) {
    if (!r.active()) return fmt::format("the rollout has ended ({})", toString(r.phase));
    switch (action) {
    case Action::Pause:
        if (r.phase == Phase::Paused) return std::string("the rollout is already paused");
        if (r.phase == Phase::Suspended) return std::string("the rollout is suspended by a fallback of the baseline pool");
        if (r.phase == Phase::Canary) return std::string("the canary has passed its step and waits for promote or rollout-abort");
        r.phase = Phase::Paused;
        r.pausedAt = now.steady;
        return std::nullopt;
    case Action::Resume:
        if (r.phase == Phase::Paused) {
            r.pausedFor += std::chrono::duration_cast<Millis>(now.steady - *r.pausedAt);
            r.pausedAt.reset();
            r.phase = Phase::Running;
            return std::nullopt;
        }
        if (r.phase == Phase::Suspended) {
            // The baseline's numbers during its fallback say nothing: judge afresh.
            restartWindow(r, now);
            r.phase = passedLastStep(r) ? Phase::Canary : Phase::Running;
            r.reason.clear();
            return std::nullopt;
        }
        return std::string("the rollout is not paused");
    case Action::Abort: {
        const std::string reason = why.empty() ? "aborted by the operator" : why;
        StepRecord& s = r.steps.at(r.step);
        if (s.verdict != "passed") {
            s.verdict = "aborted";
            s.reason = reason;
            s.endedUnixMs = now.unixMs;
        }
        skipRest(r);
        r.phase = Phase::Aborted;
        r.endedUnixMs = now.unixMs;
        r.reason = fmt::format("{} at {}", reason, stepName(r));
        return std::nullopt;
    }
    case Action::Promote: {
        StepRecord& s = r.steps.at(r.step);
        if (s.verdict != "passed") {
            s.verdict = "promoted";
            s.reason = "promoted by the operator";
            s.endedUnixMs = now.unixMs;
        }
        skipRest(r);
        r.phase = Phase::Promoted;
        r.endedUnixMs = now.unixMs;
        r.reason = fmt::format("promoted by the operator at {}", stepName(r));
        return std::nullopt;
    }
    }
    return std::string("unknown action");
}

namespace {

void restartWindowKeepingPause(Rollout& r, const Now& now) {
    const bool frozen = r.phase == Phase::Paused || r.phase == Phase::Suspended;
    restartWindow(r, now);
    if (frozen) r.pausedAt = now.steady;
}

} // namespace

TickResult onRestart(Rollout& r, const Now& now) {
    if (!r.active()) return {};
    StepRecord& s = r.steps.at(r.step);
    ++s.restarts;
    if (s.restarts >= kMaxRestartsPerStep)
        return rollBack(r, now, fmt::format("the daemon restarted {} times within this step", s.restarts));
    restartWindowKeepingPause(r, now);
    return {Event::None, fmt::format("restarted the window of {} (restart {} of {} allowed within a step)",
                                     stepName(r), s.restarts, kMaxRestartsPerStep - 1)};
}

TickResult onHandover(Rollout& r, const Now& now) {
    if (!r.active()) return {};
    restartWindowKeepingPause(r, now);
    return {Event::None, fmt::format("restarted the window of {} after an upgrade (not counted as a restart)",
                                     stepName(r))};
}

void adoptWindow(Rollout& incoming, const Rollout* old, const Now& now) {
    const bool frozen = incoming.phase == Phase::Paused || incoming.phase == Phase::Suspended;
    const bool sameStep = old && old->id == incoming.id && old->step == incoming.step && old->active();
    if (!sameStep || (old->phase == Phase::Suspended && incoming.phase != Phase::Suspended)) {
        restartWindow(incoming, now);
        if (frozen) incoming.pausedAt = now.steady;
        return;
    }
    incoming.stepStart = old->stepStart;
    incoming.windowStart = old->windowStart;
    incoming.pausedFor = old->pausedFor;
    incoming.pausedAt = old->pausedAt;
    if (frozen && !incoming.pausedAt) incoming.pausedAt = now.steady;
    if (!frozen && incoming.pausedAt) {
        incoming.pausedFor += std::chrono::duration_cast<Millis>(now.steady - *incoming.pausedAt);
        incoming.pausedAt.reset();
    }
}

} // namespace switchyard::rollout
