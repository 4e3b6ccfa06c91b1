#pragma once

// The JSON form of a split, {"blue": W, "green": W}, shared by the admin
// replies, the state file and the rollout records.

#include <nlohmann/json.hpp>

#include "switchyard/config/config.h"

namespace switchyard::config {

nlohmann::json splitToJson(const Split& split);

// Throws (nlohmann's exceptions, or std::out_of_range for a weight over 1000):
// callers parse whole files inside one try block.
Split splitFromJson(const nlohmann::json& j);

} // namespace switchyard::config
