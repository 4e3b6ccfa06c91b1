#pragma once

// A fleet's SLIs for rollout gates (docs/fleet.md "Rollouts"): every member
// publishes its pools' cumulative counters, and the sum over the members is
// one cumulative sample that the rollout machine windows like a single
// instance's. The sum never goes backwards: a member that left (its lease
// ended) keeps its last counts in it, and so does a member's earlier life when
// it restarted (its counters start again from zero). Control thread only.

#include <array>
#include <map>
#include <string>
#include <utility>

#include "switchyard/rollout/sli_window.h"

namespace switchyard::rollout {

using PoolSamples = std::array<PoolSample, 2>;   // indexed by config::index(colour)

// `into` += `more`, every counter and both histograms.
void accumulate(PoolSample& into, const PoolSample& more);

class FleetSli {
public:
    // What `instance` published for `service` (cumulative, both pools).
    void observe(const std::string& instance, const std::string& service, const PoolSamples& samples);
    // `instance` is gone: its last counts stay in every sum.
    void forget(const std::string& instance);
    // The fleet's cumulative samples of `service`: every member's latest, with
    // `self`'s taken from `selfNow` (live, not its published copy).
    PoolSamples sum(const std::string& service, const std::string& self, const PoolSamples& selfNow) const;

private:
    std::map<std::pair<std::string, std::string>, PoolSamples> latest_;   // (instance, service)
    std::map<std::string, PoolSamples> retired_;                          // by service
};

} // namespace switchyard::rollout
