#pragma once

// A provided-buffer ring (io_uring buffer group): recvs with IOSQE_BUFFER_SELECT
// take a buffer only when bytes arrive, so an idle connection holds none. Set
// up with io_uring_register_buf_ring (liburing 2.3 has no setup helper). The
// ring entries and the buffers are anonymous mappings: pages are touched only
// as buffers are first used. One per worker ring; worker thread only.

#include <cstddef>
#include <cstdint>
#include <memory>

struct io_uring;
struct io_uring_buf_ring;

namespace switchyard::proxy::uring_engine {

class BufferRing {
public:
    // `count` is a power of two (at most 32768). Returns null and sets *err
    // (an errno value) if the kernel refuses the ring.
    static std::unique_ptr<BufferRing> create(io_uring& ring, uint16_t group, unsigned count, unsigned size,
                                              int* err);
    ~BufferRing();
    BufferRing(const BufferRing&) = delete;
    BufferRing& operator=(const BufferRing&) = delete;

    uint16_t group() const { return group_; }
    unsigned bufferSize() const { return size_; }
    unsigned count() const { return count_; }
    // Buffers handed out by completions and not recycled yet.
    unsigned outstanding() const { return outstanding_; }
    bool exhausted() const { return outstanding_ == count_; }

    // A completion selected buffer `id`: the caller owns it until recycle(id).
    char* take(uint16_t id) {
        ++outstanding_;
        return data(id);
    }
    char* data(uint16_t id) const { return buffers_ + static_cast<std::size_t>(id) * size_; }
    // Gives buffer `id` back to the kernel.
    void recycle(uint16_t id);

private:
    BufferRing(io_uring& ring, uint16_t group, unsigned count, unsigned size);

    io_uring& ring_;
    const uint16_t group_;
    const unsigned count_;
    const unsigned size_;
    io_uring_buf_ring* entries_ = nullptr;
    char* buffers_ = nullptr;
    unsigned outstanding_ = 0;
    bool registered_ = false;
};

} // namespace switchyard::proxy::uring_engine
