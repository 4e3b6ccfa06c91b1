#include "switchyard/proxy/engine/epoll/deadline_queue.h"

#include <chrono>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using switchyard::proxy::epoll_engine::Deadline;
using switchyard::proxy::epoll_engine::DeadlineQueue;
using switchyard::routing::TimePoint;

namespace {

const TimePoint t0 = TimePoint{} + 1000s;

} // namespace

TEST_CASE("deadline queue: fires what is due, earliest first, and nothing early", "[proxy][epoll]") {
    DeadlineQueue q;
    std::string fired;
    Deadline a([&] { fired += "a"; });
    Deadline b([&] { fired += "b"; });
    Deadline c([&] { fired += "c"; });
    q.arm(c, t0 + 30ms);
    q.arm(a, t0 + 10ms);
    q.arm(b, t0 + 20ms);
    CHECK(q.waitMillis(t0) == 10);
    q.runDue(t0 + 9ms);
    CHECK(fired.empty());
    q.runDue(t0 + 20ms);
    CHECK(fired == "ab");
    CHECK_FALSE(a.armed());
    CHECK(c.armed());
    CHECK(q.waitMillis(t0 + 20ms) == 10);
    q.runDue(t0 + 1s);
    CHECK(fired == "abc");
    CHECK(q.waitMillis(t0) == -1);   // nothing armed: epoll_wait sleeps until an event
}

TEST_CASE("deadline queue: a wait rounds up, so a timer is never early", "[proxy][epoll]") {
    DeadlineQueue q;
    Deadline a([] {});
    q.arm(a, t0 + 1500us);
    CHECK(q.waitMillis(t0) == 2);
    CHECK(q.waitMillis(t0 + 2ms) == 0);   // overdue: do not sleep
}

TEST_CASE("deadline queue: re-arming moves, cancelling and destroying take out", "[proxy][epoll]") {
    DeadlineQueue q;
    int fired = 0;
    Deadline moved([&] { ++fired; });
    q.arm(moved, t0 + 10ms);
    q.arm(moved, t0 + 50ms);   // the idle deadline replacing the connect timeout
    q.runDue(t0 + 20ms);
    CHECK(fired == 0);
    CHECK(q.waitMillis(t0 + 20ms) == 30);

    Deadline cancelled([&] { fired += 10; });
    q.arm(cancelled, t0 + 5ms);
    q.cancel(cancelled);
    q.cancel(cancelled);   // twice is harmless
    {
        auto owner = std::make_unique<Deadline>([&] { fired += 100; });
        q.arm(*owner, t0 + 1ms);
    }   // a session freed with its timer armed
    q.runDue(t0 + 1s);
    CHECK(fired == 1);
}

TEST_CASE("deadline queue: an expiry may re-arm its own entry or arm another", "[proxy][epoll]") {
    DeadlineQueue q;
    int rounds = 0;
    Deadline other([&] { rounds += 100; });
    Deadline self([&] {});
    Deadline repeating([&] {
        if (++rounds < 3) q.arm(self, t0 + 5ms);   // another entry, due in the same run
    });
    q.arm(repeating, t0);
    q.runDue(t0 + 10ms);
    CHECK(rounds == 1);
    CHECK_FALSE(self.armed());   // due by then: fired in the same run
    q.arm(other, t0 + 20ms);
    q.runDue(t0 + 10ms);
    CHECK(rounds == 1);
    q.runDue(t0 + 20ms);
    CHECK(rounds == 101);
}
