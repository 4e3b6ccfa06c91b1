#include "switchyard/proxy/engine/uring/uring_engine.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchyard/proxy/engine/uring/buffer_ring.h"
#include "switchyard/proxy/engine/uring/uring_worker.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::proxy {
namespace {

void setWhy(std::string* why, std::string text) {
    if (why) *why = std::move(text);
}

std::string initError(int err) {
    if (err == EPERM || err == EACCES)
        return std::string("io_uring is blocked here (seccomp policy or kernel.io_uring_disabled): ") +
               std::strerror(err);
    if (err == ENOSYS) return "this kernel has no io_uring (ENOSYS)";
    return std::string("io_uring_queue_init failed: ") + std::strerror(err);
}

struct Ring {
    io_uring ring{};
    bool ready = false;
    ~Ring() {
        if (ready) io_uring_queue_exit(&ring);
    }
};

} // namespace

bool uringAvailable(std::string* why) {
    Ring r;
    if (const int rc = io_uring_queue_init(8, &r.ring, 0); rc < 0) {
        setWhy(why, initError(-rc));
        return false;
    }
    r.ready = true;
    io_uring_probe* probe = io_uring_get_probe_ring(&r.ring);
    if (!probe) {
        setWhy(why, "io_uring: the kernel cannot list its supported ops (too old)");
        return false;
    }
    struct Need {
        int op;
        const char* name;
    };
    static constexpr Need needs[] = {
        {IORING_OP_ACCEPT, "accept"},         {IORING_OP_CONNECT, "connect"},
        {IORING_OP_POLL_ADD, "poll_add"},     {IORING_OP_NOP, "nop"},
        {IORING_OP_RECV, "recv"},             {IORING_OP_SEND, "send"},
        {IORING_OP_READ, "read"},             {IORING_OP_TIMEOUT, "timeout"},
        {IORING_OP_TIMEOUT_REMOVE, "timeout_remove"}, {IORING_OP_LINK_TIMEOUT, "link_timeout"},
        {IORING_OP_ASYNC_CANCEL, "async_cancel"},
    };
    std::string missing;
    for (const Need& n : needs)
        if (!io_uring_opcode_supported(probe, n.op)) missing += std::string(missing.empty() ? "" : ", ") + n.name;
    io_uring_free_probe(probe);
    if (!missing.empty()) {
        setWhy(why, "io_uring: the kernel lacks op(s) " + missing);
        return false;
    }
    const unsigned needFeatures = IORING_FEAT_NODROP | IORING_FEAT_FAST_POLL | IORING_FEAT_EXT_ARG;
    if ((r.ring.features & needFeatures) != needFeatures) {
        setWhy(why, "io_uring: the kernel lacks NODROP, FAST_POLL or EXT_ARG (needs 5.11+)");
        return false;
    }
    int err = 0;
    if (!uring_engine::BufferRing::create(r.ring, 0, 1, 64, &err)) {
        setWhy(why, std::string("io_uring: provided buffer rings unavailable (needs 5.19+): ") + std::strerror(err));
        return false;
    }
    return true;
}

bool uringSelfCheck(std::string* why) {
    using namespace uring_engine;
    Ring r;
    RingSetup setup;
    setup.entries = 16;
    if (const int rc = initRing(r.ring, setup); rc < 0) {
        setWhy(why, initError(-rc));
        return false;
    }
    r.ready = true;
    int err = 0;
    auto buffers = BufferRing::create(r.ring, 0, 4, 4096, &err);
    if (!buffers) {
        setWhy(why, std::string("self-check: buffer ring: ") + std::strerror(err));
        return false;
    }
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (!listener.valid() || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener.get(), 4) != 0 ||
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        setWhy(why, std::string("self-check: loopback listener: ") + std::strerror(errno));
        return false;
    }
    UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    enum : uint64_t { kAccept = 1, kConnect, kConnectTimeout, kRecv };
    io_uring_sqe* sqe = io_uring_get_sqe(&r.ring);
    io_uring_prep_multishot_accept(sqe, listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    io_uring_sqe_set_data64(sqe, kAccept);
    sqe = io_uring_get_sqe(&r.ring);
    io_uring_prep_connect(sqe, client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, kConnect);
    __kernel_timespec connectTimeout{1, 0};
    sqe = io_uring_get_sqe(&r.ring);
    io_uring_prep_link_timeout(sqe, &connectTimeout, 0);
    io_uring_sqe_set_data64(sqe, kConnectTimeout);

    std::map<uint64_t, io_uring_cqe> seen;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    auto waitFor = [&](uint64_t what) {
        while (!seen.count(what)) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            __kernel_timespec ts{0, 100'000'000};
            io_uring_cqe* cqe = nullptr;
            const int rc = io_uring_submit_and_wait_timeout(&r.ring, &cqe, 1, &ts, nullptr);
            if (rc < 0 && rc != -ETIME && rc != -EINTR) return false;
            unsigned head = 0, n = 0;
            io_uring_for_each_cqe(&r.ring, head, cqe) {
                seen.try_emplace(cqe->user_data, *cqe);
                ++n;
            }
            io_uring_cq_advance(&r.ring, n);
        }
        return true;
    };
    if (!waitFor(kAccept) || !waitFor(kConnect)) {
        setWhy(why, "self-check: multishot accept or connect did not complete");
        return false;
    }
    if (seen[kAccept].res < 0 || seen[kConnect].res < 0) {
        setWhy(why, std::string("self-check: accept/connect failed: ") +
                        std::strerror(-(seen[kAccept].res < 0 ? seen[kAccept].res : seen[kConnect].res)));
        return false;
    }
    UniqueFd accepted(seen[kAccept].res);
    static constexpr char kPing[] = "switchyard";
    if (::send(client.get(), kPing, sizeof kPing - 1, MSG_NOSIGNAL) != sizeof kPing - 1) {
        setWhy(why, std::string("self-check: send: ") + std::strerror(errno));
        return false;
    }
    sqe = io_uring_get_sqe(&r.ring);
    io_uring_prep_recv(sqe, accepted.get(), nullptr, buffers->bufferSize(), 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffers->group();
    io_uring_sqe_set_data64(sqe, kRecv);
    if (!waitFor(kRecv)) {
        setWhy(why, "self-check: recv from a provided buffer did not complete");
        return false;
    }
    const io_uring_cqe& recv = seen[kRecv];
    if (recv.res != sizeof kPing - 1 || !(recv.flags & IORING_CQE_F_BUFFER)) {
        setWhy(why, "self-check: recv from a provided buffer returned " + std::to_string(recv.res));
        return false;
    }
    const auto id = static_cast<uint16_t>(recv.flags >> IORING_CQE_BUFFER_SHIFT);
    const bool same = std::memcmp(buffers->take(id), kPing, sizeof kPing - 1) == 0;
    buffers->recycle(id);
    if (!same) {
        setWhy(why, "self-check: bytes received through the buffer ring differ from those sent");
        return false;
    }
    buffers.reset();
    return true;
}

} // namespace switchyard::proxy
