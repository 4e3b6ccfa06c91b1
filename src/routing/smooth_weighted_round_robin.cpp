#include "switchyard/routing/smooth_weighted_round_robin.h"

namespace switchyard::routing {

void SmoothWeightedRoundRobin::reset(std::size_t n) {
    current_.assign(n, 0);
}

} // namespace switchyard::routing
