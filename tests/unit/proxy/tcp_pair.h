#pragma once

// A connected loopback TCP pair for tests of code that needs real TCP sockets
// (splice does not take AF_UNIX): `a` connects, `b` is accepted; both non-blocking.

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "switchyard/util/unique_fd.h"

namespace switchyard::testing {

struct TcpPair {
    UniqueFd a, b;
    TcpPair() {
        UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listener.get(), 1) == 0);
        REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        a.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(::connect(a.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        b.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        REQUIRE(b.valid());
        ::fcntl(a.get(), F_SETFL, O_NONBLOCK);
    }
};

} // namespace switchyard::testing
