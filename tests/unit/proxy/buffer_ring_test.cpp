#include "switchyard/proxy/engine/uring/buffer_ring.h"

#include <cerrno>
#include <cstring>
#include <string>

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "switchyard/proxy/engine/uring/uring_engine.h"
#include "switchyard/util/unique_fd.h"

using namespace switchyard;
using switchyard::proxy::uring_engine::BufferRing;

namespace {

// A plain ring and a connected socket pair; `ok` is false where io_uring is unavailable.
struct Rig {
    io_uring ring{};
    bool ok = false;
    UniqueFd a, b;
    Rig() {
        std::string why;
        if (!proxy::uringAvailable(&why)) {
            WARN("io_uring unavailable, [uring] test does nothing: " << why);
            return;
        }
        REQUIRE(io_uring_queue_init(8, &ring, 0) == 0);
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        a.reset(fds[0]);
        b.reset(fds[1]);
        ok = true;
    }
    ~Rig() {
        if (ok) io_uring_queue_exit(&ring);
    }
    void recv(BufferRing& buffers) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_recv(sqe, a.get(), nullptr, buffers.bufferSize(), 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = buffers.group();
        REQUIRE(io_uring_submit(&ring) == 1);
    }
    io_uring_cqe wait() {
        io_uring_cqe* cqe = nullptr;
        REQUIRE(io_uring_wait_cqe(&ring, &cqe) == 0);
        const io_uring_cqe copy = *cqe;
        io_uring_cqe_seen(&ring, cqe);
        return copy;
    }
    bool nothingYet() {
        io_uring_cqe* cqe = nullptr;
        return io_uring_peek_cqe(&ring, &cqe) == -EAGAIN;
    }
};

uint16_t idOf(const io_uring_cqe& cqe) { return static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT); }

} // namespace

TEST_CASE("A buffer ring wants a power-of-two count", "[uring][buffer_ring]") {
    Rig rig;
    if (!rig.ok) return;
    int err = 0;
    CHECK(BufferRing::create(rig.ring, 0, 3, 64, &err) == nullptr);
    CHECK(err == EINVAL);
    CHECK(BufferRing::create(rig.ring, 0, 4, 64, &err) != nullptr);
}

TEST_CASE("A recv takes a ring buffer only when bytes arrive, and recycle gives it back", "[uring][buffer_ring]") {
    Rig rig;
    if (!rig.ok) return;
    int err = 0;
    auto buffers = BufferRing::create(rig.ring, 7, 2, 64, &err);
    REQUIRE(buffers);
    rig.recv(*buffers);
    // Waiting on an idle socket holds no buffer.
    CHECK(rig.nothingYet());
    CHECK(buffers->outstanding() == 0);
    REQUIRE(::write(rig.b.get(), "abc", 3) == 3);
    const io_uring_cqe cqe = rig.wait();
    REQUIRE(cqe.res == 3);
    REQUIRE((cqe.flags & IORING_CQE_F_BUFFER) != 0);
    CHECK(std::string(buffers->take(idOf(cqe)), 3) == "abc");
    CHECK(buffers->outstanding() == 1);
    buffers->recycle(idOf(cqe));
    CHECK(buffers->outstanding() == 0);
}

TEST_CASE("With every buffer out a recv fails with ENOBUFS until one is recycled", "[uring][buffer_ring]") {
    Rig rig;
    if (!rig.ok) return;
    int err = 0;
    auto buffers = BufferRing::create(rig.ring, 1, 1, 64, &err);
    REQUIRE(buffers);
    REQUIRE(::write(rig.b.get(), "one", 3) == 3);
    rig.recv(*buffers);
    const io_uring_cqe first = rig.wait();
    REQUIRE(first.res == 3);
    buffers->take(idOf(first));
    CHECK(buffers->exhausted());

    REQUIRE(::write(rig.b.get(), "two", 3) == 3);
    rig.recv(*buffers);
    CHECK(rig.wait().res == -ENOBUFS);

    buffers->recycle(idOf(first));
    rig.recv(*buffers);
    const io_uring_cqe third = rig.wait();
    REQUIRE(third.res == 3);
    CHECK(std::string(buffers->take(idOf(third)), 3) == "two");
    buffers->recycle(idOf(third));
}
