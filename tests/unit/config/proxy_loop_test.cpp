#include "switchyard/config/proxy_loop.h"

#include <catch2/catch.hpp>

using namespace switchyard::config;

namespace {

Endpoint at(const char* text) { return *parseEndpoint(text); }

std::vector<ServiceConfig> listening(std::initializer_list<const char*> addresses) {
    std::vector<ServiceConfig> services;
    for (const char* a : addresses) {
        ServiceConfig s;
        s.name = "svc" + std::to_string(services.size());
        s.listen = at(a);
        services.push_back(s);
    }
    return services;
}

} // namespace

TEST_CASE("a backend at a listener's own address and port is a proxy loop", "[config][proxy_loop]") {
    const auto services = listening({"127.0.0.1:8080", "[::1]:8443"});
    const auto why = proxyLoopReason(at("127.0.0.1:8080"), services);
    REQUIRE(why);
    CHECK(*why == "backend 127.0.0.1:8080 is this proxy's own listener 127.0.0.1:8080 (service 'svc0'): "
                  "a connection would loop through the proxy");
    CHECK(proxyLoopReason(at("[::1]:8443"), services));
    CHECK(proxyLoopReason(at("[::ffff:127.0.0.1]:8080"), services));
}

TEST_CASE("wildcards on either side loop on the same port", "[config][proxy_loop]") {
    CHECK(proxyLoopReason(at("0.0.0.0:8080"), listening({"127.0.0.1:8080"})));
    CHECK(proxyLoopReason(at("[::]:8080"), listening({"127.0.0.1:8080"})));
    CHECK(proxyLoopReason(at("127.0.0.1:8080"), listening({"0.0.0.0:8080"})));
    CHECK(proxyLoopReason(at("127.9.9.9:8080"), listening({"0.0.0.0:8080"})));
    CHECK(proxyLoopReason(at("127.0.0.1:8080"), listening({"[::]:8080"})));   // dual-stack
    CHECK(proxyLoopReason(at("[::1]:8080"), listening({"[::]:8080"})));
}

TEST_CASE("other addresses and ports are not loops", "[config][proxy_loop]") {
    const auto services = listening({"127.0.0.1:8080", "0.0.0.0:9090"});
    CHECK_FALSE(proxyLoopReason(at("127.0.0.1:8081"), services));
    CHECK_FALSE(proxyLoopReason(at("127.0.0.2:8080"), services));   // another loopback address
    CHECK_FALSE(proxyLoopReason(at("10.0.0.5:9090"), services));    // another host, same port
    CHECK_FALSE(proxyLoopReason(at("[::1]:9090"), services));       // an IPv4 listener never sees ::1
    CHECK_FALSE(proxyLoopReason(at("127.0.0.1:8080"), {}));
}
