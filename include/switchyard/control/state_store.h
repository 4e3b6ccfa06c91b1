#pragma once

// The state file: runtime overrides and the config values they were made
// against (SPEC.md "State file and config"). Written atomically: a temp file,
// fsync, rename over the old one, fsync the directory.

#include <string>
#include <vector>

#include "switchyard/config/config.h"
#include "switchyard/control/master_state.h"
#include "switchyard/util/result.h"

namespace switchyard::control {

struct MergeReport {
    std::vector<std::string> kept;       // overrides the state file keeps
    std::vector<std::string> replaced;   // overrides the changed config replaced
};

class StateStore {
public:
    explicit StateStore(std::string path) : path_(std::move(path)) {}

    bool enabled() const { return !path_.empty(); }
    const std::string& path() const { return path_; }

    // Writes every service's overrides. Failure leaves the old file intact.
    Result<bool> save(const MasterState& state) const;

    // Merges the saved overrides into `state` (built from the config). A
    // missing file is fine (first start). A corrupt or foreign file is moved
    // aside to PATH.bad-<time> and reported; the config's values then apply.
    Result<MergeReport> load(MasterState& state) const;

private:
    std::string path_;
};

// Applies the overrides recorded in `saved` (a state-file JSON text) to `state`,
// by the rule: a field whose config value changed since the override was made
// takes the config's value; every other field keeps its override.
Result<MergeReport> mergeOverrides(const std::string& savedJson, MasterState& state);

// The JSON text the state file holds for `state`.
std::string serializeState(const MasterState& state);

} // namespace switchyard::control
