#pragma once

// The rollout state machine (docs/rollouts.md). Pure: the caller
// passes the time and the pools' cumulative counter samples in, and applies
// the split that `Rollout::split()` asks for. The control plane keeps one
// Rollout per service (the active one, or the last one for rollout-status).
//
//                 pause            resume
//     ┌────────┐ ───────► ┌──────┐ ──────► (Running, clock continues)
//  ──►│Running │          │Paused│
//     └───┬────┘ ◄─────── └──────┘
//         │ hold over, gates pass: next step ─► Running
//         │ last step passes: 100% ─► Promoted   <100% ─► Canary (waits for promote/abort)
//         │ gate fails, max_hold without samples, target ejection,
//         │ fallback away from target, 3rd restart in a step ─► RolledBack
//         │ fallback away from baseline ─► Suspended (gates off) ─resume─► Running (window restarts)
//   any active state: promote ─► Promoted · rollout-abort ─► Aborted
//
// Paused and Canary keep evaluating the gates (a failure still rolls back);
// Suspended evaluates nothing but the target-side signals.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "switchyard/config/config.h"
#include "switchyard/rollout/gates.h"
#include "switchyard/rollout/sli_window.h"

namespace switchyard::rollout {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

enum class Phase { Running, Paused, Suspended, Canary, Promoted, RolledBack, Aborted };
const char* toString(Phase p);   // running paused suspended awaiting_promote promoted rolled_back aborted
std::optional<Phase> phaseFrom(const std::string& word);
bool isActive(Phase p);

// One step of the plan as it went.
struct StepRecord {
    uint32_t percent = 0;
    std::string verdict = "pending";   // pending running passed failed aborted promoted skipped
    int64_t startedUnixMs = 0;
    int64_t endedUnixMs = 0;
    int64_t windowMs = 0;              // length of the window the verdict was taken on
    uint32_t restarts = 0;             // daemon restarts within this step
    std::string reason;
    bool judged = false;               // target/baseline/gates hold the verdict's numbers
    PoolSli target;
    PoolSli baseline;
    std::vector<GateResult> gates;
};

// What the caller measured at one instant.
struct Now {
    TimePoint steady{};
    int64_t unixMs = 0;
    std::array<PoolSample, 2> samples{};   // cumulative, indexed by config::index(colour)
};

// Health-side facts about the two pools.
struct Signals {
    bool targetFallback = false;            // the fallback moved traffic away from the target pool
    bool baselineFallback = false;          // ... away from the baseline pool
    std::string fallbackReason;
    std::vector<std::string> ejectedTargets;   // target backends outlier detection ejected
};

enum class Event { None, Advanced, Canary, Promoted, RolledBack, Suspended };
const char* toString(Event e);

struct TickResult {
    Event event = Event::None;
    std::string message;   // for the log: what happened and why, with numbers
};

struct Rollout {
    uint64_t id = 0;                        // the generation it started at: tells one rollout from the next
    RolloutPlan plan;
    config::Split startSplit;               // the split before it began (where a rollback returns)
    std::optional<config::Split> startRollbackSplit;   // `rollback`'s target before it began
    Phase phase = Phase::Running;
    std::size_t step = 0;                   // index into plan.steps
    int64_t startedUnixMs = 0;
    int64_t endedUnixMs = 0;
    std::string reason;                     // why it ended (or was suspended)
    std::vector<StepRecord> steps;          // one per plan step

    // Runtime only (a restart restarts the window).
    TimePoint stepStart{};
    Millis pausedFor{0};                    // frozen time within this step
    std::optional<TimePoint> pausedAt;
    std::array<PoolSample, 2> windowStart{};

    bool active() const { return isActive(phase); }
    config::Colour target() const { return plan.to; }
    config::Colour baseline() const { return config::other(plan.to); }
    uint32_t percent() const { return plan.steps.at(step); }
    // The split this rollout asks for now: the step's share, the whole target once
    // promoted, the starting split once rolled back or aborted.
    config::Split split() const;
    // Step clock: time since the step (or its window) began, less paused time.
    Millis stepElapsed(TimePoint now) const;
    // The current window's SLIs of the target and baseline pools.
    PoolSli targetWindow(const Now& now) const;
    PoolSli baselineWindow(const Now& now) const;
};

// A new rollout at its first step.
Rollout begin(uint64_t id, RolloutPlan plan, config::Split current, std::optional<config::Split> currentRollbackSplit,
              const Now& now);

// Advances the machine: gate verdicts, fallbacks, ejections.
TickResult tick(Rollout& r, const Now& now, const Signals& signals);

enum class Action { Pause, Resume, Abort, Promote };
const char* toString(Action a);
// Applies an operator action; returns an error message if it does not apply now.
std::optional<std::string> act(Rollout& r, Action action, const Now& now, const std::string& why = {});

// The daemon (re)started with `r` loaded from the state file: the step's window
// restarts; the third restart within one step rolls back.
inline constexpr uint32_t kMaxRestartsPerStep = 3;
TickResult onRestart(Rollout& r, const Now& now);
// A new binary took over without a restart (`upgrade`): the step's window
// restarts (the counters it compares start from zero in the new process), and
// no restart is counted, so upgrades never roll a rollout back.
TickResult onHandover(Rollout& r, const Now& now);

// Fleet mode: `incoming` is a rollout's record as another member wrote it
// (no live window). The same rollout at the same step keeps the window `old`
// had here, with a pause or resume the record brings applied to its clock; a
// new rollout or a new step (or a resume from suspension) starts its window now.
void adoptWindow(Rollout& incoming, const Rollout* old, const Now& now);

} // namespace switchyard::rollout
