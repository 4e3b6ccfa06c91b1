#pragma once

// What of one service outlives the process: the operator's overrides of the
// config (split, backend weights and admin states, added and removed backends,
// offline pools, the rollout), the config values they were made against, the
// fallback in force, and the generation. A service nobody changed has none
// (empty()), and costs the store nothing.
//
// The same typed value serves a restart (read back from the store) and a
// reload (taken from the running state): mergeOverrides() applies it by one
// rule, docs/semantics.md "State file and config": a field whose config value changed
// since the override was made takes the config's value; every other field
// keeps its override.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "switchyard/config/config.h"
#include "switchyard/control/master_state.h"
#include "switchyard/rollout/rollout_controller.h"
#include "switchyard/util/result.h"

namespace switchyard::control {

struct BackendOverride {
    config::Endpoint address;
    uint32_t weight = 100;
    uint32_t configWeight = 100;     // the config's weight when the override was made
    AdminState adminState = AdminState::Enabled;
    bool added = false;              // `add`: not in the config
    bool removing = false;           // `remove` was draining it
};

struct PoolOverrides {
    bool offline = false;
    std::vector<BackendOverride> backends;        // only backends that differ from the config
    std::vector<config::BackendConfig> removed;   // config backends an operator removed
};

struct Overrides {
    uint64_t generation = 1;
    config::Split split;
    config::Split configSplit;       // the config's split when the override was made
    std::optional<config::Split> rollbackSplit;
    std::optional<FallbackState> fallback;
    std::array<PoolOverrides, 2> pools;
    std::optional<rollout::Rollout> rollout;

    // Nothing to keep: a service as its config made it, never changed.
    bool empty() const;
};

struct MergeReport {
    std::vector<std::string> kept;       // "web: split blue=0 green=100"
    std::vector<std::string> replaced;   // "web: split (config changed to blue=100 green=0)"
};

// The overrides `service` holds now.
Overrides overridesOf(const ServiceEntry& service);

// Applies `saved` to `service` (built from the current config). A backend
// saved as drained or disabled gets `now` as its drain deadline: after a
// restart nothing is left to drain (a reload puts the running deadline back).
void mergeOverrides(const Overrides& saved, ServiceEntry& service, MergeReport& report, routing::TimePoint now);

// The JSON record of one service's overrides (the state store's unit), and back.
// fromJson throws std::exception on any malformed field; the caller names the file.
nlohmann::json overridesToJson(const Overrides& overrides);
Overrides overridesFromJson(const nlohmann::json& record);

// Every float the daemon writes is a rate or a latency: finite, non-negative
// and far below 2^31. A file with any other float is refused before reading
// (casting 1e300 to an integer is undefined behaviour).
bool floatsInRange(const nlohmann::json& root);

} // namespace switchyard::control
