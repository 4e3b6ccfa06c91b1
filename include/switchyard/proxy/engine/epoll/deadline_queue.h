#pragma once

// The epoll engine's timers: deadlines of one worker's thread, earliest first.
// The loop sleeps in epoll_wait until the earliest, so a timer costs no system
// call at all (Asio's cost a timerfd_settime whenever one became the earliest),
// and an entry lives in its owner (a session, a listener): arming allocates
// nothing. An entry leaves the queue when it fires, is cancelled or is destroyed.

#include <chrono>
#include <climits>

#include <boost/intrusive/set.hpp>

#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::proxy::epoll_engine {

namespace bi = boost::intrusive;

class Deadline {
public:
    // `expired(owner)` runs on the worker's thread when the deadline passes; it
    // may re-arm this entry or free its owner (and so this entry): a plain
    // function and a pointer, so nothing of the entry is in use by then.
    using Expired = void (*)(void* owner);
    Deadline(Expired expired, void* owner) : expired_(expired), owner_(owner) {}
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    bool armed() const { return hook_.is_linked(); }
    routing::TimePoint at() const { return at_; }

private:
    friend class DeadlineQueue;
    bi::set_member_hook<bi::link_mode<bi::auto_unlink>> hook_;
    routing::TimePoint at_{};
    Expired expired_;
    void* owner_;
};

// The Deadline::Expired that calls `Method` of its owner.
template <class Owner, void (Owner::*Method)()>
void expireBy(void* owner) {
    (static_cast<Owner*>(owner)->*Method)();
}

class DeadlineQueue {
public:
    // (Re)arms `d` for `at`.
    void arm(Deadline& d, routing::TimePoint at) {
        if (d.armed()) d.hook_.unlink();
        d.at_ = at;
        queue_.insert(d);
    }
    void cancel(Deadline& d) {
        if (d.armed()) d.hook_.unlink();
    }

    // How long epoll_wait may sleep: -1 with nothing armed, else the
    // milliseconds to the earliest, rounded up (a timer never fires early).
    int waitMillis(routing::TimePoint now) const {
        if (queue_.empty()) return -1;
        const auto left = queue_.begin()->at_ - now;
        if (left <= left.zero()) return 0;
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }

    // Fires every deadline due by `now`, earliest first.
    void runDue(routing::TimePoint now) {
        while (!queue_.empty() && queue_.begin()->at_ <= now) {
            Deadline& d = *queue_.begin();
            d.hook_.unlink();
            d.expired_(d.owner_);
        }
    }

private:
    struct ByTime {
        bool operator()(const Deadline& a, const Deadline& b) const { return a.at_ < b.at_; }
    };
    using Hook = bi::member_hook<Deadline, bi::set_member_hook<bi::link_mode<bi::auto_unlink>>, &Deadline::hook_>;
    bi::multiset<Deadline, Hook, bi::compare<ByTime>, bi::constant_time_size<false>> queue_;
};

} // namespace switchyard::proxy::epoll_engine
