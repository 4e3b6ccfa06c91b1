#include "switchyard/routing/backend_state.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include <catch2/catch.hpp>

using namespace switchyard;

TEST_CASE("A backend state is keyed by its address and carries its resolved sockaddr",
          "[routing]") {
    config::Endpoint e;
    e.host = "127.0.0.1";
    e.port = 9001;
    routing::BackendState b("web", config::Colour::Green, e);

    CHECK(b.service == "web");
    CHECK(b.colour == config::Colour::Green);
    CHECK(b.key == "127.0.0.1:9001");
    REQUIRE(b.sockaddrLen == sizeof(sockaddr_in));
    sockaddr_in in{};
    std::memcpy(&in, &b.sockaddr, sizeof in);
    CHECK(in.sin_family == AF_INET);
    CHECK(ntohs(in.sin_port) == 9001);
    CHECK(ntohl(in.sin_addr.s_addr) == 0x7f000001u);
    CHECK(b.active.load() == 0);
}

TEST_CASE("An IPv6 backend state gets a bracketed key and a sockaddr_in6", "[routing]") {
    config::Endpoint e;
    e.host = "::1";
    e.port = 9002;
    e.ipv6 = true;
    routing::BackendState b("web", config::Colour::Blue, e);

    CHECK(b.key == "[::1]:9002");
    REQUIRE(b.sockaddrLen == sizeof(sockaddr_in6));
    sockaddr_in6 in6{};
    std::memcpy(&in6, &b.sockaddr, sizeof in6);
    CHECK(in6.sin6_family == AF_INET6);
    CHECK(ntohs(in6.sin6_port) == 9002);
    CHECK(IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr));
}
