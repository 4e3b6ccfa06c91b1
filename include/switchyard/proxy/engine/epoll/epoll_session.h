#pragma once

// One proxied connection on the epoll engine: a driver of SessionCore
// (session_core.h has the states and the decisions). It only moves bytes,
// reports what happened to the core and performs the action it answers.
//
// Each socket is in the worker's epoll set once, edge-triggered for every
// event, from its accept or connect to its close (which takes it out): no
// epoll_ctl per wait and none before a close. The session remembers what each
// socket last said: readable until a read says EAGAIN or comes back short,
// writable until a write does not take everything; an edge sets them again
// (a short read proves a socket empty only until its peer's FIN or an urgent mark).
// A flow that must wait names the socket and the readiness it waits for, and
// the next edge (EpollWorker routes it here by session id) runs it. Reads and
// writes are plain recv/send and splice on non-blocking sockets, tried first.
// One deadline serves, in turn, the PROXY header's deadline, the connect
// timeout and the idle deadline. Nothing is shared with other threads.

#include <cstdint>

#include "switchyard/proxy/buffer_pool.h"
#include "switchyard/proxy/drain_schedule.h"
#include "switchyard/proxy/engine/epoll/deadline_queue.h"
#include "switchyard/proxy/session_core.h"
#include "switchyard/proxy/spliced_flow.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::proxy::epoll_engine {

class EpollWorker;

enum class Readiness : uint8_t { Readable, Writable };

class EpollSession : public DrainHook {
public:
    // `client`: the accepted socket, non-blocking, already in the worker's epoll set under `id`.
    EpollSession(EpollWorker& worker, UniqueFd client, uint64_t id, std::size_t serviceIndex);
    EpollSession(const EpollSession&) = delete;
    EpollSession& operator=(const EpollSession&) = delete;

    // Every entry point may end the session (EpollWorker::sessionEnded frees
    // it) before it returns: the caller must not touch it afterwards.
    void start();
    // An edge on the socket of `side` (epoll's event mask).
    void onEvents(Side side, uint32_t events);
    // A flow that yielded with its socket still ready goes on (EpollWorker::runSoon).
    void resume(Side side);
    // Ends the session from outside (drain deadline, shutdown).
    void close(CloseReason reason);

    uint64_t id() const { return core_.id(); }
    const routing::BackendHandle& backend() const { return core_.backend(); }
    routing::TimePoint scheduledDrain() const { return core_.scheduledDrain(); }
    void setScheduledDrain(routing::TimePoint t) { core_.setScheduledDrain(t); }

private:
    // What to do once a socket is ready; the Direction says which flow (set-up steps ignore it).
    using Step = void (EpollSession::*)(Direction);
    struct Flow {
        BufferPool::Lease buffer;   // held only while a write waits for room
        uint32_t offset = 0;        // of the held buffer: sent so far
        uint32_t length = 0;        // of the held buffer: bytes in it
        SplicedFlow spliced;
        Step next = nullptr;        // set while the flow waits
        Side waitSide = Side::Client;
        Readiness waitFor = Readiness::Readable;
    };

    void perform(const SessionAction& action);
    // PROXY header bytes from the client until the core has a whole header.
    void readHeader(Direction);
    void connectTo(routing::BackendState& backend, std::chrono::milliseconds timeout);
    // The backend's socket said writable while connecting.
    void connectReady(Direction);
    void connectFailed(int err);
    void sendPreamble(Direction);
    // Buffer relay of one direction until it blocks, ends or turns to splice.
    void pump(Direction direction);
    // The rest of a write the sink did not take at once.
    void flushWrite(Direction direction);
    // After a whole write: a bulk flow moves to splice when a pipe is spare (true).
    bool toSplice(Direction direction);
    // Splice relay (socket -> pipe -> socket) of one direction until it blocks or ends.
    void splice(Direction direction);
    // Goes on with `next` once the socket of `side` is ready that way; at
    // once (after the other sessions' events) if it is still known to be.
    void waitThen(Side side, Readiness readiness, Direction direction, Step next);
    void timerFired();
    // The end of every entry point: a closing session ends (frees this).
    void endIfClosed();
    void releasePipe(Direction direction);
    void closeSockets();
    int fdOf(Side side) const { return side == Side::Client ? client_.get() : upstream_.get(); }
    bool& readable(Side side) { return readable_[side == Side::Client ? 0 : 1]; }
    bool& writable(Side side) { return writable_[side == Side::Client ? 0 : 1]; }
    bool ready(Side side, Readiness r) { return r == Readiness::Readable ? readable(side) : writable(side); }
    Flow& flow(Direction d) { return flows_[indexOf(d)]; }

    EpollWorker& worker_;
    UniqueFd client_;
    UniqueFd upstream_;
    Deadline timer_;
    SessionCore core_;
    Flow flows_[2];
    // What each socket last said (see the header comment); [0] the client, [1] the backend.
    bool readable_[2] = {true, false};   // an accepted client's request is usually there already
    bool writable_[2] = {true, false};
    // An edge said FIN, hang-up, error or urgent data: from then on a short
    // read may leave something to read (EOF, the error, bytes past the mark).
    bool shortReadsProveNothing_[2] = {false, false};
    bool ended_ = false;
};

} // namespace switchyard::proxy::epoll_engine
