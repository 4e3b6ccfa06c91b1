#include "switchyard/health/outlier_detector.h"

#include <chrono>

#include <catch2/catch.hpp>

#include "health_fixtures.h"

using namespace switchyard;
using namespace switchyard::health;
using namespace switchyard::health::testing;
using config::Colour;
using Kind = OutlierEvent::Kind;
using namespace std::chrono_literals;

namespace {

const routing::TimePoint t0 = routing::TimePoint{} + 1000h;

control::ServiceEntry service(std::size_t green) {
    auto s = makeService(1, green, {0, 100});
    s.config.outlierDetection.baseEjection = 10s;
    s.config.outlierDetection.maxEjection = 300s;
    return s;
}

routing::BackendState& green(control::ServiceEntry& s, std::size_t i) {
    return *s.pool(Colour::Green).backends.at(i).handle;
}

// What the data path does when a run reaches the threshold.
void trip(routing::BackendState& b) {
    b.consecutiveFailures = 5;
    b.ejected = true;
}

} // namespace

TEST_CASE("a worker's ejection becomes formal: 10 s, counted", "[health][outlier]") {
    auto s = service(2);
    OutlierDetector d;
    CHECK(d.poll(s, t0).empty());
    trip(green(s, 0));
    const auto events = d.poll(s, t0);
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == Kind::Ejected);
    CHECK(events[0].duration == 10s);
    CHECK(events[0].ejections == 1);
    CHECK(green(s, 0).ejections.load() == 1);
    CHECK(d.ejected(&green(s, 0)));
    CHECK(d.ejectedUntil(&green(s, 0)) == t0 + 10s);
    CHECK(d.poll(s, t0 + 5s).empty());
}

TEST_CASE("at expiry the flag and the failure run are cleared", "[health][outlier]") {
    auto s = service(2);
    OutlierDetector d;
    trip(green(s, 0));
    d.poll(s, t0);
    CHECK(d.poll(s, t0 + 9999ms).empty());
    const auto events = d.poll(s, t0 + 10s);
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == Kind::Returned);
    CHECK_FALSE(green(s, 0).ejected.load());
    CHECK(green(s, 0).consecutiveFailures.load() == 0);
    CHECK_FALSE(d.ejected(&green(s, 0)));
}

TEST_CASE("a repeat ejection doubles, up to max_ejection", "[health][outlier]") {
    auto s = service(2);
    s.config.outlierDetection.maxEjection = 50s;
    OutlierDetector d;
    auto now = t0;
    std::vector<config::Duration> lengths;
    for (int i = 0; i < 5; ++i) {
        trip(green(s, 0));
        const auto events = d.poll(s, now);
        REQUIRE(events.size() == 1);
        lengths.push_back(events[0].duration);
        now += events[0].duration;
        REQUIRE(d.poll(s, now).size() == 1);   // back
        now += 1s;                              // fails again soon after
    }
    CHECK(lengths == std::vector<config::Duration>{10s, 20s, 40s, 50s, 50s});
    CHECK(green(s, 0).ejections.load() == 5);
}

TEST_CASE("the doubling decays one step per base_ejection back in rotation", "[health][outlier]") {
    auto s = service(2);
    OutlierDetector d;
    trip(green(s, 0));
    d.poll(s, t0);
    d.poll(s, t0 + 10s);                                  // back at t0+10s, next would be 20 s
    trip(green(s, 0));
    auto events = d.poll(s, t0 + 10s + 25s);              // 2 quiet steps: level 1 -> 0
    REQUIRE(events.size() == 1);
    CHECK(events[0].duration == 10s);
}

TEST_CASE("flags beyond max_ejection_percent of a pool are cleared at once", "[health][outlier]") {
    auto s = service(2);
    OutlierDetector d;
    trip(green(s, 0));
    trip(green(s, 1));   // two workers raced
    const auto events = d.poll(s, t0);
    REQUIRE(events.size() == 2);
    CHECK(events[0].kind == Kind::Ejected);
    CHECK(events[1].kind == Kind::Refused);
    CHECK(green(s, 0).ejected.load());
    CHECK_FALSE(green(s, 1).ejected.load());
    CHECK(green(s, 1).consecutiveFailures.load() == 0);
    CHECK(green(s, 1).ejections.load() == 0);
}

TEST_CASE("switching detection off ends running ejections", "[health][outlier]") {
    auto s = service(2);
    OutlierDetector d;
    trip(green(s, 0));
    d.poll(s, t0);
    s.config.outlierDetection.enabled = false;
    const auto events = d.poll(s, t0 + 1s);
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == Kind::Returned);
    CHECK_FALSE(green(s, 0).ejected.load());
}

TEST_CASE("records of removed backends are dropped", "[health][outlier]") {
    auto s = service(2);
    OutlierDetector d;
    trip(green(s, 0));
    d.poll(s, t0);
    const routing::BackendState* gone = &green(s, 0);
    REQUIRE(d.ejected(gone));
    auto& pool = s.pool(Colour::Green).backends;
    pool.erase(pool.begin());
    d.dropGone();
    CHECK_FALSE(d.ejected(gone));
    CHECK_FALSE(d.ejected(&green(s, 0)));
}
