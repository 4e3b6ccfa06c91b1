#pragma once

// A direction relayed by splice, once for both engines: the pipe and what the
// pump remembers between rounds, the switch from buffers, and pumpSplice(),
// which moves bytes socket -> pipe -> socket until it must wait and says what
// for. The engine performs that wait (a poll op, a reactor wait) or passes the
// end on to its SessionCore.

#include <cstdint>
#include <optional>

#include "switchyard/proxy/session_core.h"
#include "switchyard/proxy/splice_pipe.h"

namespace switchyard::proxy {

struct SplicedFlow {
    std::optional<SplicePipe> pipe;   // set while the direction relays by splice
    bool sourceEnded = false;         // EOF read, passed on once the pipe is empty
    bool lastFillShort = false;       // the last fill emptied the source: wait before the next
    // The last wait pumpSplice() asked for follows an EAGAIN of that socket:
    // an edge-triggered driver may sleep until its next edge. Else (a short
    // fill, a partial drain, the round limit) the socket may still be ready.
    bool waitsOnEAGAIN = false;
};

enum class SpliceNext : uint8_t {
    WaitReadable,    // wait for the source, then pump again
    WaitWritable,    // wait for the sink (its socket buffer is full), then pump again
    Ended,           // the source's EOF, the pipe empty: SessionEvent::eof
    SourceFailed,    // SessionEvent::failed(sourceOf(d))
    SinkFailed,      // SessionEvent::failed(sinkOf(d))
    BackToBuffers,   // bytes splice will not take (an urgent mark), the pipe empty: relay by buffers
};

// After a whole write: a bulk flow (the core's decision) takes a pipe when the
// pool has one to spare (true); else the core asks again after its next two whole buffers.
bool startSplicing(SplicedFlow& flow, SplicePipePool* pool, SessionCore& core, Direction d, std::size_t openSessions);

// Gives the pipe back (empty by then, or the flow was cut short).
void stopSplicing(SplicedFlow& flow, SplicePipePool* pool);

// At most four fills and drains, then a wait: a wait on a readable socket ends
// at once, behind the other sessions' events.
SpliceNext pumpSplice(SplicedFlow& flow, int source, int sink, SessionCore& core, Direction d, SteadyTime now);

} // namespace switchyard::proxy
