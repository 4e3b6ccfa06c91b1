#include "switchyard/proxy/close_reason.h"

namespace switchyard::proxy {

const char* toString(CloseReason reason) {
    switch (reason) {
    case CloseReason::ClientClose: return "client_close";
    case CloseReason::BackendClose: return "backend_close";
    case CloseReason::ClientReset: return "client_reset";
    case CloseReason::BackendReset: return "backend_reset";
    case CloseReason::IdleTimeout: return "idle_timeout";
    case CloseReason::DrainDeadline: return "drain_deadline";
    case CloseReason::ConnectFailed: return "connect_failed";
    case CloseReason::NoBackend: return "no_backend";
    case CloseReason::ConnectionLimit: return "connection_limit";
    case CloseReason::Shutdown: return "shutdown";
    }
    return "unknown";
}

} // namespace switchyard::proxy
