#pragma once

// Smooth weighted round-robin (nginx's algorithm): with weights 99 and 1 the
// second entry is picked exactly once in every 100 picks, evenly spread, never
// in bursts. One instance per worker per pool; reset only when weights change.

#include <cstdint>
#include <span>
#include <vector>

namespace switchyard::routing {

class SmoothWeightedRoundRobin {
public:
    // Starts over for n entries.
    void reset(std::size_t n);
    std::size_t size() const { return current_.size(); }

    // Picks an index among entries with weight > 0 for which skip(i) is false;
    // returns -1 when there is none. Entries skipped do not take part in this
    // round, so a retry does not disturb the spread of first picks much.
    template <typename Skip>
    int pick(std::span<const uint32_t> weights, Skip&& skip);

    int pick(std::span<const uint32_t> weights) {
        return pick(weights, [](std::size_t) { return false; });
    }

private:
    std::vector<int64_t> current_;
};

template <typename Skip>
int SmoothWeightedRoundRobin::pick(std::span<const uint32_t> weights, Skip&& skip) {
    if (current_.size() != weights.size()) reset(weights.size());
    int best = -1;
    int64_t total = 0;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        if (weights[i] == 0 || skip(i)) continue;
        current_[i] += weights[i];
        total += weights[i];
        if (best < 0 || current_[i] > current_[static_cast<std::size_t>(best)]) best = static_cast<int>(i);
    }
    if (best >= 0) current_[static_cast<std::size_t>(best)] -= total;
    return best;
}

} // namespace switchyard::routing
