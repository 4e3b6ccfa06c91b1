#pragma once

// The last rollouts of each service, for `rollout-history SERVICE`: their
// outcome and why. The control plane keeps only the current (or last) rollout
// per service; this remembers the ones before it by watching every published
// state: a rollout is recorded once it has ended, or once another rollout has
// taken its place (a forced start replaces a running one in a single change).
//
// In memory: a restart keeps only the latest rollout, which the state file
// holds. Runs on the control thread (publish listeners and admin commands),
// so it takes no lock.

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "switchyard/rollout/rollout_controller.h"

namespace switchyard::rollout {

class RolloutHistory {
public:
    static constexpr std::size_t kKept = 20;   // per service; older ones are dropped

    // One service's rollout as the latest published state has it (null: none).
    void observe(const std::string& service, const Rollout* current, int64_t nowUnixMs);

    // Newest first; empty for a service that never had a rollout.
    nlohmann::json entries(const std::string& service) const;

private:
    struct Tracked {
        std::deque<nlohmann::json> ended;         // newest first, at most kKept
        std::optional<uint64_t> lastRecordedId;
        std::optional<nlohmann::json> running;    // the active rollout as last seen
    };
    void record(Tracked& t, nlohmann::json entry);

    std::unordered_map<std::string, Tracked> services_;
    std::size_t runningServices_ = 0;   // services with an active rollout as last seen
};

// One entry: id, to, plan steps, outcome (promoted, rolled_back, aborted, or
// replaced), reason, start and end times, the step it reached, each step's verdict.
nlohmann::json historyEntry(const Rollout& r, const std::string& outcome, int64_t endedUnixMs);

} // namespace switchyard::rollout
