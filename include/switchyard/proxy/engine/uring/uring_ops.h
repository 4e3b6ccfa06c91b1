#pragma once

// What a completion is about: io_uring's user_data carries the owner's address
// (16-byte aligned) with the operation in its low four bits. Owner null means
// the worker itself; Op::Ignore marks timer removals nobody waits on.

#include <cstdint>

namespace switchyard::proxy::uring_engine {

enum class Op : uint8_t {
    Ignore = 0,
    Wakeup,          // worker: eventfd read (cross-thread calls queued)
    DrainTimer,      // worker: next drain close time
    Accept,          // Listener: multishot accept
    AcceptBackoff,   // Listener: pause after a local accept error
    Recv0,           // Session: recv from the client (client -> backend)
    Recv1,           // Session: recv from the backend (backend -> client)
    Send0,           // Session: send to the backend
    Send1,           // Session: send to the client
    SendPreamble,    // Session: PROXY header (and early bytes) to the backend
    Connect,         // Session: connect (linked to ConnectTimeout)
    ConnectTimeout,  // Session: the connect's linked timeout
    Timer,           // Session: PROXY header or idle deadline
    Poll0,           // Session: splice relay client -> backend waits for its source or sink
    Poll1,           // Session: splice relay backend -> client waits for its source or sink
    CancelFd,        // Session: close() cancelling what is in flight on one of its fds
};
static_assert(static_cast<uint8_t>(Op::CancelFd) < 16, "ops live in user_data's low four bits");

inline uint64_t encodeUserData(const void* owner, Op op) {
    return reinterpret_cast<uintptr_t>(owner) | static_cast<uint64_t>(op);
}
inline Op opOf(uint64_t userData) { return static_cast<Op>(userData & 0xf); }
template <class T>
T* ownerOf(uint64_t userData) {
    return reinterpret_cast<T*>(static_cast<uintptr_t>(userData & ~uint64_t{0xf}));
}

} // namespace switchyard::proxy::uring_engine
