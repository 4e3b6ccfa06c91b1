#include "switchyard/routing/route_selector.h"

#include <algorithm>

#include "switchyard/routing/consistent_hash.h"

namespace switchyard::routing {

namespace {

using config::Colour;

constexpr uint32_t kAffinityBuckets = 10000;

// What the split gives each pool right now: an offline pool takes nothing.
std::array<uint32_t, 2> effectivePoolWeights(const ServiceRoute& service) {
    std::array<uint32_t, 2> w{};
    for (Colour c : config::kColours) {
        const PoolRoute& p = service.pool(c);
        w[config::index(c)] = p.offline ? 0 : p.weight;
    }
    return w;
}

uint64_t effectiveSignature(const PoolRoute& pool) {
    return pool.pickSignature != 0 ? pool.pickSignature : PoolRoute::signatureOf(pool.backends);
}

// leastconn: lowest (active + 1) / weight. The scan starts at a rotating cursor
// and keeps the first of equals, so equally loaded backends take turns.
template <typename Skip>
int leastConnPick(const PoolRoute& pool, std::size_t& cursor, Skip&& skip) {
    const std::size_t n = pool.backends.size();
    int best = -1;
    int64_t bestLoad = 0;
    int64_t bestWeight = 1;
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = (cursor + k) % n;
        const BackendRoute& b = pool.backends[i];
        if (b.weight == 0 || skip(i)) continue;
        const int64_t load =
            std::max<int64_t>(0, b.handle->active.load(std::memory_order_relaxed)) + 1;
        // load/weight < bestLoad/bestWeight without division (weights <= 1000).
        if (best < 0 || load * bestWeight < bestLoad * static_cast<int64_t>(b.weight)) {
            best = static_cast<int>(i);
            bestLoad = load;
            bestWeight = b.weight;
        }
    }
    if (best >= 0) cursor = (static_cast<std::size_t>(best) + 1) % n;
    return best;
}

// For a retry whose service is older than the selector's pickers (the worker
// adopted a newer snapshot meanwhile): picks without touching the positions,
// which belong to the current snapshot. Rare, so plain and stateless.
template <typename Skip>
int stalePick(const ServiceRoute& service, const PoolRoute& pool, uint64_t clientHash,
              Skip&& skip) {
    int best = -1;
    double bestScore = 0;
    for (std::size_t i = 0; i < pool.backends.size(); ++i) {
        const BackendRoute& b = pool.backends[i];
        if (b.weight == 0 || skip(i)) continue;
        const double score = service.balance == config::Balance::Hash
                                 ? rendezvousScore(clientHash, hashKey(b.handle->key), b.weight)
                                 : static_cast<double>(b.weight);
        if (best < 0 || score > bestScore) {
            best = static_cast<int>(i);
            bestScore = score;
        }
    }
    return best;
}

} // namespace

uint32_t affinityBucket(uint64_t clientHash) {
    // Salted so that the bucket is independent of the rendezvous scores; the
    // multiply-shift maps 32 bits onto 0..9999 without modulo bias worth naming.
    const uint64_t h = mix64(clientHash ^ 0x9e3779b97f4a7c15ULL) >> 32;
    return static_cast<uint32_t>((h * kAffinityBuckets) >> 32);
}

void RouteSelector::syncPool(PoolPickers& pickers, const PoolRoute& pool, uint64_t signature) {
    const std::size_t n = pool.backends.size();
    pickers.signature = signature;
    pickers.wrr.reset(n);
    pickers.weights.resize(n);
    pickers.keyHashes.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        pickers.weights[i] = pool.backends[i].weight;
        pickers.keyHashes[i] = hashKey(pool.backends[i].handle->key);
    }
    pickers.leastConnCursor = 0;
}

RouteSelector::ServicePickers& RouteSelector::pickersFor(const ServiceRoute& service) {
    auto it = services_.find(service.name);
    if (it == services_.end()) it = services_.try_emplace(service.name).first;
    return it->second;
}

void RouteSelector::update(const RoutingSnapshot& snapshot) {
    const bool sameServices = snapshot.index && snapshot.index == seenIndex_ && seen_.size() == snapshot.services.size();
    if (!sameServices) seen_.assign(snapshot.services.size(), nullptr);
    for (std::size_t i = 0; i < snapshot.services.size(); ++i) {
        if (seen_[i] == snapshot.services.ptr(i)) continue;
        updateService(snapshot.services[i]);
        seen_[i] = snapshot.services.ptr(i);
    }
    if (!sameServices)
        std::erase_if(services_, [&](const auto& entry) { return snapshot.find(entry.first) == nullptr; });
    seenIndex_ = snapshot.index;
}

void RouteSelector::updateService(const ServiceRoute& service) {
    auto [it, inserted] = services_.try_emplace(service.name);
    ServicePickers& sp = it->second;
    for (Colour c : config::kColours) {
        const PoolRoute& pool = service.pool(c);
        PoolPickers& pickers = sp.pools[config::index(c)];
        const uint64_t sig = effectiveSignature(pool);
        // An unchanged signature keeps the position: a health flip elsewhere
        // must not restart every worker's 99:1 sequence at its beginning.
        if (inserted || pickers.signature != sig || pickers.weights.size() != pool.backends.size())
            syncPool(pickers, pool, sig);
    }
    const auto weights = effectivePoolWeights(service);
    if (inserted || sp.poolWeights != weights) {
        sp.poolWeights = weights;
        sp.poolWrr.reset(2);
    }
}

config::Colour RouteSelector::pickPool(const ServiceRoute& service, uint64_t clientHash) {
    const auto w = effectivePoolWeights(service);
    if (w[1] == 0) return Colour::Blue;     // also when both are 0: the caller finds no backend
    if (w[0] == 0) return Colour::Green;
    if (service.affinity == config::Affinity::Client) {
        // A client is green iff its bucket is below green's share: raising green's
        // share only moves clients from blue to green, never back.
        const uint64_t threshold = uint64_t{w[1]} * kAffinityBuckets / (uint64_t{w[0]} + w[1]);
        return affinityBucket(clientHash) < threshold ? Colour::Green : Colour::Blue;
    }
    ServicePickers& sp = pickersFor(service);
    if (sp.poolWeights != w) {
        sp.poolWeights = w;
        sp.poolWrr.reset(2);
    }
    return sp.poolWrr.pick(w) == 1 ? Colour::Green : Colour::Blue;
}

int RouteSelector::pickBackend(const ServiceRoute& service, const PoolRoute& pool,
                               PoolPickers& pickers, const Attempts& attempts,
                               const TriedSet& tried) {
    const std::size_t n = pool.backends.size();
    if (n == 0) return -1;
    // A backend at its max_connections is passed over like a tried one, so its
    // excess goes to the pool's others (for hash: each client's next choice).
    // `active` counts established sessions only, so a burst of concurrent
    // connects can overshoot the limit by the connects in flight.
    auto skip = [&](std::size_t i) {
        if (tried.contains(static_cast<int>(i))) return true;
        const BackendRoute& b = pool.backends[i];
        // Outlier ejection takes effect at the next pick, before the control
        // thread has published anything; panic mode ignores it like health.
        if (!service.panic && b.handle->ejected.load(std::memory_order_relaxed)) return true;
        if (b.maxConnections == 0 || b.weight == 0) return false;
        if (b.handle->active.load(std::memory_order_relaxed) < static_cast<int64_t>(b.maxConnections))
            return false;
        sawFullBackend_ = true;
        b.handle->limitSkips.fetch_add(1, std::memory_order_relaxed);
        return true;
    };

    const uint64_t sig = effectiveSignature(pool);
    bool current = pickers.signature == sig && pickers.weights.size() == n;
    // A first attempt routes by the snapshot just loaded, so that is the one the
    // positions should follow (also when update() was not called for it).
    if (!current && attempts.count == 0) {
        syncPool(pickers, pool, sig);
        current = true;
    }

    switch (service.balance) {
    case config::Balance::LeastConn:
        return leastConnPick(pool, pickers.leastConnCursor, skip);
    case config::Balance::Hash:
        if (current)
            return rendezvousPick(attempts.clientHash, pickers.keyHashes, pickers.weights, skip);
        return stalePick(service, pool, attempts.clientHash, skip);
    case config::Balance::RoundRobin:
        if (current) return pickers.wrr.pick(pickers.weights, skip);
        return stalePick(service, pool, attempts.clientHash, skip);
    }
    return -1;
}

Pick RouteSelector::next(const ServiceRoute& service, Attempts& attempts) {
    const auto poolWeights = effectivePoolWeights(service);
    if (poolWeights[0] == 0 && poolWeights[1] == 0) {
        // No routable weight at all: nothing to try, not even by retry.
        attempts.started = true;
        return Pick{Colour::Blue, -1, nullptr};
    }

    ServicePickers& sp = pickersFor(service);
    sawFullBackend_ = false;
    if (!attempts.started) {
        attempts.started = true;
        attempts.firstPool = attempts.currentPool = pickPool(service, attempts.clientHash);
    }

    auto tryPool = [&](Colour c) {
        const PoolRoute& pool = service.pool(c);
        if (pool.offline) return -1;
        return pickBackend(service, pool, sp.pools[config::index(c)], attempts,
                           attempts.tried[config::index(c)]);
    };

    Colour colour = attempts.currentPool;
    int index = tryPool(colour);
    if (index < 0 && !attempts.crossedToOtherPool &&
        service.affinity != config::Affinity::Client && !service.pool(config::other(colour)).offline) {
        colour = config::other(colour);
        attempts.crossedToOtherPool = true;
        attempts.currentPool = colour;
        index = tryPool(colour);
    }
    if (index < 0) {
        if (sawFullBackend_ && service.state) service.state->backendsFull.fetch_add(1, std::memory_order_relaxed);
        return Pick{colour, -1, nullptr};
    }

    attempts.tried[config::index(colour)].add(index);
    ++attempts.count;
    return Pick{colour, index, &service.pool(colour).backends[static_cast<std::size_t>(index)]};
}

} // namespace switchyard::routing
