#include "switchyard/routing/smooth_weighted_round_robin.h"

#include <array>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using switchyard::routing::SmoothWeightedRoundRobin;

TEST_CASE("Smooth WRR with weights 99 and 1 picks the second exactly once in every 100",
          "[routing]") {
    SmoothWeightedRoundRobin wrr;
    const std::array<uint32_t, 2> weights{99, 1};
    for (int round = 0; round < 10; ++round) {
        int second = 0;
        for (int i = 0; i < 100; ++i)
            if (wrr.pick(weights) == 1) ++second;
        CHECK(second == 1);
    }
}

TEST_CASE("Smooth WRR with weights 5, 1, 1 gives the classic sequence a a b a c a a",
          "[routing]") {
    SmoothWeightedRoundRobin wrr;
    const std::array<uint32_t, 3> weights{5, 1, 1};
    std::string seq;
    for (int i = 0; i < 14; ++i) seq += static_cast<char>('a' + wrr.pick(weights));
    CHECK(seq == "aabacaaaabacaa");
}

TEST_CASE("Smooth WRR never picks the 1% entry twice within 100 picks", "[routing]") {
    SmoothWeightedRoundRobin wrr;
    const std::array<uint32_t, 2> weights{99, 1};
    int last = -1000;
    int picks = 0;
    for (int i = 0; i < 10000; ++i) {
        if (wrr.pick(weights) != 1) continue;
        ++picks;
        CHECK(i - last >= 100);
        last = i;
    }
    CHECK(picks == 100);
}

TEST_CASE("Smooth WRR never picks entries with weight 0 and returns -1 when all are 0",
          "[routing]") {
    SmoothWeightedRoundRobin wrr;
    const std::array<uint32_t, 3> weights{0, 3, 0};
    for (int i = 0; i < 10; ++i) CHECK(wrr.pick(weights) == 1);
    const std::array<uint32_t, 2> none{0, 0};
    CHECK(wrr.pick(none) == -1);
}

TEST_CASE("Smooth WRR skips entries the caller excludes and returns -1 when all are excluded",
          "[routing]") {
    SmoothWeightedRoundRobin wrr;
    const std::array<uint32_t, 3> weights{5, 1, 1};
    for (int i = 0; i < 10; ++i) CHECK(wrr.pick(weights, [](std::size_t j) { return j == 0; }) != 0);
    CHECK(wrr.pick(weights, [](std::size_t) { return true; }) == -1);
}

TEST_CASE("Smooth WRR reset starts the sequence over", "[routing]") {
    SmoothWeightedRoundRobin wrr;
    const std::array<uint32_t, 2> weights{1, 1};
    CHECK(wrr.pick(weights) == 0);
    CHECK(wrr.pick(weights) == 1);
    CHECK(wrr.pick(weights) == 0);
    wrr.reset(2);
    CHECK(wrr.size() == 2);
    CHECK(wrr.pick(weights) == 0);
    CHECK(wrr.pick(weights) == 1);
}
