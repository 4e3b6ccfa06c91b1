#pragma once

// Why a proxied connection ended: one word for the access log and metric label.

#include <cstdint>

namespace switchyard::proxy {

enum class CloseReason : uint8_t {
    ClientClose,       // both sides finished normally, client first
    BackendClose,      // both sides finished normally, backend first
    ClientReset,       // client reset or errored
    BackendReset,      // backend reset or errored
    IdleTimeout,       // timeouts.idle passed with no bytes either way
    DrainDeadline,     // its pool or backend was drained and drain_timeout passed
    ConnectFailed,     // every allowed attempt failed
    NoBackend,         // nothing routable to try
    ConnectionLimit,   // service max_connections reached
    Shutdown,          // shutdown_grace ran out
};

inline constexpr int kCloseReasonCount = 10;

const char* toString(CloseReason reason);

} // namespace switchyard::proxy
