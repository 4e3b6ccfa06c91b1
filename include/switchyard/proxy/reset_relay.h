#pragma once

// A reset on one side reaches the other side as a reset: a client must be able
// to tell a crashed backend (RST) from a finished response (FIN), and a backend
// a vanished client from one that finished sending. Both engines call these
// only on the failure path, never per read.

#include "switchyard/proxy/close_reason.h"

namespace switchyard::proxy {

// Makes the next close() of `fd` send an RST instead of a FIN (SO_LINGER 0).
// Does nothing for a closed (negative) descriptor.
void resetOnClose(int fd);

// A reset outranks a half-close noted earlier (a client that sent its request
// and FIN, then saw the backend crash, ended by backend_reset, not
// client_close); any other reason noted first stays.
inline bool resetReplaces(CloseReason noted) {
    return noted == CloseReason::ClientClose || noted == CloseReason::BackendClose;
}

} // namespace switchyard::proxy
