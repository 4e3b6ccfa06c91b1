#include "switchyard/proxy/engine/uring/buffer_ring.h"

#include <cerrno>

#include <liburing.h>
#include <sys/mman.h>

namespace switchyard::proxy::uring_engine {

BufferRing::BufferRing(io_uring& ring, uint16_t group, unsigned count, unsigned size)
    : ring_(ring), group_(group), count_(count), size_(size) {}

std::unique_ptr<BufferRing> BufferRing::create(io_uring& ring, uint16_t group, unsigned count, unsigned size,
                                               int* err) {
    if (count == 0 || count > 32768 || (count & (count - 1)) != 0 || size == 0) {
        if (err) *err = EINVAL;
        return nullptr;
    }
    std::unique_ptr<BufferRing> br(new BufferRing(ring, group, count, size));
    void* entries = ::mmap(nullptr, count * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                           MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    void* buffers = ::mmap(nullptr, static_cast<std::size_t>(count) * size, PROT_READ | PROT_WRITE,
                           MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (entries == MAP_FAILED || buffers == MAP_FAILED) {
        if (err) *err = errno;
        if (entries != MAP_FAILED) ::munmap(entries, count * sizeof(io_uring_buf));
        if (buffers != MAP_FAILED) ::munmap(buffers, static_cast<std::size_t>(count) * size);
        return nullptr;
    }
    br->entries_ = static_cast<io_uring_buf_ring*>(entries);
    br->buffers_ = static_cast<char*>(buffers);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(entries);
    reg.ring_entries = count;
    reg.bgid = group;
    if (const int rc = io_uring_register_buf_ring(&ring, &reg, 0); rc < 0) {
        if (err) *err = -rc;
        return nullptr;
    }
    br->registered_ = true;
    io_uring_buf_ring_init(br->entries_);
    const int mask = io_uring_buf_ring_mask(count);
    for (unsigned i = 0; i < count; ++i)
        io_uring_buf_ring_add(br->entries_, br->data(static_cast<uint16_t>(i)), size, static_cast<unsigned short>(i),
                              mask, static_cast<int>(i));
    io_uring_buf_ring_advance(br->entries_, static_cast<int>(count));
    return br;
}

BufferRing::~BufferRing() {
    if (registered_) io_uring_unregister_buf_ring(&ring_, group_);
    if (entries_) ::munmap(entries_, count_ * sizeof(io_uring_buf));
    if (buffers_) ::munmap(buffers_, static_cast<std::size_t>(count_) * size_);
}

void BufferRing::recycle(uint16_t id) {
    io_uring_buf_ring_add(entries_, data(id), size_, id, io_uring_buf_ring_mask(count_), 0);
    io_uring_buf_ring_advance(entries_, 1);
    --outstanding_;
}

} // namespace switchyard::proxy::uring_engine
