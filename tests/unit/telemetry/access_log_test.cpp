#include "switchyard/telemetry/access_log.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdlib>
#include <ctime>

#include <catch2/catch.hpp>

using namespace switchyard::telemetry;
using switchyard::config::AccessLogFormat;

namespace {

// 2026-12-04T20:44:51.123 UTC; the tests run with TZ=UTC so the offset is fixed.
std::chrono::system_clock::time_point acceptedAt() {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(1796417091123));
}

} // namespace

TEST_CASE("An access record for a proxied connection is one logfmt line", "[telemetry]") {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(51544);
    ::inet_pton(AF_INET, "10.0.0.7", &in.sin_addr);
    sockaddr_in listener{};
    listener.sin_family = AF_INET;
    listener.sin_port = htons(8080);
    ::inet_pton(AF_INET, "10.0.0.2", &listener.sin_addr);
    AccessRecord r;
    r.accepted = acceptedAt();
    r.client = reinterpret_cast<const sockaddr*>(&in);
    r.clientLen = sizeof in;
    r.listener = reinterpret_cast<const sockaddr*>(&listener);
    r.listenerLen = sizeof listener;
    r.service = "web";
    r.pool = "blue";
    r.backend = "10.0.0.11:8080";
    r.retries = 1;
    r.bytesIn = 120;
    r.bytesOut = 5130;
    r.duration = std::chrono::microseconds(12407);
    r.connect = std::chrono::microseconds(311);
    r.ttfb = std::chrono::microseconds(1020);
    r.reason = "client_close";
    CHECK(formatAccessRecord(r) ==
          "accepted=2026-12-04T20:44:51.123+00:00 client=10.0.0.7:51544 listener=10.0.0.2:8080 service=web "
          "pool=blue backend=10.0.0.11:8080 retries=1 bytes_in=120 bytes_out=5130 duration_ms=12.407 "
          "connect_ms=0.311 ttfb_ms=1.020 reason=client_close");
    CHECK(formatAccessRecord(r, AccessLogFormat::Json) ==
          R"({"accepted":"2026-12-04T20:44:51.123+00:00","client":"10.0.0.7:51544","listener":"10.0.0.2:8080",)"
          R"("service":"web","pool":"blue","backend":"10.0.0.11:8080","retries":1,"bytes_in":120,"bytes_out":5130,)"
          R"("duration_ms":12.407,"connect_ms":0.311,"ttfb_ms":1.020,"reason":"client_close"})");
}

TEST_CASE("A connection that reached no backend logs dashes for pool, backend and connect time", "[telemetry]") {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(40000);
    ::inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    AccessRecord r;
    r.accepted = acceptedAt();
    r.client = reinterpret_cast<const sockaddr*>(&in6);
    r.clientLen = sizeof in6;
    r.service = "web";
    r.retries = 2;
    r.duration = std::chrono::microseconds(2000500);
    r.reason = "connect_failed";
    CHECK(formatAccessRecord(r) ==
          "accepted=2026-12-04T20:44:51.123+00:00 client=[::1]:40000 listener=- service=web pool=- backend=- "
          "retries=2 bytes_in=0 bytes_out=0 duration_ms=2000.500 connect_ms=- ttfb_ms=- reason=connect_failed");
    CHECK(formatAccessRecord(r, AccessLogFormat::Json) ==
          R"({"accepted":"2026-12-04T20:44:51.123+00:00","client":"[::1]:40000","listener":null,"service":"web",)"
          R"("pool":null,"backend":null,"retries":2,"bytes_in":0,"bytes_out":0,"duration_ms":2000.500,)"
          R"("connect_ms":null,"ttfb_ms":null,"reason":"connect_failed"})");
}

TEST_CASE("JSON access lines escape what they print", "[telemetry]") {
    AccessRecord r;
    r.accepted = acceptedAt();
    r.service = "we\"b\n";
    r.reason = "x";
    const std::string line = formatAccessRecord(r, AccessLogFormat::Json);
    CHECK_THAT(line, Catch::Contains(R"("service":"we\"b\u000a")"));
}

TEST_CASE("The access log is off until set up and costs a load when off", "[telemetry]") {
    CHECK_FALSE(accessLogEnabled());
    AccessRecord r;
    logAccess(r);   // no writer: nothing happens
    CHECK(accessLogDropped() == 0);
}
