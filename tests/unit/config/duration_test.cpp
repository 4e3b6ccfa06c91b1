#include "switchyard/config/duration.h"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using switchyard::config::Duration;
using switchyard::config::formatDuration;
using switchyard::config::parseDuration;

TEST_CASE("parseDuration reads every unit", "[config][duration]") {
    CHECK(parseDuration("0") == Duration{0});
    CHECK(parseDuration("0s") == Duration{0});
    CHECK(parseDuration("0ms") == Duration{0});
    CHECK(parseDuration("250ms") == 250ms);
    CHECK(parseDuration("2s") == 2s);
    CHECK(parseDuration("5m") == 5min);
    CHECK(parseDuration("1h") == 1h);
    CHECK(parseDuration("300s") == 300s);
    CHECK(parseDuration("007s") == 7s);
}

TEST_CASE("parseDuration accepts decimals that are whole milliseconds", "[config][duration]") {
    CHECK(parseDuration("1.5s") == 1500ms);
    CHECK(parseDuration("0.5m") == 30s);
    CHECK(parseDuration("1.25h") == 75min);
    CHECK(parseDuration("0.001s") == 1ms);
    CHECK_FALSE(parseDuration("0.0005s"));   // half a millisecond
    CHECK_FALSE(parseDuration("1.5ms"));
    CHECK_FALSE(parseDuration("1.s"));
    CHECK_FALSE(parseDuration(".5s"));
    CHECK_FALSE(parseDuration("1.0000000001h"));
}

TEST_CASE("parseDuration refuses what is not a duration", "[config][duration]") {
    CHECK_FALSE(parseDuration(""));
    CHECK_FALSE(parseDuration("5"));          // only a bare 0 may omit the unit
    CHECK_FALSE(parseDuration("00"));
    CHECK_FALSE(parseDuration("-1s"));
    CHECK_FALSE(parseDuration("+1s"));
    CHECK_FALSE(parseDuration("1 s"));
    CHECK_FALSE(parseDuration(" 1s"));
    CHECK_FALSE(parseDuration("1S"));
    CHECK_FALSE(parseDuration("1d"));
    CHECK_FALSE(parseDuration("1sec"));
    CHECK_FALSE(parseDuration("s"));
    CHECK_FALSE(parseDuration("1m30s"));
    CHECK_FALSE(parseDuration("abc"));
    CHECK_FALSE(parseDuration("99999999999999999999"));     // no unit, however long
    CHECK_FALSE(parseDuration("99999999999999999999x"));
}

TEST_CASE("parseDuration saturates a value too large for int64 so that callers see it as too long",
          "[config][duration]") {
    CHECK(parseDuration("99999999999999999999ms") == Duration::max());
    CHECK(parseDuration("9999999999999999h") == Duration::max());
    CHECK(parseDuration("2562047788016h") == Duration::max());        // one hour past int64 ms
    CHECK(parseDuration("2562047788015h") > switchyard::config::kMaxDuration);
    CHECK(parseDuration("8760h") == switchyard::config::kMaxDuration);
    CHECK(parseDuration("3000000h") > switchyard::config::kMaxDuration);
}

TEST_CASE("saturatingMultiply clamps instead of overflowing", "[config][duration]") {
    using switchyard::config::saturatingMultiply;
    CHECK(saturatingMultiply(60s, 4) == 240s);
    CHECK(saturatingMultiply(Duration::max(), 4) == Duration::max());
    CHECK(saturatingMultiply(Duration{Duration::max().count() / 4 + 1}, 4) == Duration::max());
    CHECK(saturatingMultiply(Duration::max(), 0) == Duration{0});
}

TEST_CASE("formatDuration picks the largest exact unit", "[config][duration]") {
    CHECK(formatDuration(Duration{0}) == "0s");
    CHECK(formatDuration(1ms) == "1ms");
    CHECK(formatDuration(1500ms) == "1500ms");
    CHECK(formatDuration(2000ms) == "2s");
    CHECK(formatDuration(90s) == "90s");
    CHECK(formatDuration(120s) == "2m");
    CHECK(formatDuration(90min) == "90m");
    CHECK(formatDuration(3h) == "3h");
    CHECK(formatDuration(-2s) == "-2s");
}

TEST_CASE("formatDuration output parses back to the same value", "[config][duration]") {
    for (auto ms : {0LL, 1LL, 999LL, 1000LL, 1001LL, 59'999LL, 60'000LL, 3'600'000LL, 86'400'000LL}) {
        Duration d{ms};
        INFO(ms);
        CHECK(parseDuration(formatDuration(d)) == d);
    }
}
