#pragma once

// --wait for rollout, and the human rendering of a rollout (rollout-status and
// the rollout commands). The waiter polls `rollout-status SERVICE` until the
// rollout it started ends: a live progress line on a terminal, plain lines
// otherwise, JSON events with --json. It only ever reads: Ctrl-C or a timeout
// stop the waiting, never the rollout.

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "admin_client.h"

namespace switchyard::ctl {

struct RolloutWait {
    std::string service;
    uint64_t id = 0;   // the rollout's id from the reply that started it
};

// Returns the exit code: 0 promoted, 4 ended otherwise (rolled back, aborted,
// replaced), 1 failed or timed out, 3 unreachable for too long, 130 interrupted.
int waitForRollout(const AdminClient& client, const RolloutWait& target, std::optional<Clock::time_point> deadline,
                   bool jsonEvents);

// A rollout object (as in rollout-status) as text: state, step, window and gates,
// then one line per step with its verdict and gate readings.
std::string formatRollout(const nlohmann::json& rollout);

// One line: "step 2/5 green 5% running · split blue=95 green=5 · green err 0.00% ... · 8s left".
std::string rolloutProgressLine(const nlohmann::json& rollout);

} // namespace switchyard::ctl
