#pragma once

// Weighted rendezvous (highest random weight) hashing for `balance: hash`:
// removing one of N backends moves only the clients that were on it (~1/N).

#include <cstdint>
#include <span>
#include <string_view>

#include <sys/socket.h>

namespace switchyard::routing {

// A stable 64-bit hash of a client's address (IP only, not the port).
uint64_t hashClientAddress(const sockaddr* addr, socklen_t len);

// A stable 64-bit hash of a string (backend keys): FNV-1a then a 64-bit mix.
uint64_t hashKey(std::string_view key);

// Picks the index with the highest weighted score for clientHash among entries
// with weight > 0 and skip(i) false; -1 if none. keyHashes[i] = hashKey(backend key).
template <typename Skip>
int rendezvousPick(uint64_t clientHash, std::span<const uint64_t> keyHashes,
                   std::span<const uint32_t> weights, Skip&& skip);

double rendezvousScore(uint64_t clientHash, uint64_t keyHash, uint32_t weight);

// A 64-bit finalizer (splitmix64): spreads every input bit over every output bit.
uint64_t mix64(uint64_t x);

template <typename Skip>
int rendezvousPick(uint64_t clientHash, std::span<const uint64_t> keyHashes,
                   std::span<const uint32_t> weights, Skip&& skip) {
    int best = -1;
    double bestScore = 0;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        if (weights[i] == 0 || skip(i)) continue;
        double s = rendezvousScore(clientHash, keyHashes[i], weights[i]);
        if (best < 0 || s > bestScore) {
            best = static_cast<int>(i);
            bestScore = s;
        }
    }
    return best;
}

} // namespace switchyard::routing
