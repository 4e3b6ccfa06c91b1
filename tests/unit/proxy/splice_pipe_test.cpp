#include "switchyard/proxy/splice_pipe.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tcp_pair.h"

using namespace switchyard;
using namespace switchyard::proxy;

using switchyard::testing::TcpPair;

TEST_CASE("a splice pipe moves socket bytes on, says when it would block and passes EOF", "[proxy][splice]") {
    TcpPair in, out;
    SplicePipePool pool(4096);
    auto pipe = pool.acquire(0);
    REQUIRE(pipe);
    CHECK(pipe->capacity() >= 64 * 1024);
    CHECK(pipe->fill(in.b.get()).kind == SpliceResult::Kind::WouldBlock);   // nothing sent yet

    const std::string message = "hello through a pipe";
    REQUIRE(::send(in.a.get(), message.data(), message.size(), 0) == static_cast<ssize_t>(message.size()));
    SpliceResult r;
    for (int i = 0; i < 1000 && (r = pipe->fill(in.b.get())).kind == SpliceResult::Kind::WouldBlock; ++i)
        ::usleep(1000);   // loopback delivery is immediate; this only guards a slow scheduler
    REQUIRE(r.kind == SpliceResult::Kind::Moved);
    CHECK(r.bytes == message.size());
    CHECK(pipe->bytes() == message.size());

    r = pipe->drain(out.a.get());
    REQUIRE(r.kind == SpliceResult::Kind::Moved);
    CHECK(r.bytes == message.size());
    CHECK(pipe->bytes() == 0);
    char got[64] = {};
    ssize_t n = -1;
    for (int i = 0; i < 1000 && (n = ::recv(out.b.get(), got, sizeof got, 0)) < 0; ++i) ::usleep(1000);
    CHECK(std::string(got, static_cast<std::size_t>(n)) == message);

    ::shutdown(in.a.get(), SHUT_WR);
    for (int i = 0; i < 1000 && (r = pipe->fill(in.b.get())).kind == SpliceResult::Kind::WouldBlock; ++i)
        ::usleep(1000);
    CHECK(r.kind == SpliceResult::Kind::EndOfStream);
    pool.release(std::move(*pipe));
}

TEST_CASE("a full sink keeps the bytes in the pipe and reports would-block", "[proxy][splice]") {
    TcpPair in, out;
    SplicePipePool pool(4096);
    auto pipe = pool.acquire(0);
    REQUIRE(pipe);
    // Fill the sink's path until it refuses: nobody reads out.b.
    const std::string chunk(64 * 1024, 'x');
    while (::send(out.a.get(), chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
    }
    REQUIRE(::send(in.a.get(), chunk.data(), 1000, 0) == 1000);
    SpliceResult r;
    for (int i = 0; i < 1000 && (r = pipe->fill(in.b.get())).kind == SpliceResult::Kind::WouldBlock; ++i)
        ::usleep(1000);
    REQUIRE(r.kind == SpliceResult::Kind::Moved);
    CHECK(pipe->drain(out.a.get()).kind == SpliceResult::Kind::WouldBlock);
    CHECK(pipe->bytes() == 1000);
    // A pipe that still holds bytes is not pooled: with nothing in use the pool is empty.
    pool.release(std::move(*pipe));
    CHECK(pool.inUse() == 0);
    CHECK(pool.pooled() == 0);
}

TEST_CASE("the pipe pool reuses empty pipes while bulk flows go on and stays within its share",
          "[proxy][splice]") {
    SplicePipePool pool(160);   // an eighth of 160 descriptors: at most 10 pipes
    CHECK(pool.maxPipes() == 10);
    std::vector<SplicePipe> held;
    for (int i = 0; i < 10; ++i) {
        auto p = pool.acquire(0);
        REQUIRE(p);
        held.push_back(std::move(*p));
    }
    CHECK_FALSE(pool.acquire(0));   // the cap
    SplicePipe last = std::move(held.back());
    held.pop_back();
    pool.release(std::move(last));
    CHECK(pool.pooled() == 1);
    CHECK(pool.acquire(0));         // reused without a new pipe2
    CHECK(pool.pooled() == 0);

    SplicePipePool tight(160);
    // 60 connections use 120 of the 140 (7/8) descriptors a new pipe may take.
    CHECK(tight.acquire(60));
    CHECK_FALSE(tight.acquire(70));   // descriptors are short: no pipe, the flow stays on buffers
}

TEST_CASE("at a TCP urgent mark fill says not spliceable, and recv then steps over it", "[proxy][splice]") {
    // splice stops at the mark and, on a non-blocking socket, fails with EAGAIN
    // there for ever although bytes wait behind it: read as "would block", the
    // flow waited for readiness that was already there and stalled.
    TcpPair in, out;
    SplicePipePool pool(4096);
    auto pipe = pool.acquire(0);
    REQUIRE(pipe);
    const std::string before = "before the mark", after = "after the mark";
    REQUIRE(::send(in.a.get(), before.data(), before.size(), 0) == static_cast<ssize_t>(before.size()));
    REQUIRE(::send(in.a.get(), "!", 1, MSG_OOB) == 1);
    REQUIRE(::send(in.a.get(), after.data(), after.size(), 0) == static_cast<ssize_t>(after.size()));
    // Everything sent is acknowledged, so it waits in the receiver's queue.
    int unacked = -1;
    for (int i = 0; i < 1000 && (::ioctl(in.a.get(), TIOCOUTQ, &unacked), unacked > 0); ++i) ::usleep(1000);
    REQUIRE(unacked == 0);

    SpliceResult r = pipe->fill(in.b.get());
    REQUIRE(r.kind == SpliceResult::Kind::Moved);
    CHECK(r.bytes == before.size());
    REQUIRE(pipe->drain(out.a.get()).kind == SpliceResult::Kind::Moved);
    REQUIRE(pipe->bytes() == 0);
    CHECK(pipe->fill(in.b.get()).kind == SpliceResult::Kind::NotSpliceable);
    CHECK(pipe->fill(in.b.get()).kind == SpliceResult::Kind::NotSpliceable);   // splice never passes it
    char got[64];
    const ssize_t n = ::recv(in.b.get(), got, sizeof got, 0);
    REQUIRE(n > 0);
    CHECK(std::string(got, static_cast<std::size_t>(n)) == after);   // the urgent byte is out of band
    CHECK(pipe->fill(in.b.get()).kind == SpliceResult::Kind::WouldBlock);
    pool.release(std::move(*pipe));
}
