#include "switchyard/proxy/spliced_flow.h"

namespace switchyard::proxy {

bool startSplicing(SplicedFlow& flow, SplicePipePool* pool, SessionCore& core, Direction d, std::size_t openSessions) {
    if (!pool || !core.takeBulkTurn(d)) return false;
    flow.pipe = pool->acquire(openSessions);
    return flow.pipe.has_value();
}

void stopSplicing(SplicedFlow& flow, SplicePipePool* pool) {
    if (!flow.pipe) return;
    pool->release(std::move(*flow.pipe));
    flow.pipe.reset();
    flow.lastFillShort = false;
}

SpliceNext pumpSplice(SplicedFlow& flow, int source, int sink, SessionCore& core, Direction d, SteadyTime now) {
    SplicePipe& pipe = *flow.pipe;
    flow.waitsOnEAGAIN = false;
    for (int round = 0; round < 4; ++round) {
        if (pipe.bytes() > 0) {
            const SpliceResult out = pipe.drain(sink);
            if (out.kind == SpliceResult::Kind::Failed) return SpliceNext::SinkFailed;
            if (out.bytes > 0) core.noteSinkProgress(now);
            if (pipe.bytes() > 0) {
                flow.waitsOnEAGAIN = out.kind == SpliceResult::Kind::WouldBlock;
                return SpliceNext::WaitWritable;
            }
        }
        if (flow.sourceEnded) return SpliceNext::Ended;
        if (flow.lastFillShort) {   // the source was emptied last time: a fill now would only say EAGAIN
            flow.lastFillShort = false;
            return SpliceNext::WaitReadable;
        }
        const SpliceResult in = pipe.fill(source);
        switch (in.kind) {
        case SpliceResult::Kind::Moved:
            // Short: well under the pipe's room. A pipe holds a bounded number
            // of segments too, so a full one of small (1448-byte) segments
            // holds less than its capacity in bytes without emptying the socket.
            flow.lastFillShort = in.bytes < pipe.capacity() / 4;
            core.noteSpliced(d, in.bytes, now);
            break;
        case SpliceResult::Kind::EndOfStream: flow.sourceEnded = true; break;
        case SpliceResult::Kind::WouldBlock:
            flow.waitsOnEAGAIN = true;
            return SpliceNext::WaitReadable;
        case SpliceResult::Kind::NotSpliceable: return SpliceNext::BackToBuffers;
        case SpliceResult::Kind::Failed: return SpliceNext::SourceFailed;
        }
    }
    if (pipe.bytes() > 0) return SpliceNext::WaitWritable;
    return flow.sourceEnded ? SpliceNext::Ended : SpliceNext::WaitReadable;
}

} // namespace switchyard::proxy
