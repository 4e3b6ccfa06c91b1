#pragma once

// A rollout's plan and its gates (docs/rollouts.md), and the
// evaluation of the gates over one step's window. Pure: no clock, no I/O.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "switchyard/config/config.h"
#include "switchyard/rollout/sli_window.h"

namespace switchyard::rollout {

struct Gates {
    std::optional<double> maxErrorRate;                 // target error rate <= this
    std::optional<std::chrono::milliseconds> maxConnectP99;
    std::optional<std::chrono::milliseconds> maxTtfbP99;
    std::optional<double> maxErrorRateVsBaseline;       // target <= ratio x max(baseline, 0.001)
    uint32_t minConnections = 100;                      // samples a step needs before it is judged
    bool operator==(const Gates&) const = default;
};

struct RolloutPlan {
    config::Colour to = config::Colour::Green;
    std::vector<uint32_t> steps;                        // percent of traffic on `to`, rising, 1..100
    std::chrono::milliseconds hold{60000};
    std::chrono::milliseconds maxHold{240000};          // default 4 x hold
    Gates gates;
    bool operator==(const RolloutPlan&) const = default;
};

// The baseline's error rate never counts as below this, so that a baseline
// with no errors does not make every single target error fail the ratio gate.
inline constexpr double kBaselineErrorFloor = 0.001;

enum class Verdict { Pass, Fail, Skipped, Pending };
const char* toString(Verdict v);   // "pass" | "fail" | "skipped" | "pending"

// One gate's reading: its limit, what was observed, on how many samples.
struct GateResult {
    std::string gate;        // "max_error_rate", ..., "min_connections"
    double limit = 0;        // rate, ratio, milliseconds or a count, as the gate's name says
    double observed = 0;
    uint64_t samples = 0;
    Verdict verdict = Verdict::Pending;
    std::string note;        // why skipped or pending, or what the limit was compared with
};

struct GateReport {
    std::vector<GateResult> gates;   // min_connections first, then every configured gate
    bool enoughSamples = false;      // the target's attempts reached min_connections
    bool failed = false;             // some gate failed (only meaningful with enoughSamples)

    // "max_error_rate: 0.2 > 0.01 (250 attempts)" for each failing gate, joined by "; ".
    std::string failureSummary() const;
};

GateReport evaluateGates(const Gates& gates, const PoolSli& target, const PoolSli& baseline);

} // namespace switchyard::rollout
