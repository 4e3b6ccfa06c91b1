#include "switchyard/telemetry/access_log.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>

using namespace switchyard::telemetry;

TEST_CASE("An access record for a proxied connection is one logfmt line", "[telemetry]") {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(51544);
    ::inet_pton(AF_INET, "10.0.0.7", &in.sin_addr);
    AccessRecord r;
    r.client = reinterpret_cast<const sockaddr*>(&in);
    r.clientLen = sizeof in;
    r.service = "web";
    r.pool = "blue";
    r.backend = "10.0.0.11:8080";
    r.bytesIn = 120;
    r.bytesOut = 5130;
    r.duration = std::chrono::microseconds(12407);
    r.connect = std::chrono::microseconds(311);
    r.reason = "client_close";
    CHECK(formatAccessRecord(r) ==
          "client=10.0.0.7:51544 service=web pool=blue backend=10.0.0.11:8080 bytes_in=120 bytes_out=5130 "
          "duration_ms=12.407 connect_ms=0.311 reason=client_close");
}

TEST_CASE("A connection that reached no backend logs dashes for pool, backend and connect time", "[telemetry]") {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(40000);
    ::inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    AccessRecord r;
    r.client = reinterpret_cast<const sockaddr*>(&in6);
    r.clientLen = sizeof in6;
    r.service = "web";
    r.duration = std::chrono::microseconds(2000500);
    r.reason = "connect_failed";
    CHECK(formatAccessRecord(r) ==
          "client=[::1]:40000 service=web pool=- backend=- bytes_in=0 bytes_out=0 duration_ms=2000.500 "
          "connect_ms=- reason=connect_failed");
}

TEST_CASE("The access log is off until set up and costs a load when off", "[telemetry]") {
    CHECK_FALSE(accessLogEnabled());
    AccessRecord r;
    logAccess(r);   // no writer: nothing happens
    CHECK(accessLogDropped() == 0);
}
