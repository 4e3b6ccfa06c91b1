#pragma once

// One per worker: picks the pool, then the backend, for each new connection,
// and the next backend when a connect fails (docs/semantics.md "Retries"): the chosen
// pool's untried backends first, then the other pool unless affinity: client.
// Holds the worker's picker positions; they survive snapshots that keep a
// pool's backends and weights (PoolRoute::pickSignature).

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "switchyard/routing/routing_snapshot.h"
#include "switchyard/routing/smooth_weighted_round_robin.h"
#include "switchyard/routing/tried_set.h"

namespace switchyard::routing {

// One connection's progress through its attempts.
struct Attempts {
    uint64_t clientHash = 0;
    bool started = false;
    config::Colour firstPool = config::Colour::Blue;
    config::Colour currentPool = config::Colour::Blue;
    bool crossedToOtherPool = false;
    std::array<TriedSet, 2> tried;
    uint32_t count = 0;                 // backends handed out so far (a nullptr pick is not one)
};

struct Pick {
    config::Colour pool;
    int backendIndex = -1;              // into ServiceRoute::pool(pool).backends
    const BackendRoute* backend = nullptr;
};

class RouteSelector {
public:
    // Adopts a new snapshot; keeps picker positions whose pool signature is
    // unchanged. Routes shared with the last snapshot are not looked at, so the
    // cost follows what changed, not the number of services.
    void update(const RoutingSnapshot& snapshot);

    // Next backend to try for this connection, or backend == nullptr when there
    // is nothing (left) to try. The caller enforces the retries limit.
    Pick next(const ServiceRoute& service, Attempts& attempts);

    // Pool choice alone (exposed for tests): by split weights, or by client
    // bucket under affinity: client.
    config::Colour pickPool(const ServiceRoute& service, uint64_t clientHash);

private:
    struct PoolPickers {
        uint64_t signature = 0;
        SmoothWeightedRoundRobin wrr;
        std::vector<uint32_t> weights;
        std::vector<uint64_t> keyHashes;
        std::size_t leastConnCursor = 0;
    };
    struct ServicePickers {
        std::array<PoolPickers, 2> pools;
        SmoothWeightedRoundRobin poolWrr;
        std::array<uint32_t, 2> poolWeights{0, 0};
    };

    int pickBackend(const ServiceRoute& service, const PoolRoute& pool, PoolPickers& pickers,
                    const Attempts& attempts, const TriedSet& tried);
    ServicePickers& pickersFor(const ServiceRoute& service);
    static void syncPool(PoolPickers& pickers, const PoolRoute& pool, uint64_t signature);
    void updateService(const ServiceRoute& service);

    std::unordered_map<std::string, ServicePickers> services_;
    // The routes of the last snapshot, by position, while its index held.
    std::vector<RoutePtr> seen_;
    ServiceIndexPtr seenIndex_;
    bool sawFullBackend_ = false;   // during one next(): a backend was skipped at its limit
};

// Client bucket 0..9999 for affinity: client (stable per client address).
uint32_t affinityBucket(uint64_t clientHash);

} // namespace switchyard::routing
