#pragma once

// Zero-copy relay for bulk flows: bytes move socket -> pipe -> socket with
// splice(2), so they are never copied into user space (HAProxy's splice-auto
// does the same). A pipe costs two descriptors, so a worker holds a bounded
// pool of them (SplicePipePool) and a flow that cannot get one stays on buffers.
//
// Both calls are non-blocking and are made on the worker's thread: io_uring's
// own splice op always runs on a kernel helper thread, which costs more than
// it saves for sockets.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "switchyard/telemetry/worker_gauges.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::proxy {

// Pipes are resized to this: four times Linux's default, so one splice moves
// up to 256 KiB (fewer calls per GB) while an idle pipe still holds no pages.
inline constexpr std::size_t kSplicePipeSize = 256 * 1024;

struct SpliceResult {
    // NotSpliceable: the socket has bytes splice will not take (it stops at a
    // TCP urgent mark); the flow goes back to buffers, whose recv steps over it.
    enum class Kind : uint8_t { Moved, WouldBlock, EndOfStream, NotSpliceable, Failed };
    Kind kind;
    std::size_t bytes = 0;   // Moved
    int error = 0;           // Failed: errno
};

class SplicePipe {
public:
    SplicePipe(UniqueFd readEnd, UniqueFd writeEnd) : read_(std::move(readEnd)), write_(std::move(writeEnd)) {}

    // Moves what `socket` has (at most the pipe's free room) into the pipe.
    // NotSpliceable is reported only while the pipe is empty (the engines fill
    // an empty pipe), so the flow can go back to buffers without losing bytes.
    SpliceResult fill(int socket);
    // Moves up to `bytes()` from the pipe into `socket`.
    SpliceResult drain(int socket);
    // Bytes in the pipe, not yet sent on.
    std::size_t bytes() const { return bytes_; }
    std::size_t capacity() const { return capacity_; }

private:
    friend class SplicePipePool;
    UniqueFd read_;
    UniqueFd write_;
    std::size_t bytes_ = 0;
    std::size_t capacity_ = 0;
};

// One per worker, worker thread only. Keeps released empty pipes for reuse
// while bulk flows go on (saves pipe2 + fcntl + close per flow).
// Pipes take descriptors only while they are plentiful: at most an eighth of
// the worker's share of the open-file limit, and a new one only while the
// worker's connections and pipes together use under 7/8 of that share, so
// bulk flows never starve accept and connect of descriptors.
class SplicePipePool {
public:
    // `fdShare`: the descriptors this worker may count on (its part of RLIMIT_NOFILE).
    // `gauges`: where the pool shows its pipe counts to the metrics scrape (may be null).
    explicit SplicePipePool(std::size_t fdShare, telemetry::WorkerGauges* gauges = nullptr)
        : fdShare_(fdShare), gauges_(gauges) {}
    SplicePipePool(const SplicePipePool&) = delete;
    SplicePipePool& operator=(const SplicePipePool&) = delete;

    // A pipe, or nothing when descriptors are short or the system refuses one:
    // the caller then keeps relaying through buffers. `openConnections`: the
    // worker's sessions now (two descriptors each).
    std::optional<SplicePipe> acquire(std::size_t openConnections);
    // Takes a pipe back: kept if empty and within the cap, closed otherwise
    // (bytes left in it belong to a flow cut short, to nobody now). The pool
    // empties when the last pipe in use comes back.
    void release(SplicePipe pipe);

    std::size_t inUse() const { return inUse_; }
    std::size_t pooled() const { return idle_.size(); }
    std::size_t maxPipes() const { return fdShare_ / 16; }

private:
    void publish();

    std::size_t fdShare_;
    telemetry::WorkerGauges* gauges_;
    std::size_t inUse_ = 0;
    std::vector<SplicePipe> idle_;
};

} // namespace switchyard::proxy
