#pragma once

// Why a proxied connection ended: one word for the access log and metric label,
// and the rule (CloseReasonLatch) that settles it when several things happen.

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

// A session's close reason, settled once. The first reason noted wins: a
// session closed by shutdown, drain or idle time keeps that reason even though
// closing its sockets then fails its reads. The one exception: a reset outranks
// a half-close noted earlier (a client that sent its request and FIN, then saw
// the backend crash, ended by backend_reset, not client_close). Both engines
// keep one per session and note every candidate reason through it.
class CloseReasonLatch {
public:
    void note(CloseReason reason) {
        if (known_) return;
        known_ = true;
        reason_ = reason;
    }

    // `clientSide`: the client reset or errored (else the backend did).
    void noteReset(bool clientSide) {
        if (known_ && reason_ != CloseReason::ClientClose && reason_ != CloseReason::BackendClose) return;
        known_ = true;
        reason_ = clientSide ? CloseReason::ClientReset : CloseReason::BackendReset;
    }

    // Whether anything was noted yet (a session closed from outside meanwhile).
    bool known() const { return known_; }
    // ClientClose until something is noted.
    CloseReason reason() const { return reason_; }

private:
    bool known_ = false;
    CloseReason reason_ = CloseReason::ClientClose;
};

} // namespace switchyard::proxy
