#include "switchyard/proxy/close_reason.h"

#include <catch2/catch.hpp>

using namespace switchyard::proxy;

TEST_CASE("a session's close reason: the first one noted wins", "[proxy][close_reason]") {
    CloseReasonLatch latch;
    CHECK_FALSE(latch.known());
    latch.note(CloseReason::DrainDeadline);
    CHECK(latch.known());
    // Closing the sockets then fails the reads and ends the relay: none of that changes it.
    latch.note(CloseReason::ClientClose);
    latch.note(CloseReason::IdleTimeout);
    latch.noteReset(true);
    latch.noteReset(false);
    CHECK(latch.reason() == CloseReason::DrainDeadline);
}

TEST_CASE("a reset outranks a half-close noted first, and only a half-close", "[proxy][close_reason]") {
    SECTION("client FIN, then the backend resets: backend_reset") {
        CloseReasonLatch latch;
        latch.note(CloseReason::ClientClose);
        latch.noteReset(false);
        CHECK(latch.reason() == CloseReason::BackendReset);
        // The first reset stays.
        latch.noteReset(true);
        latch.note(CloseReason::BackendClose);
        CHECK(latch.reason() == CloseReason::BackendReset);
    }
    SECTION("backend FIN, then the client resets: client_reset") {
        CloseReasonLatch latch;
        latch.note(CloseReason::BackendClose);
        latch.noteReset(true);
        CHECK(latch.reason() == CloseReason::ClientReset);
    }
    SECTION("a reset with nothing noted before") {
        CloseReasonLatch latch;
        latch.noteReset(true);
        CHECK(latch.known());
        CHECK(latch.reason() == CloseReason::ClientReset);
    }
    SECTION("no other reason gives way to a reset") {
        for (const CloseReason first : {CloseReason::IdleTimeout, CloseReason::DrainDeadline, CloseReason::Shutdown,
                                        CloseReason::ConnectFailed, CloseReason::NoBackend,
                                        CloseReason::ConnectionLimit}) {
            CloseReasonLatch latch;
            latch.note(first);
            latch.noteReset(false);
            CHECK(latch.reason() == first);
        }
    }
}
