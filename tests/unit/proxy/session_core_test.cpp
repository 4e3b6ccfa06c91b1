#include "switchyard/proxy/session_core.h"

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "../routing/snapshot_builder.h"

using namespace switchyard;
using namespace switchyard::proxy;
using namespace std::chrono_literals;
using routing::testing::ServiceBuilder;
using Kind = SessionAction::Kind;
using config::Colour;

namespace {

// A worker with one service and the session under test, driven by hand.
struct Harness {
    SessionContext worker;
    routing::ServiceRoute route;
    std::unique_ptr<SessionCore> core;

    explicit Harness(routing::ServiceRoute service) {
        worker.snapshot = std::make_shared<routing::RoutingSnapshot>(routing::testing::snapshotOf({service}));
        worker.selector.update(*worker.snapshot);
        route = worker.snapshot->services[0];
        core = std::make_unique<SessionCore>(worker, 7, 0);
    }
    SessionAction on(const SessionEvent& e) { return core->on(e); }
    // Accepted, connected to the first backend picked, relaying.
    SessionAction relaying() {
        REQUIRE(on(SessionEvent::accepted(-1)).kind == Kind::Connect);
        return on(SessionEvent::connectOk(std::chrono::steady_clock::now()));
    }
    routing::ServiceState& state() { return *route.state; }
    routing::BackendState& backend(Colour c, std::size_t i) { return *route.pool(c).backends[i].handle; }
    static telemetry::TrafficSlot& slot(routing::BackendState& b) { return b.traffic.slot(0); }
    uint64_t closedWithoutBackend(CloseReason r) { return state().closedWithoutBackend[static_cast<int>(r)].load(); }
};

routing::ServiceRoute twoBlueBackends(uint32_t retries = 2) {
    routing::ServiceRoute s = ServiceBuilder("web").backends(Colour::Blue, {1, 1}).build();
    s.retries = retries;
    return s;
}

std::span<const uint8_t> bytesOf(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

} // namespace

TEST_CASE("session core: a failed connect is retried on the next backend, then relays", "[proxy][session_core]") {
    Harness h(twoBlueBackends());
    const SessionAction first = h.on(SessionEvent::accepted(-1));
    REQUIRE(first.kind == Kind::Connect);
    CHECK(first.timeout == h.route.connectTimeout);
    CHECK(h.core->state() == SessionState::Connecting);
    const SessionAction second = h.on(SessionEvent::connectFailed(ECONNREFUSED));
    REQUIRE(second.kind == Kind::Connect);
    CHECK(second.backend != first.backend);
    CHECK(Harness::slot(*first.backend).connectFailures.get() == 1);
    CHECK(Harness::slot(*first.backend).connectRefused.get() == 1);
    CHECK(Harness::slot(*second.backend).retries.get() == 1);
    const SessionAction relay = h.on(SessionEvent::connectOk(std::chrono::steady_clock::now()));
    CHECK(relay.kind == Kind::Relay);
    CHECK(h.core->state() == SessionState::Relaying);
    CHECK(h.core->backend().get() == second.backend);
    CHECK(second.backend->active.load() == 1);
    CHECK(Harness::slot(*second.backend).connections.get() == 1);
    CHECK(h.state().active.load() == 1);
}

TEST_CASE("session core: the retry crosses to the other pool", "[proxy][session_core]") {
    routing::ServiceRoute s = ServiceBuilder("web").backend(Colour::Blue, 1).backend(Colour::Green, 1).build();
    Harness h(s);
    const SessionAction first = h.on(SessionEvent::accepted(-1));
    REQUIRE(first.kind == Kind::Connect);
    CHECK(first.backend->colour == Colour::Blue);
    const SessionAction second = h.on(SessionEvent::connectFailed(ETIMEDOUT));
    REQUIRE(second.kind == Kind::Connect);
    CHECK(second.backend->colour == Colour::Green);
    CHECK(Harness::slot(*first.backend).connectTimeouts.get() == 1);
}

TEST_CASE("session core: a local error (EMFILE) is not the backend's failure", "[proxy][session_core]") {
    Harness h(twoBlueBackends());
    const SessionAction first = h.on(SessionEvent::accepted(-1));
    REQUIRE(h.on(SessionEvent::connectFailed(EMFILE)).kind == Kind::Connect);
    CHECK(Harness::slot(*first.backend).localErrors.get() == 1);
    CHECK(Harness::slot(*first.backend).connectFailures.get() == 0);
    CHECK(first.backend->consecutiveFailures.load() == 0);
}

TEST_CASE("session core: every attempt failed, or nothing to try: closed without a backend",
          "[proxy][session_core]") {
    SECTION("retries: 1 allows two attempts") {
        Harness h(ServiceBuilder("web").backends(Colour::Blue, {1, 1, 1}).build());
        h.route.retries = 1;
        h.worker.snapshot = std::make_shared<routing::RoutingSnapshot>(routing::testing::snapshotOf({h.route}));
        h.core = std::make_unique<SessionCore>(h.worker, 7, 0);
        REQUIRE(h.on(SessionEvent::accepted(-1)).kind == Kind::Connect);
        REQUIRE(h.on(SessionEvent::connectFailed(ECONNREFUSED)).kind == Kind::Connect);
        const SessionAction end = h.on(SessionEvent::connectFailed(ECONNREFUSED));
        CHECK(end.kind == Kind::Close);
        CHECK_FALSE(end.reset);
        CHECK(h.core->reason() == CloseReason::ConnectFailed);
        CHECK(h.closedWithoutBackend(CloseReason::ConnectFailed) == 1);
    }
    SECTION("every backend tried") {
        Harness h(twoBlueBackends(5));
        REQUIRE(h.on(SessionEvent::accepted(-1)).kind == Kind::Connect);
        REQUIRE(h.on(SessionEvent::connectFailed(ECONNREFUSED)).kind == Kind::Connect);
        CHECK(h.on(SessionEvent::connectFailed(ECONNREFUSED)).kind == Kind::Close);
        CHECK(h.core->reason() == CloseReason::ConnectFailed);
    }
    SECTION("no backend at all") {
        Harness h(ServiceBuilder("web").build());
        CHECK(h.on(SessionEvent::accepted(-1)).kind == Kind::Close);
        CHECK(h.core->reason() == CloseReason::NoBackend);
        CHECK(h.closedWithoutBackend(CloseReason::NoBackend) == 1);
        h.core->finish();
        CHECK(h.state().active.load() == 0);
    }
    SECTION("over max_connections") {
        routing::ServiceRoute s = twoBlueBackends();
        s.maxConnections = 0;
        Harness h(s);
        CHECK(h.on(SessionEvent::accepted(-1)).kind == Kind::Close);
        CHECK(h.core->reason() == CloseReason::ConnectionLimit);
        CHECK(h.state().refusedAtLimit.load() == 1);
        h.core->finish();
        CHECK(h.state().active.load() == 0);
    }
}

TEST_CASE("session core: half-close each way passes the EOF on, the second one closes", "[proxy][session_core]") {
    const auto now = std::chrono::steady_clock::now();
    const bool clientFirst = GENERATE(true, false);
    const Direction first = clientFirst ? Direction::ClientToBackend : Direction::BackendToClient;
    const Direction second = clientFirst ? Direction::BackendToClient : Direction::ClientToBackend;
    Harness h(twoBlueBackends());
    REQUIRE(h.relaying().kind == Kind::Relay);
    const SessionAction a = h.on(SessionEvent::eof(first, now));
    CHECK(a.kind == Kind::ShutdownWrite);
    CHECK(a.direction == first);
    CHECK_FALSE(a.thenClose);
    // timeouts.half_closed (30 s) is shorter than timeouts.idle (300 s): the timer moves.
    CHECK(a.moveTimer);
    CHECK(a.at == now + h.route.halfClosedTimeout);
    CHECK(h.core->idleDeadline() == now + h.route.halfClosedTimeout);
    CHECK(h.on(SessionEvent::eof(first, now)).kind == Kind::None);   // once per direction
    const SessionAction b = h.on(SessionEvent::eof(second, now));
    CHECK(b.kind == Kind::ShutdownWrite);
    CHECK(b.direction == second);
    CHECK(b.thenClose);
    CHECK(h.core->closing());
    CHECK(h.core->reason() == (clientFirst ? CloseReason::ClientClose : CloseReason::BackendClose));
    h.core->finish();
    CHECK(Harness::slot(*h.core->backend()).closed[static_cast<int>(h.core->reason())].get() == 1);
    CHECK(h.core->backend()->active.load() == 0);
    CHECK(h.state().active.load() == 0);
}

TEST_CASE("session core: a reset either way resets the other side and outranks a half-close",
          "[proxy][session_core]") {
    SECTION("the client resets") {
        Harness h(twoBlueBackends());
        h.relaying();
        const SessionAction a = h.on(SessionEvent::failed(Side::Client));
        CHECK(a.kind == Kind::Close);
        CHECK(a.reset);
        CHECK(a.resetSide == Side::Backend);
        CHECK(h.core->reason() == CloseReason::ClientReset);
    }
    SECTION("the client half-closes, then the backend resets before its first byte") {
        Harness h(twoBlueBackends());
        h.relaying();
        h.on(SessionEvent::eof(Direction::ClientToBackend, std::chrono::steady_clock::now()));
        const SessionAction a = h.on(SessionEvent::failed(Side::Backend));
        CHECK(a.kind == Kind::Close);
        CHECK(a.resetSide == Side::Client);
        CHECK(h.core->reason() == CloseReason::BackendReset);
        // Events of the sockets being closed change nothing.
        CHECK(h.on(SessionEvent::failed(Side::Client)).kind == Kind::None);
        CHECK(h.core->reason() == CloseReason::BackendReset);
        h.core->finish();
        CHECK(Harness::slot(*h.core->backend()).earlyCloses.get() == 1);
    }
}

TEST_CASE("session core: a drain deadline or shutdown closes with its reason, which stays", "[proxy][session_core]") {
    Harness h(twoBlueBackends());
    h.relaying();
    const SessionAction a = h.on(SessionEvent::closeRequested(CloseReason::DrainDeadline));
    CHECK(a.kind == Kind::Close);
    CHECK_FALSE(a.reset);
    CHECK(h.on(SessionEvent::failed(Side::Backend)).kind == Kind::None);
    CHECK(h.on(SessionEvent::eof(Direction::ClientToBackend, {})).kind == Kind::None);
    CHECK(h.on(SessionEvent::closeRequested(CloseReason::Shutdown)).kind == Kind::None);
    CHECK(h.core->reason() == CloseReason::DrainDeadline);

    SECTION("closed while connecting: counted without a backend") {
        Harness c(twoBlueBackends());
        REQUIRE(c.on(SessionEvent::accepted(-1)).kind == Kind::Connect);
        CHECK(c.on(SessionEvent::closeRequested(CloseReason::Shutdown)).kind == Kind::Close);
        CHECK(c.on(SessionEvent::connectOk(std::chrono::steady_clock::now())).kind == Kind::None);
        CHECK(c.closedWithoutBackend(CloseReason::Shutdown) == 1);
        c.core->finish();
        CHECK(c.state().active.load() == 0);
    }
}

TEST_CASE("session core: the idle timer re-arms for moved deadlines and closes after", "[proxy][session_core]") {
    Harness h(twoBlueBackends());
    const SessionAction relay = h.relaying();
    REQUIRE(relay.kind == Kind::Relay);
    const auto connected = relay.at - h.route.idleTimeout;
    h.core->noteRead(Direction::ClientToBackend, 10, false, connected + 5s);
    const SessionAction early = h.on(SessionEvent::timerFired(relay.at));
    CHECK(early.kind == Kind::ArmTimer);
    CHECK(early.at == connected + 5s + h.route.idleTimeout);
    const SessionAction late = h.on(SessionEvent::timerFired(early.at));
    CHECK(late.kind == Kind::Close);
    CHECK(h.core->reason() == CloseReason::IdleTimeout);
}

TEST_CASE("session core: PROXY header failures close with their counts", "[proxy][session_core]") {
    routing::ServiceRoute s = twoBlueBackends();
    s.acceptProxy = true;
    Harness h(s);
    const SessionAction read = h.on(SessionEvent::accepted(-1));
    REQUIRE(read.kind == Kind::ReadHeader);
    CHECK(h.core->state() == SessionState::Header);

    SECTION("malformed") {
        CHECK(h.on(SessionEvent::headerBytes(bytesOf("GET / HTTP/1.1\r\n\r\n"))).kind == Kind::Close);
        CHECK(h.core->reason() == CloseReason::ClientReset);
        CHECK(h.state().proxyHeaderErrors.load() == 1);
        CHECK(h.state().proxyHeaderTimeouts.load() == 0);
        CHECK(h.closedWithoutBackend(CloseReason::ClientReset) == 1);
    }
    SECTION("late") {
        CHECK(h.on(SessionEvent::headerBytes(bytesOf("PROXY TCP4 "))).kind == Kind::ReadHeader);
        CHECK(h.on(SessionEvent::timerFired(read.at)).kind == Kind::Close);
        CHECK(h.state().proxyHeaderErrors.load() == 1);
        CHECK(h.state().proxyHeaderTimeouts.load() == 1);
    }
    SECTION("cut short") {
        CHECK(h.on(SessionEvent::headerBytes(bytesOf("PROXY TCP4 "))).kind == Kind::ReadHeader);
        CHECK(h.on(SessionEvent::headerEnded(0)).kind == Kind::Close);
        CHECK(h.core->reason() == CloseReason::ClientReset);
        CHECK(h.state().proxyHeaderErrors.load() == 1);
    }
    SECTION("the client left without a byte: not a protocol error") {
        CHECK(h.on(SessionEvent::headerEnded(0)).kind == Kind::Close);
        CHECK(h.core->reason() == CloseReason::ClientClose);
        CHECK(h.state().proxyHeaderErrors.load() == 0);
        CHECK(h.closedWithoutBackend(CloseReason::ClientClose) == 1);
    }
    SECTION("accepted: the bytes after it go to the backend first, counted as client bytes") {
        const SessionAction connect =
            h.on(SessionEvent::headerBytes(bytesOf("PROXY TCP4 192.0.2.1 198.51.100.1 4000 80\r\nhello")));
        REQUIRE(connect.kind == Kind::Connect);
        const SessionAction send = h.on(SessionEvent::connectOk(std::chrono::steady_clock::now()));
        REQUIRE(send.kind == Kind::SendPreamble);
        CHECK(h.core->preamble() == "hello");
        CHECK(h.on(SessionEvent::preambleSent(2)).kind == Kind::SendPreamble);
        CHECK(h.core->preamble() == "llo");
        CHECK(h.on(SessionEvent::preambleSent(3)).kind == Kind::Relay);
        CHECK(h.core->bytes().total(0) == 5);
    }
}

TEST_CASE("session core: two whole buffers in a row switch a direction to splice", "[proxy][session_core]") {
    Harness h(twoBlueBackends());
    h.relaying();
    const auto now = std::chrono::steady_clock::now();
    const Direction d = Direction::BackendToClient;
    h.core->noteRead(d, 16384, true, now);
    CHECK_FALSE(h.core->takeBulkTurn(d));
    h.core->noteRead(d, 100, false, now);   // a short read starts the count over
    h.core->noteRead(d, 16384, true, now);
    CHECK_FALSE(h.core->takeBulkTurn(d));
    h.core->noteRead(d, 16384, true, now);
    CHECK(h.core->takeBulkTurn(d));
    // Taken (pipe or not): asked again only after two more whole buffers.
    CHECK_FALSE(h.core->takeBulkTurn(d));
    CHECK_FALSE(h.core->takeBulkTurn(Direction::ClientToBackend));
    h.core->noteSpliced(d, 65536, now);
    CHECK(h.core->bytes().total(1) == 3 * 16384 + 100 + 65536);
}
