#pragma once

// A reset on one side reaches the other side as a reset: a client must be able
// to tell a crashed backend (RST) from a finished response (FIN), and a backend
// a vanished client from one that finished sending. Both engines call it
// only on the failure path, never per read.

namespace switchyard::proxy {

// Makes the next close() of `fd` send an RST instead of a FIN (SO_LINGER 0).
// Does nothing for a closed (negative) descriptor.
void resetOnClose(int fd);

} // namespace switchyard::proxy
