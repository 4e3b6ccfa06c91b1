#include "switchyard/config/endpoint.h"

#include <arpa/inet.h>

#include <cstring>

#include <catch2/catch.hpp>

using switchyard::config::Endpoint;
using switchyard::config::parseEndpoint;

namespace {

std::string whyNot(std::string_view text, bool allowZeroPort = false) {
    std::string why;
    auto ep = parseEndpoint(text, &why, allowZeroPort);
    CHECK_FALSE(ep.has_value());
    return why;
}

} // namespace

TEST_CASE("parseEndpoint reads IPv4 address and port", "[config][endpoint]") {
    auto ep = parseEndpoint("127.0.0.1:8080");
    REQUIRE(ep);
    CHECK(ep->host == "127.0.0.1");
    CHECK(ep->port == 8080);
    CHECK_FALSE(ep->ipv6);
    CHECK(ep->toString() == "127.0.0.1:8080");

    auto any = parseEndpoint("0.0.0.0:65535");
    REQUIRE(any);
    CHECK(any->port == 65535);
    CHECK(parseEndpoint("10.0.0.11:1"));
}

TEST_CASE("parseEndpoint reads bracketed IPv6 and canonicalises it", "[config][endpoint]") {
    auto ep = parseEndpoint("[::1]:8080");
    REQUIRE(ep);
    CHECK(ep->host == "::1");
    CHECK(ep->port == 8080);
    CHECK(ep->ipv6);
    CHECK(ep->toString() == "[::1]:8080");

    // Two spellings of one address compare equal, so duplicate checks catch them.
    auto longForm = parseEndpoint("[0:0:0:0:0:0:0:1]:8080");
    REQUIRE(longForm);
    CHECK(*longForm == *ep);

    auto upper = parseEndpoint("[2001:DB8::A]:443");
    REQUIRE(upper);
    CHECK(upper->host == "2001:db8::a");

    auto mapped = parseEndpoint("[::ffff:10.0.0.1]:80");
    REQUIRE(mapped);
    CHECK(mapped->ipv6);
}

TEST_CASE("parseEndpoint refuses with a reason", "[config][endpoint]") {
    CHECK(whyNot("") == "empty address");
    CHECK(whyNot("127.0.0.1") == "missing port");
    CHECK(whyNot("8080") == "missing address (write 0.0.0.0:8080 or 127.0.0.1:8080)");
    CHECK(whyNot("127.0.0.1:") == "missing port");
    CHECK(whyNot("[::1]") == "missing port");
    CHECK(whyNot("[::1]:") == "missing port");
    CHECK(whyNot("foo:80") == "'foo' is not a numeric IPv4 or [IPv6] address");
    CHECK(whyNot("localhost:80") == "'localhost' is not a numeric IPv4 or [IPv6] address");
    CHECK(whyNot("1.2.3:80") == "'1.2.3' is not a numeric IPv4 or [IPv6] address");
    CHECK(whyNot("256.0.0.1:80") == "'256.0.0.1' is not a numeric IPv4 or [IPv6] address");
    CHECK(whyNot(":80") == "'' is not a numeric IPv4 or [IPv6] address");
    CHECK(whyNot("127.0.0.1:70000") == "port 70000 out of range 1..65535");
    CHECK(whyNot("127.0.0.1:99999999999999999999") == "port 99999999999999999999 out of range 1..65535");
    CHECK(whyNot("127.0.0.1:0") == "port 0 out of range 1..65535");
    CHECK(whyNot("127.0.0.1:70000", true) == "port 70000 out of range 0..65535");
    CHECK(whyNot("127.0.0.1:http") == "'http' is not a port number");
    CHECK(whyNot("127.0.0.1:-1") == "'-1' is not a port number");
    CHECK(whyNot("127.0.0.1:80 ") == "'80 ' is not a port number");
    CHECK(whyNot("[::1") == "missing ']' after IPv6 address");
    CHECK(whyNot("[::1]80") == "expected ':PORT' after ']'");
    CHECK(whyNot("[1.2.3.4]:80") == "'[1.2.3.4]' is not a numeric IPv6 address");
    CHECK(whyNot("[]:80") == "'[]' is not a numeric IPv6 address");
    CHECK(whyNot("2001:db8::1") == "missing port (write IPv6 as [2001:db8::1]:PORT)");
    CHECK(whyNot("fe80::zz:80") == "IPv6 addresses need brackets: [ADDRESS]:PORT");
}

TEST_CASE("parseEndpoint allows port 0 only when asked", "[config][endpoint]") {
    CHECK_FALSE(parseEndpoint("127.0.0.1:0"));
    auto ep = parseEndpoint("127.0.0.1:0", nullptr, true);
    REQUIRE(ep);
    CHECK(ep->port == 0);
}

TEST_CASE("parseEndpoint without a reason pointer still refuses", "[config][endpoint]") {
    CHECK_FALSE(parseEndpoint("nope"));
}

TEST_CASE("Endpoint::toSockaddr fills IPv4 and IPv6 addresses", "[config][endpoint]") {
    sockaddr_storage ss{};
    auto v4 = parseEndpoint("10.1.2.3:8080");
    REQUIRE(v4);
    REQUIRE(v4->toSockaddr(ss) == sizeof(sockaddr_in));
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    CHECK(sin->sin_family == AF_INET);
    CHECK(ntohs(sin->sin_port) == 8080);
    CHECK(ntohl(sin->sin_addr.s_addr) == 0x0A010203u);

    auto v6 = parseEndpoint("[::1]:443");
    REQUIRE(v6);
    REQUIRE(v6->toSockaddr(ss) == sizeof(sockaddr_in6));
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    CHECK(sin6->sin6_family == AF_INET6);
    CHECK(ntohs(sin6->sin6_port) == 443);
    in6_addr loopback = IN6ADDR_LOOPBACK_INIT;
    CHECK(std::memcmp(&sin6->sin6_addr, &loopback, sizeof loopback) == 0);
}
