#include "switchyard/proxy/engine/uring/uring_engine.h"

#include <string>

#include <catch2/catch.hpp>

using namespace switchyard;

TEST_CASE("The io_uring probe gives a reason whenever it says no", "[uring][probe]") {
    std::string why;
    const bool available = proxy::uringAvailable(&why);
    if (!available) CHECK_FALSE(why.empty());
    else CHECK(why.empty());
}

TEST_CASE("Where io_uring is available the loopback self-check passes", "[uring][probe]") {
    std::string why;
    if (!proxy::uringAvailable(&why)) {
        WARN("io_uring unavailable: " << why);
        return;
    }
    INFO(why);
    CHECK(proxy::uringSelfCheck(&why));
}
