#include "switchyard/proxy/engine/epoll/deadline_queue.h"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using switchyard::proxy::epoll_engine::Deadline;
using switchyard::proxy::epoll_engine::DeadlineQueue;
using switchyard::proxy::epoll_engine::expireBy;
using switchyard::routing::TimePoint;

namespace {

const TimePoint t0 = TimePoint{} + 1000s;

// An owner of a deadline, as a session owns its timer: the expiry calls its method.
struct Owner {
    explicit Owner(std::function<void()> f) : onExpiry(std::move(f)) {}
    void expired() { onExpiry(); }
    std::function<void()> onExpiry;
    Deadline deadline{expireBy<Owner, &Owner::expired>, this};
};

// Frees itself when its deadline passes, as a session closed by its idle timer does.
struct SelfFreeing {
    void expired() { holder->reset(); }   // nothing of this is touched after
    std::unique_ptr<SelfFreeing>* holder = nullptr;
    Deadline deadline{expireBy<SelfFreeing, &SelfFreeing::expired>, this};
};

} // namespace

TEST_CASE("deadline queue: fires what is due, earliest first, and nothing early", "[proxy][epoll]") {
    DeadlineQueue q;
    std::string fired;
    Owner a([&] { fired += "a"; });
    Owner b([&] { fired += "b"; });
    Owner c([&] { fired += "c"; });
    q.arm(c.deadline, t0 + 30ms);
    q.arm(a.deadline, t0 + 10ms);
    q.arm(b.deadline, t0 + 20ms);
    CHECK(q.waitMillis(t0) == 10);
    q.runDue(t0 + 9ms);
    CHECK(fired.empty());
    q.runDue(t0 + 20ms);
    CHECK(fired == "ab");
    CHECK_FALSE(a.deadline.armed());
    CHECK(c.deadline.armed());
    CHECK(q.waitMillis(t0 + 20ms) == 10);
    q.runDue(t0 + 1s);
    CHECK(fired == "abc");
    CHECK(q.waitMillis(t0) == -1);   // nothing armed: epoll_wait sleeps until an event
}

TEST_CASE("deadline queue: a wait rounds up, so a timer is never early", "[proxy][epoll]") {
    DeadlineQueue q;
    Owner a([] {});
    q.arm(a.deadline, t0 + 1500us);
    CHECK(q.waitMillis(t0) == 2);
    CHECK(q.waitMillis(t0 + 2ms) == 0);   // overdue: do not sleep
}

TEST_CASE("deadline queue: re-arming moves, cancelling and destroying take out", "[proxy][epoll]") {
    DeadlineQueue q;
    int fired = 0;
    Owner moved([&] { ++fired; });
    q.arm(moved.deadline, t0 + 10ms);
    q.arm(moved.deadline, t0 + 50ms);   // the idle deadline replacing the connect timeout
    q.runDue(t0 + 20ms);
    CHECK(fired == 0);
    CHECK(q.waitMillis(t0 + 20ms) == 30);

    Owner cancelled([&] { fired += 10; });
    q.arm(cancelled.deadline, t0 + 5ms);
    q.cancel(cancelled.deadline);
    q.cancel(cancelled.deadline);   // twice is harmless
    {
        auto owner = std::make_unique<Owner>([&] { fired += 100; });
        q.arm(owner->deadline, t0 + 1ms);
    }   // a session freed with its timer armed
    q.runDue(t0 + 1s);
    CHECK(fired == 1);
}

TEST_CASE("deadline queue: an expiry may arm another entry or free its own owner", "[proxy][epoll]") {
    DeadlineQueue q;
    int rounds = 0;
    Owner other([&] { rounds += 100; });
    Owner later([] {});
    Owner first([&] {
        ++rounds;
        q.arm(later.deadline, t0 + 5ms);   // due in the same run
    });
    q.arm(first.deadline, t0);
    q.runDue(t0 + 10ms);
    CHECK(rounds == 1);
    CHECK_FALSE(later.deadline.armed());   // fired in the same run
    q.arm(other.deadline, t0 + 20ms);
    q.runDue(t0 + 10ms);
    CHECK(rounds == 1);
    q.runDue(t0 + 20ms);
    CHECK(rounds == 101);

    // A session whose timer closes it frees itself from inside its expiry.
    std::unique_ptr<SelfFreeing> freed = std::make_unique<SelfFreeing>();
    freed->holder = &freed;
    q.arm(freed->deadline, t0 + 30ms);
    q.runDue(t0 + 30ms);
    CHECK_FALSE(freed);
    CHECK(q.waitMillis(t0) == -1);
}
