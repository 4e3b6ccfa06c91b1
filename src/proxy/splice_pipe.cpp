#include "switchyard/proxy/splice_pipe.h"

#include <cerrno>

#include <fcntl.h>
#include <sys/socket.h>

namespace switchyard::proxy {
namespace {

SpliceResult spliceResult(ssize_t n) {
    if (n > 0) return {SpliceResult::Kind::Moved, static_cast<std::size_t>(n), 0};
    if (n == 0) return {SpliceResult::Kind::EndOfStream, 0, 0};
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {SpliceResult::Kind::WouldBlock, 0, 0};
    return {SpliceResult::Kind::Failed, 0, errno};
}

} // namespace

SpliceResult SplicePipe::fill(int socket) {
    const std::size_t room = capacity_ - bytes_;
    if (room == 0) return {SpliceResult::Kind::WouldBlock, 0, 0};
    const auto spliceIn = [&] {
        SpliceResult r;
        do {
            r = spliceResult(
                ::splice(socket, nullptr, write_.get(), nullptr, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
        } while (r.kind == SpliceResult::Kind::Failed && r.error == EINTR);
        if (r.kind == SpliceResult::Kind::Moved) bytes_ += r.bytes;
        return r;
    };
    const SpliceResult r = spliceIn();
    if (r.kind == SpliceResult::Kind::Moved || r.kind == SpliceResult::Kind::Failed) return r;
    // With bytes in the pipe, EAGAIN may be the pipe's own (out of slots).
    if (r.kind == SpliceResult::Kind::WouldBlock && bytes_ > 0) return r;
    // splice stops at a TCP urgent mark and never passes it: there it reads 0
    // on a blocking socket and fails with EAGAIN on a non-blocking one (ours),
    // though bytes wait behind the mark. recv steps over the mark, so a peek
    // tells the cases apart: 0, the peer's FIN; EAGAIN, nothing yet; bytes,
    // the mark, unless they came in just after the splice, which a second
    // splice tells. Only on this path, never per byte moved.
    char probe;
    const ssize_t n = ::recv(socket, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return {SpliceResult::Kind::EndOfStream, 0, 0};
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return {SpliceResult::Kind::WouldBlock, 0, 0};
        return {SpliceResult::Kind::Failed, 0, errno};
    }
    const SpliceResult again = spliceIn();
    if (again.kind == SpliceResult::Kind::Moved || again.kind == SpliceResult::Kind::Failed) return again;
    return {SpliceResult::Kind::NotSpliceable, 0, 0};
}

SpliceResult SplicePipe::drain(int socket) {
    if (bytes_ == 0) return {SpliceResult::Kind::Moved, 0, 0};
    SpliceResult r;
    do {
        r = spliceResult(
            ::splice(read_.get(), nullptr, socket, nullptr, bytes_, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
    } while (r.kind == SpliceResult::Kind::Failed && r.error == EINTR);
    // A pipe with bytes never reads as end of stream; 0 here would be a kernel oddity: retry later.
    if (r.kind == SpliceResult::Kind::EndOfStream) return {SpliceResult::Kind::WouldBlock, 0, 0};
    if (r.kind == SpliceResult::Kind::Moved) bytes_ -= r.bytes;
    return r;
}

std::optional<SplicePipe> SplicePipePool::acquire(std::size_t openConnections) {
    const std::size_t pipes = inUse_ + idle_.size();
    const bool plentiful = 2 * (openConnections + pipes + 1) <= fdShare_ / 8 * 7;
    if (!plentiful) return std::nullopt;
    if (!idle_.empty()) {
        SplicePipe pipe = std::move(idle_.back());
        idle_.pop_back();
        ++inUse_;
        publish();
        return pipe;
    }
    if (pipes >= maxPipes()) return std::nullopt;
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return std::nullopt;
    SplicePipe pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
    // The size may be refused (fs.pipe-user-pages-soft spent): the default 64 KiB still works.
    int size = ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(kSplicePipeSize));
    if (size <= 0) size = ::fcntl(fds[1], F_GETPIPE_SZ);
    if (size <= 0) return std::nullopt;
    pipe.capacity_ = static_cast<std::size_t>(size);
    ++inUse_;
    publish();
    return pipe;
}

void SplicePipePool::release(SplicePipe pipe) {
    --inUse_;
    // With no bulk flow left the worker holds no pipe, so its descriptors go
    // back to what it had before the traffic (nothing looks leaked).
    if (inUse_ == 0) {
        idle_.clear();
        publish();
        return;
    }
    if (pipe.bytes_ == 0 && inUse_ + idle_.size() < maxPipes()) idle_.push_back(std::move(pipe));
    publish();
}

void SplicePipePool::publish() {
    if (!gauges_) return;
    gauges_->splicePipesInUse.store(static_cast<int64_t>(inUse_), std::memory_order_relaxed);
    gauges_->splicePipesPooled.store(static_cast<int64_t>(idle_.size()), std::memory_order_relaxed);
}

} // namespace switchyard::proxy
