#include "switchyard/telemetry/health_check_counters.h"

#include <catch2/catch.hpp>

using namespace switchyard::telemetry;
using std::chrono::microseconds;

TEST_CASE("Health-check counters count attempts, failures by kind and cumulative durations", "[telemetry]") {
    HealthCheckCounters c;
    const CheckFailure refused = CheckFailure::Refused;
    const CheckFailure timeout = CheckFailure::Timeout;
    c.record(microseconds(300), nullptr);        // <= 0.5 ms
    c.record(microseconds(500), &refused);       // exactly on the 0.5 ms bound: counted in it
    c.record(microseconds(2000), nullptr);       // <= 2.5 ms
    c.record(microseconds(3000000), &timeout);   // above every bound
    CHECK(c.attempts() == 4);
    CHECK(c.failures(CheckFailure::Refused) == 1);
    CHECK(c.failures(CheckFailure::Timeout) == 1);
    CHECK(c.failures(CheckFailure::BadStatus) == 0);
    const auto buckets = c.durationBuckets();
    CHECK(buckets[0] == 2);                      // le 0.0005
    CHECK(buckets[1] == 2);                      // le 0.001
    CHECK(buckets[2] == 3);                      // le 0.0025
    CHECK(buckets[kCheckDurationBounds.size() - 1] == 3);   // le 2.5
    CHECK(buckets.back() == 4);                  // +Inf: every check
    CHECK(c.durationSumSeconds() == Approx(3.0028));
}

TEST_CASE("Check failure kinds have stable label words", "[telemetry]") {
    CHECK(toString(CheckFailure::Timeout) == "timeout");
    CHECK(toString(CheckFailure::Refused) == "refused");
    CHECK(toString(CheckFailure::ConnectError) == "connect_error");
    CHECK(toString(CheckFailure::IoError) == "io_error");
    CHECK(toString(CheckFailure::Closed) == "closed");
    CHECK(toString(CheckFailure::BadResponse) == "bad_response");
    CHECK(toString(CheckFailure::BadStatus) == "bad_status");
}
