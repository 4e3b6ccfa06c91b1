#pragma once

// A fleet's SLIs for rollout gates (docs/fleet.md "Rollouts"): while a
// service has a rollout, every member publishes that service's cumulative pool
// counters, and the sum over the members is one cumulative sample that the
// rollout machine windows like a single instance's.
//
// A member counts from the first sample it published for the service (what it
// did before is not the rollout's). The sum never goes backwards: a member
// that left (its lease ended) or stopped publishing the service keeps what it
// counted in the sum, and so does a member's earlier life when it restarted.
// Control thread only.

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
    // Everything `instance` publishes now: service -> its cumulative samples.
    void observe(const std::string& instance, const std::map<std::string, PoolSamples>& services);
    // `instance` is gone: what it counted stays in every sum.
    void forget(const std::string& instance) { observe(instance, {}); }
    // The fleet's cumulative samples of `service`: what every other member
    // counted, plus `selfNow` (this member's own, live rather than its published copy).
    PoolSamples sum(const std::string& service, const std::string& self, const PoolSamples& selfNow) const;

private:
    struct Counted {
        PoolSamples first;    // the first sample of this life: counting starts there
        PoolSamples latest;
    };
    // What a member counted so far (latest - first) goes to retired_.
    void retire(const std::string& service, const Counted& c);

    std::map<std::pair<std::string, std::string>, Counted> members_;   // (instance, service)
    std::map<std::string, PoolSamples> retired_;                       // by service
};

} // namespace switchyard::rollout
