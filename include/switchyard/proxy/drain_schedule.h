#pragma once

// Which of a worker's sessions close when, for drains (docs/semantics.md "Drain"): the
// sessions kept in per-backend lists, and a heap of close times spread evenly
// over [deadline - drain_spread, deadline] so that clients do not all reconnect
// in the same instant. Engine-neutral: both engines keep one per worker, arm
// one timer at nextAt() and call runDue() when it fires. Worker thread only.
//
// A Session derives from DrainHook and provides id(), backend() (a
// routing::BackendHandle), scheduledDrain() and setScheduledDrain().

#include <chrono>
#include <cstdint>
#include <queue>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/intrusive/list.hpp>

#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::proxy {

using DrainHook = boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

// Backends draining in a snapshot, with their deadline and the service's spread.
using DrainingBackends =
    std::unordered_map<routing::BackendState*, std::pair<routing::TimePoint, std::chrono::milliseconds>>;
DrainingBackends drainingBackends(const routing::RoutingSnapshot& snapshot);
// Adds the draining backends of one service to `out`.
void addDrainingBackends(const routing::ServiceRoute& service, DrainingBackends& out);

// Close time of the i-th (0-based) of n sessions draining to `deadline`.
routing::TimePoint spreadCloseTime(routing::TimePoint deadline, std::chrono::milliseconds spread, std::size_t i,
                                   std::size_t n);

template <class Session>
class DrainSchedule {
public:
    // A session reached its backend; one routed just before its backend
    // started draining drains too.
    void add(Session& session) {
        routing::BackendState* backend = session.backend().get();
        byBackend_[backend].push_back(session);
        if (auto it = draining_.find(backend); it != draining_.end()) {
            session.setScheduledDrain(it->second.first);
            queue_.push({it->second.first, session.id(), it->second.first});
        }
    }

    // After a session of `backend` ended (its hook unlinked itself): drops an empty list.
    void forget(routing::BackendState* backend) {
        if (!backend) return;
        if (auto it = byBackend_.find(backend); it != byBackend_.end() && it->second.empty()) byBackend_.erase(it);
    }

    // A new snapshot: schedules the sessions of newly draining backends. Only
    // routes that differ from the last snapshot's are looked at.
    void apply(const routing::RoutingSnapshot& snapshot) {
        const std::size_t n = snapshot.services.size();
        if (!snapshot.index || snapshot.index != seenIndex_ || seen_.size() != n) {
            draining_ = drainingBackends(snapshot);
            for (const auto& [backend, drain] : draining_) schedule(backend, drain.first, drain.second);
            seen_.assign(n, nullptr);
            for (std::size_t i = 0; i < n; ++i) seen_[i] = snapshot.services.ptr(i);
            seenIndex_ = snapshot.index;
            return;
        }
        for (std::size_t i = 0; i < n; ++i) {
            const routing::RoutePtr& route = snapshot.services.ptr(i);
            if (seen_[i] == route) continue;
            for (const auto& pool : seen_[i]->pools)
                for (const auto& backend : pool.backends) draining_.erase(backend.handle.get());
            DrainingBackends now;
            addDrainingBackends(*route, now);
            for (const auto& [backend, drain] : now) {
                draining_[backend] = drain;
                schedule(backend, drain.first, drain.second);
            }
            seen_[i] = route;
        }
    }

    // Earliest close time queued, kNoDeadline if none.
    routing::TimePoint nextAt() const { return queue_.empty() ? routing::kNoDeadline : queue_.top().at; }

    // Closes (close(Session&)) every session whose time came and whose backend
    // still drains with the deadline it was scheduled for; a pool that came
    // back stops its drain. lookup(id) returns the live session or nullptr.
    template <class Lookup, class Close>
    std::size_t runDue(routing::TimePoint now, Lookup&& lookup, Close&& close) {
        std::size_t closed = 0;
        while (!queue_.empty() && queue_.top().at <= now) {
            const Entry entry = queue_.top();
            queue_.pop();
            Session* s = lookup(entry.sessionId);
            if (!s || s->scheduledDrain() != entry.deadline) continue;
            auto drain = draining_.find(s->backend().get());
            if (drain == draining_.end() || drain->second.first != entry.deadline) {
                s->setScheduledDrain(routing::kNoDeadline);
                continue;
            }
            close(*s);
            ++closed;
        }
        return closed;
    }

private:
    struct Entry {
        routing::TimePoint at;
        uint64_t sessionId;
        routing::TimePoint deadline;
        bool operator>(const Entry& o) const { return at > o.at; }
    };
    using SessionList = boost::intrusive::list<Session, boost::intrusive::constant_time_size<false>>;

    void schedule(routing::BackendState* backend, routing::TimePoint deadline, std::chrono::milliseconds spread) {
        auto it = byBackend_.find(backend);
        if (it == byBackend_.end()) return;
        std::vector<Session*> pending;
        for (Session& s : it->second)
            if (s.scheduledDrain() != deadline) pending.push_back(&s);
        for (std::size_t i = 0; i < pending.size(); ++i) {
            pending[i]->setScheduledDrain(deadline);
            queue_.push({spreadCloseTime(deadline, spread, i, pending.size()), pending[i]->id(), deadline});
        }
    }

    std::unordered_map<routing::BackendState*, SessionList> byBackend_;
    DrainingBackends draining_;
    std::vector<routing::RoutePtr> seen_;   // the last snapshot's routes, by position
    routing::ServiceIndexPtr seenIndex_;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> queue_;
};

} // namespace switchyard::proxy
