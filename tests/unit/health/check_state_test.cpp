#include "switchyard/health/check_state.h"

#include <catch2/catch.hpp>

using switchyard::health::CheckState;
using Change = CheckState::Change;

TEST_CASE("a backend starts up and unchecked", "[health][check_state]") {
    CheckState s;
    CHECK(s.healthy());
    CHECK_FALSE(s.checked());
}

TEST_CASE("the first result decides alone: a first failure is down at once", "[health][check_state]") {
    CheckState s;
    CHECK(s.record(false, 2, 3) == Change::WentDown);
    CHECK_FALSE(s.healthy());
    CHECK(s.checked());
}

TEST_CASE("a first pass keeps the backend up and marks it checked", "[health][check_state]") {
    CheckState s;
    CHECK(s.record(true, 2, 3) == Change::None);
    CHECK(s.healthy());
    CHECK(s.checked());
}

TEST_CASE("an up backend goes down after exactly `fall` failures in a row", "[health][check_state]") {
    CheckState s;
    s.record(true, 2, 3);
    CHECK(s.record(false, 2, 3) == Change::None);
    CHECK(s.record(false, 2, 3) == Change::None);
    CHECK(s.healthy());
    CHECK(s.record(false, 2, 3) == Change::WentDown);
    CHECK_FALSE(s.healthy());
    CHECK(s.failuresInARow() == 3);
    CHECK(s.record(false, 2, 3) == Change::None);
}

TEST_CASE("a pass in between restarts the run of failures", "[health][check_state]") {
    CheckState s;
    s.record(true, 2, 3);
    s.record(false, 2, 3);
    s.record(false, 2, 3);
    s.record(true, 2, 3);
    CHECK(s.record(false, 2, 3) == Change::None);
    CHECK(s.record(false, 2, 3) == Change::None);
    CHECK(s.healthy());
    CHECK(s.record(false, 2, 3) == Change::WentDown);
}

TEST_CASE("a down backend comes up after exactly `rise` passes in a row", "[health][check_state]") {
    CheckState s;
    s.record(false, 2, 3);
    REQUIRE_FALSE(s.healthy());
    CHECK(s.record(true, 2, 3) == Change::None);
    CHECK(s.record(false, 2, 3) == Change::None);   // restarts the rise
    CHECK(s.record(true, 2, 3) == Change::None);
    CHECK_FALSE(s.healthy());
    CHECK(s.record(true, 2, 3) == Change::WentUp);
    CHECK(s.healthy());
}

TEST_CASE("a backend alternating pass and fail never flips with rise 2 and fall 2", "[health][check_state]") {
    CheckState s;
    s.record(true, 2, 2);
    for (int i = 0; i < 50; ++i) {
        CHECK(s.record(i % 2 == 0, 2, 2) == Change::None);
        CHECK(s.healthy());
    }
}

TEST_CASE("rise 1 and fall 1 follow every result", "[health][check_state]") {
    CheckState s;
    s.record(true, 1, 1);
    CHECK(s.record(false, 1, 1) == Change::WentDown);
    CHECK(s.record(true, 1, 1) == Change::WentUp);
}

TEST_CASE("a verdict assumed from the previous generation keeps its hysteresis", "[health][check_state]") {
    CheckState down;
    down.assume(false);
    CHECK(down.record(true, 2, 3) == Change::None);   // one pass is not `rise`
    CHECK_FALSE(down.healthy());
    CHECK(down.record(true, 2, 3) == Change::WentUp);
    CheckState up;
    up.assume(true);
    CHECK(up.record(false, 2, 3) == Change::None);   // not a first check: `fall` failures take it down
    CHECK(up.healthy());
}
