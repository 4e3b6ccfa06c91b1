#pragma once

// What a changing command did, told as before -> after: switchyardctl reads
// `status` before sending the change and again after the daemon answered, and
// compares what an operator controls (split, pool states, backends and their
// weights and admin states, the rollout, and for `reload` the services'
// settings). Health, connections and counters are left out: they move on
// their own and are not what the command changed.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace switchyard::ctl {

// One line per difference between two `status` replies, e.g.
//   "web: green 127.0.0.1:9003 weight 100 → 50 (generation 7)"
//   "web: split blue=100 green=0 → blue=90 green=10 (generation 4)"
// Services are matched by name; one that appears or disappears is one line.
// Empty when the two agree on everything an operator controls.
// Without `withGeneration` the lines end after the change (a preview moved nothing).
std::vector<std::string> describeChanges(const nlohmann::json& before, const nlohmann::json& after,
                                         bool withGeneration = true);

} // namespace switchyard::ctl
