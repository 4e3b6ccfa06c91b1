#include "switchyard/proxy/spliced_flow.h"

#include <csignal>

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include <catch2/catch.hpp>

#include "../routing/snapshot_builder.h"
#include "tcp_pair.h"

using namespace switchyard;
using namespace switchyard::proxy;
using switchyard::testing::TcpPair;

namespace {

constexpr Direction kDown = Direction::BackendToClient;

// A relaying session core, as the engines hold one while a direction splices.
struct Relaying {
    SessionContext worker;
    std::unique_ptr<SessionCore> core;
    Relaying() {
        const routing::ServiceRoute s = routing::testing::ServiceBuilder("web").backends(config::Colour::Blue, {1}).build();
        worker.snapshot = std::make_shared<routing::RoutingSnapshot>(routing::testing::snapshotOf({s}));
        worker.selector.update(*worker.snapshot);
        core = std::make_unique<SessionCore>(worker, 1, 0);
        REQUIRE(core->on(SessionEvent::accepted(-1)).kind == SessionAction::Kind::Connect);
        REQUIRE(core->on(SessionEvent::connectOk(now())).kind == SessionAction::Kind::Relay);
    }
    // Two whole buffers read: the core's bulk decision says splice.
    void bulk() {
        core->noteRead(kDown, 16384, true, now());
        core->noteRead(kDown, 16384, true, now());
    }
    static SteadyTime now() { return std::chrono::steady_clock::now(); }
};

// A bulk download taking a pipe: backend.a -> backend.b ~splice~> client.a -> client.b.
struct SplicingDown {
    Relaying r;
    SplicePipePool pool{4096};
    SplicedFlow flow;
    TcpPair backend, client;
    SplicingDown() {
        r.bulk();
        REQUIRE(startSplicing(flow, &pool, *r.core, kDown, 0));
    }
    ~SplicingDown() { stopSplicing(flow, &pool); }
    SpliceNext pump() { return pumpSplice(flow, backend.b.get(), client.a.get(), *r.core, kDown, r.now()); }
};

void waitReadable(int fd) {
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
}

// Everything `fd` sent is acknowledged: it waits in the peer's receive queue.
void waitAcked(int fd) {
    int unacked = -1;
    for (int i = 0; i < 5000 && (::ioctl(fd, TIOCOUTQ, &unacked), unacked > 0); ++i) ::usleep(1000);
    REQUIRE(unacked == 0);
}

std::string receive(int fd) {
    waitReadable(fd);
    char got[256];
    const ssize_t n = ::recv(fd, got, sizeof got, 0);
    REQUIRE(n > 0);
    return std::string(got, static_cast<std::size_t>(n));
}

} // namespace

TEST_CASE("spliced flow: only a bulk flow with a pool takes a pipe", "[proxy][splice]") {
    Relaying r;
    SplicePipePool pool(4096);
    SplicedFlow flow;
    CHECK_FALSE(startSplicing(flow, &pool, *r.core, kDown, 0));   // no two whole buffers yet
    r.bulk();
    CHECK_FALSE(startSplicing(flow, nullptr, *r.core, kDown, 0));   // splice off: the turn is still used up
    CHECK_FALSE(flow.pipe);
    r.bulk();
    REQUIRE(startSplicing(flow, &pool, *r.core, kDown, 0));
    CHECK(pool.inUse() == 1);
    stopSplicing(flow, &pool);
    CHECK_FALSE(flow.pipe);
    CHECK(pool.inUse() == 0);
}

TEST_CASE("spliced flow: bytes go through, a short fill waits for the source, EOF ends it", "[proxy][splice]") {
    SplicingDown s;
    CHECK(s.pump() == SpliceNext::WaitReadable);
    CHECK(s.flow.waitsOnEAGAIN);   // the source said EAGAIN: an edge-triggered driver sleeps until its next edge
    const std::string message = "through the pipe";
    REQUIRE(::send(s.backend.a.get(), message.data(), message.size(), 0) == static_cast<ssize_t>(message.size()));
    waitReadable(s.backend.b.get());
    // One fill and drain; the fill was short, so the next would only say EAGAIN: it waits instead.
    CHECK(s.pump() == SpliceNext::WaitReadable);
    CHECK_FALSE(s.flow.waitsOnEAGAIN);   // a guess, not the socket's word: no edge may come
    CHECK(receive(s.client.b.get()) == message);
    CHECK(s.r.core->bytes().total(1) == 2 * 16384 + message.size());

    ::shutdown(s.backend.a.get(), SHUT_WR);
    waitReadable(s.backend.b.get());
    CHECK(s.pump() == SpliceNext::Ended);
}

TEST_CASE("spliced flow: at a TCP urgent mark it goes back to buffers with the pipe empty", "[proxy][splice]") {
    SplicingDown s;
    const std::string before = "before the mark";
    REQUIRE(::send(s.backend.a.get(), before.data(), before.size(), 0) == static_cast<ssize_t>(before.size()));
    REQUIRE(::send(s.backend.a.get(), "!", 1, MSG_OOB) == 1);
    REQUIRE(::send(s.backend.a.get(), "after", 5, 0) == 5);
    waitAcked(s.backend.a.get());
    // splice stops at the mark: a short fill, so one wait first, then the mark itself.
    CHECK(s.pump() == SpliceNext::WaitReadable);
    CHECK_FALSE(s.flow.waitsOnEAGAIN);   // bytes are still there: an edge-triggered driver must come back by itself
    CHECK(s.pump() == SpliceNext::BackToBuffers);
    CHECK(s.flow.pipe->bytes() == 0);
    CHECK(receive(s.client.b.get()) == before);
}

TEST_CASE("spliced flow: a sink that fails is the sink's failure", "[proxy][splice]") {
    SplicingDown s;
    ::signal(SIGPIPE, SIG_IGN);   // as the daemon does: EPIPE comes back as an error
    ::shutdown(s.client.a.get(), SHUT_WR);   // writing to it now fails (EPIPE)
    REQUIRE(::send(s.backend.a.get(), "x", 1, 0) == 1);
    waitReadable(s.backend.b.get());
    CHECK(s.pump() == SpliceNext::SinkFailed);
}
