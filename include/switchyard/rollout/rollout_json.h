#pragma once

// A rollout as JSON: what the state file keeps (plan, phase, step, history,
// restarts) and what rollout-status and status show (plus the live window).

#include <nlohmann/json.hpp>

#include "switchyard/rollout/rollout_controller.h"

namespace switchyard::rollout {

// For the state file. The window itself is not kept: a restart restarts it.
nlohmann::json persistJson(const Rollout& r);
// Throws std::exception on a malformed object (the state store reports it).
// Runtime fields are left for onRestart() (or the caller) to set.
Rollout restoreJson(const nlohmann::json& j);

// For rollout-status and status: the plan, the phase, the current step's live
// window with its gates, and every step's record.
nlohmann::json statusJson(const Rollout& r, const Now& now);

nlohmann::json sliJson(const PoolSli& sli);

// A pool's cumulative counters as a fleet member publishes them (histograms
// sparse: [bucket, count] pairs). sampleFrom throws std::exception on a
// malformed object.
nlohmann::json sampleJson(const PoolSample& sample);
PoolSample sampleFrom(const nlohmann::json& j);
nlohmann::json gateJson(const GateResult& g);

} // namespace switchyard::rollout
