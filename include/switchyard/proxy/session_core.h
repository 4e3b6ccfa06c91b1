#pragma once

// What a proxied connection decides, once for both engines (sans I/O): routing
// and retries across backends and pools, the PROXY header it accepts and the
// one it sends, the relay's half-closes, resets, bulk switch and deadlines,
// the close reason, and every counter and log line of the session's end. It
// owns no socket, ring or io_context: the engine's session (a driver) reports
// what its I/O did as events, and performs the action each event answers.
//
//   Accepted --refused (no route, max_connections)---------------------> Closing
//   Accepted --accept_proxy--> Header --header ok-----------------------> Connecting
//                              Header --malformed / late / client gone--> Closing
//   Accepted ----------------------------------------------------------> Connecting
//   Connecting --failed, attempts left--> Connecting (next backend, then the other pool)
//   Connecting --no backend left / every attempt failed----------------> Closing
//   Connecting --ok, PROXY header or early bytes to send--> Preamble --sent--> Relaying
//   Connecting --ok, nothing to send-----------------------------------> Relaying
//   Relaying --EOF one way: pass it on, half_closed deadline------------> Relaying
//   Relaying --EOF both ways / reset / idle deadline--------------------> Closing
//   any state --close requested (drain deadline, shutdown)-------------> Closing
//   Closing: the driver closes its sockets, waits for its I/O, then finish().
//
// The first close reason noted wins (CloseReasonLatch), except that a reset
// outranks a half-close noted before it. Events that arrive once Closing
// (cancelled reads, failed writes on closed sockets) change nothing.
//
// Hot path: reads, writes and spliced bytes are not transitions. They go to
// the inline note*() calls (no state change, no allocation, counters
// published in batches); on() sees only what happens once or twice a session.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "switchyard/proxy/close_reason.h"
#include "switchyard/proxy/proxy_protocol.h"
#include "switchyard/proxy/session_accounting.h"
#include "switchyard/routing/route_selector.h"
#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::proxy {

// Which way bytes flow; index 0 and 1 of per-direction arrays.
enum class Direction : uint8_t { ClientToBackend = 0, BackendToClient = 1 };
// One of the session's two sockets.
enum class Side : uint8_t { Client = 0, Backend = 1 };

constexpr std::size_t indexOf(Direction d) { return static_cast<std::size_t>(d); }
constexpr Side sourceOf(Direction d) { return d == Direction::ClientToBackend ? Side::Client : Side::Backend; }
constexpr Side sinkOf(Direction d) { return d == Direction::ClientToBackend ? Side::Backend : Side::Client; }
constexpr Side otherSide(Side s) { return s == Side::Client ? Side::Backend : Side::Client; }

// What a session reads from its worker (WorkerCore provides it): the worker's
// index for per-worker counter slots, its snapshot and its route selector.
struct SessionContext {
    unsigned index = 0;
    routing::SnapshotPtr snapshot;
    routing::RouteSelector selector;
};

enum class SessionState : uint8_t { Accepted, Header, Connecting, Preamble, Relaying, Closing };

struct SessionEvent {
    enum class Kind : uint8_t {
        Accepted,       // fd: the client socket, only for getpeername/getsockname
        HeaderBytes,    // bytes read while the PROXY header is awaited
        HeaderEnded,    // the client's EOF (err 0) or a read error while awaiting it
        ConnectOk,
        ConnectFailed,  // err: errno (ETIMEDOUT for timeouts.connect), socket(2)'s too
        PreambleSent,   // bytes of preamble() written
        Eof,            // direction's source reached EOF (and, spliced, its pipe is empty)
        Failed,         // side reset or failed (a read from it, or a write to it)
        TimerFired,     // the deadline of the last ReadHeader / Relay / ArmTimer action
        CloseRequested, // reason: from outside (drain deadline, shutdown)
    };
    Kind kind = Kind::Accepted;
    Direction direction = Direction::ClientToBackend;
    Side side = Side::Client;
    CloseReason reason = CloseReason::Shutdown;
    int err = 0;
    int fd = -1;
    std::size_t bytes = 0;
    std::span<const uint8_t> data;
    SteadyTime now{};

    static SessionEvent accepted(int clientFd) {
        SessionEvent e = of(Kind::Accepted);
        e.fd = clientFd;
        return e;
    }
    static SessionEvent headerBytes(std::span<const uint8_t> data) {
        SessionEvent e = of(Kind::HeaderBytes);
        e.data = data;
        return e;
    }
    static SessionEvent headerEnded(int err) { return of(Kind::HeaderEnded).withErr(err); }
    static SessionEvent connectOk(SteadyTime now) { return of(Kind::ConnectOk).at(now); }
    static SessionEvent connectFailed(int err) { return of(Kind::ConnectFailed).withErr(err); }
    static SessionEvent preambleSent(std::size_t n) {
        SessionEvent e = of(Kind::PreambleSent);
        e.bytes = n;
        return e;
    }
    static SessionEvent eof(Direction d, SteadyTime now) {
        SessionEvent e = of(Kind::Eof).at(now);
        e.direction = d;
        return e;
    }
    static SessionEvent failed(Side s) {
        SessionEvent e = of(Kind::Failed);
        e.side = s;
        return e;
    }
    static SessionEvent timerFired(SteadyTime now) { return of(Kind::TimerFired).at(now); }
    static SessionEvent closeRequested(CloseReason r) {
        SessionEvent e = of(Kind::CloseRequested);
        e.reason = r;
        return e;
    }

private:
    static SessionEvent of(Kind k) {
        SessionEvent e;
        e.kind = k;
        return e;
    }
    SessionEvent withErr(int err) const {
        SessionEvent e = *this;
        e.err = err;
        return e;
    }
    SessionEvent at(SteadyTime t) const {
        SessionEvent e = *this;
        e.now = t;
        return e;
    }
};

struct SessionAction {
    enum class Kind : uint8_t {
        None,           // wait for the I/O already in flight
        ReadHeader,     // read (more) of the PROXY header from the client; first time: arm the timer for `at`
        Connect,        // new socket to `backend` (TCP_NODELAY), connect within `timeout`
        SendPreamble,   // write preamble() to the backend
        Relay,          // pump both directions; arm the idle timer for `at`
        ArmTimer,       // the session timer again, for `at`
        ShutdownWrite,  // pass the EOF on: shutdown(SHUT_WR) of sinkOf(direction); then, if
                        // `thenClose` (both ways ended), close; else if `moveTimer`, the timer to `at`
        Close,          // close both sockets; `reset`: with SO_LINGER 0 on `resetSide` first
    };
    Kind kind = Kind::None;
    Direction direction = Direction::ClientToBackend;
    bool reset = false;
    Side resetSide = Side::Client;
    bool thenClose = false;
    bool moveTimer = false;
    routing::TimePoint at{};
    routing::BackendState* backend = nullptr;
    std::chrono::milliseconds timeout{0};
};

class SessionCore {
public:
    // Two whole buffers read in a row: a bulk flow, worth relaying by splice.
    static constexpr uint8_t kBulkReads = 2;

    SessionCore(SessionContext& worker, uint64_t id, std::size_t serviceIndex);
    SessionCore(const SessionCore&) = delete;
    SessionCore& operator=(const SessionCore&) = delete;

    // The transition function: every event that can change the state.
    SessionAction on(const SessionEvent& event);

    // Relay bookkeeping (no transition). `filled`: the read filled its buffer.
    void noteRead(Direction d, std::size_t n, bool filled, SteadyTime now) {
        Flow& f = flows_[indexOf(d)];
        f.fullReads = filled ? static_cast<uint8_t>(f.fullReads < kBulkReads ? f.fullReads + 1 : kBulkReads) : 0;
        if (!firstBytes_.sawBackendByte()) noteFirstByte(d);
        lastActivity_ = now;
        addBytes(d, n);
    }
    void noteSpliced(Direction d, std::size_t n, SteadyTime now) {
        lastActivity_ = now;
        addBytes(d, n);
    }
    // Bytes moving toward a slow reader are activity too.
    void noteSinkProgress(SteadyTime now) { lastActivity_ = now; }
    // After a write: whether this direction should try splice now (the bulk
    // decision). Either way the count starts over, so a direction that got no
    // pipe asks again only after its next two whole buffers.
    bool takeBulkTurn(Direction d) {
        Flow& f = flows_[indexOf(d)];
        if (f.fullReads < kBulkReads || state_ != SessionState::Relaying) return false;
        f.fullReads = 0;
        return true;
    }

    // The session's end: byte counters, close counts, the log line, the
    // service's count and the access log. Once, after the sockets' I/O ended.
    void finish();

    SessionState state() const { return state_; }
    bool closing() const { return state_ == SessionState::Closing; }
    CloseReason reason() const { return reason_.reason(); }
    uint64_t id() const { return id_; }
    const routing::BackendHandle& backend() const { return backend_; }
    // PROXY header and early client bytes for the backend, while in Preamble.
    std::string_view preamble() const;
    // timeouts.idle from the last activity; timeouts.half_closed once a direction ended.
    routing::TimePoint idleDeadline() const { return lastActivity_ + currentIdleTimeout(); }
    bool directionDone(Direction d) const { return flows_[indexOf(d)].done; }
    const ByteTally& bytes() const { return bytes_; }
    routing::TimePoint scheduledDrain() const { return scheduledDrain_; }
    void setScheduledDrain(routing::TimePoint t) { scheduledDrain_ = t; }

private:
    // Held from accept until the relay starts: routing needs the snapshot, the
    // retry state and the PROXY header; a relaying session frees it.
    struct Setup {
        routing::SnapshotPtr snapshot;
        routing::Attempts attempts;
        uint32_t attemptsMade = 0;
        ClientAddresses addresses;
        std::unique_ptr<ProxyHeaderDecoder> decoder;
        bool headerBytesSeen = false;
        std::string early;   // client bytes that came in with an accepted PROXY header
        std::string preamble;
        std::size_t preambleSent = 0;
        routing::BackendHandle trying;
        SteadyTime connectStarted{};
    };
    struct Flow {
        bool done = false;        // EOF seen and passed on
        uint8_t fullReads = 0;    // reads in a row that filled a whole buffer
    };

    const routing::ServiceRoute* service() const;
    std::chrono::milliseconds currentIdleTimeout() const {
        return flows_[0].done || flows_[1].done ? std::min(idleTimeout_, halfClosedTimeout_) : idleTimeout_;
    }
    void addBytes(Direction d, std::size_t n) {
        bytes_.add(static_cast<int>(indexOf(d)), n);
        if (bytes_.wantsFlush()) bytes_.flush(*backend_, worker_.index);
    }
    void noteFirstByte(Direction d);

    SessionAction onAccepted(int clientFd);
    SessionAction onHeaderBytes(std::span<const uint8_t> data);
    SessionAction headerFailed(bool clientGone, bool timedOut);
    SessionAction connectNext();
    SessionAction connectFailed();
    SessionAction onConnected(SteadyTime now);
    SessionAction onPreambleSent(std::size_t n);
    SessionAction startRelay();
    SessionAction onEof(Direction d, SteadyTime now);
    SessionAction onTimer(SteadyTime now);
    SessionAction close(CloseReason reason);
    SessionAction closeWithoutBackend();

    SessionContext& worker_;
    const uint64_t id_;
    const uint32_t serviceIndex_;
    SessionState state_ = SessionState::Accepted;
    CloseReasonLatch reason_;
    bool admitted_ = false;
    bool finished_ = false;
    Flow flows_[2];
    std::chrono::milliseconds idleTimeout_{0};
    std::chrono::milliseconds halfClosedTimeout_{0};
    routing::BackendHandle backend_;
    std::shared_ptr<routing::ServiceState> serviceState_;
    routing::TimePoint scheduledDrain_ = routing::kNoDeadline;
    SteadyTime lastActivity_{};
    SteadyTime connectedAt_{};
    FirstBytes firstBytes_;
    ByteTally bytes_;
    std::unique_ptr<Setup> setup_;
    std::unique_ptr<AccessInfo> access_;   // only while the access log is on
};

} // namespace switchyard::proxy
