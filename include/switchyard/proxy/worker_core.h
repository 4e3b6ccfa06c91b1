#pragma once

// What both engines' workers do alike, once: the snapshot and route selector
// their sessions read (SessionContext), session ids, the open sessions by id,
// the drain schedule and when its one timer must be (re)armed, snapshot
// apply, and the accept back-off's log line. The engine's worker owns the
// event loop, the listeners and the timers; it calls these. Worker thread only,
// except sessionCount().
//
// A Session provides id(), backend(), scheduledDrain(), setScheduledDrain()
// (DrainSchedule's needs) and derives from DrainHook.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "switchyard/proxy/accept_backoff_log.h"
#include "switchyard/proxy/drain_schedule.h"
#include "switchyard/proxy/session_core.h"

namespace switchyard::proxy {

// A listener whose accept failed for want of fds or memory pauses this long.
inline constexpr std::chrono::milliseconds kAcceptBackoff{100};

// Connections taken from one listener before the others (and the sessions'
// events) get their turn; the rest wait for the next round.
inline constexpr unsigned kAcceptBatch = 64;

// What an accept(2) error means to a listener's accept loop.
enum class AcceptError : uint8_t {
    Drained,   // EAGAIN: nothing left in the queue
    Next,      // that connection died in the queue, or a network error passed on: take the next
    Pause,     // out of fds or memory: the connections stay queued, back off kAcceptBackoff
};
AcceptError classifyAcceptError(int err);

// The warning for a paused accept (rate-limited by `log`).
void logAcceptPause(unsigned worker, std::string_view service, int err, AcceptBackoffLog& log,
                    std::chrono::steady_clock::time_point now);
// The info line after a drain deadline closed sessions (none: no line).
void logDrainClosed(unsigned worker, std::size_t closed);

template <class Session>
class WorkerCore : public SessionContext {
public:
    explicit WorkerCore(unsigned workerIndex) { index = workerIndex; }

    // Unique in the process: the worker's index in the top 16 bits.
    uint64_t nextSessionId() { return (static_cast<uint64_t>(index) << 48) | nextSessionId_++; }

    Session& add(std::unique_ptr<Session> session) {
        Session& s = *session;
        sessions_.emplace(s.id(), std::move(session));
        sessionCount_.store(sessions_.size(), std::memory_order_relaxed);
        return s;
    }
    Session* find(uint64_t id) {
        auto it = sessions_.find(id);
        return it == sessions_.end() ? nullptr : it->second.get();
    }
    // Frees the session (its hook leaves its backend's drain list).
    void remove(uint64_t id) {
        auto it = sessions_.find(id);
        if (it == sessions_.end()) return;
        routing::BackendState* backend = it->second->backend().get();
        sessions_.erase(it);
        drains_.forget(backend);
        sessionCount_.store(sessions_.size(), std::memory_order_relaxed);
    }
    std::size_t openSessions() const { return sessions_.size(); }
    std::size_t sessionCount() const { return sessionCount_.load(std::memory_order_relaxed); }
    // A copy: closing a session may free it.
    std::vector<Session*> sessions() const {
        std::vector<Session*> out;
        out.reserve(sessions_.size());
        for (const auto& [id, s] : sessions_) out.push_back(s.get());
        return out;
    }
    // At exit only: what is left is dropped without waiting.
    void dropAll() {
        sessions_.clear();
        sessionCount_.store(0, std::memory_order_relaxed);
    }

    // A session reached its backend: it may have to drain.
    void connected(Session& session) { drains_.add(session); }

    // A new snapshot: routes, the listeners' service positions (startAccepting
    // for each that can route now) and the drain schedule.
    template <class Listeners, class StartAccepting>
    void applySnapshot(routing::SnapshotPtr next, Listeners& listeners, StartAccepting&& startAccepting) {
        snapshot = std::move(next);
        selector.update(*snapshot);
        for (auto& l : listeners) {
            l->serviceIndex = snapshot->indexOf(l->service);
            if (l->serviceIndex != routing::RoutingSnapshot::kNoService) startAccepting(l);
        }
        drains_.apply(*snapshot);
    }

    // The drain timer: the time to arm it for when the next close is earlier
    // than what it is armed for (`replacing`: a timer is armed and must go).
    struct DrainTimer {
        bool arm = false;
        bool replacing = false;
        routing::TimePoint at = routing::kNoDeadline;
    };
    DrainTimer drainTimerDue() {
        const routing::TimePoint next = drains_.nextAt();
        if (next == routing::kNoDeadline) return {};
        if (drainTimerAt_ != routing::kNoDeadline && next >= drainTimerAt_) return {};
        const bool replacing = drainTimerAt_ != routing::kNoDeadline;
        drainTimerAt_ = next;
        return {true, replacing, next};
    }
    // The drain timer fired: closes the sessions due (close(Session&)).
    template <class Close>
    void runDrains(Close&& close) {
        drainTimerAt_ = routing::kNoDeadline;
        const std::size_t closed =
            drains_.runDue(routing::Clock::now(), [this](uint64_t id) { return find(id); }, close);
        logDrainClosed(index, closed);
    }

private:
    std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
    DrainSchedule<Session> drains_;
    routing::TimePoint drainTimerAt_ = routing::kNoDeadline;
    uint64_t nextSessionId_ = 1;
    std::atomic<std::size_t> sessionCount_{0};
};

} // namespace switchyard::proxy
