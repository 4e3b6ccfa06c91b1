#include "switchyard/proxy/reset_relay.h"

#include <sys/socket.h>

namespace switchyard::proxy {

void resetOnClose(int fd) {
    if (fd < 0) return;
    const linger abort{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
}

} // namespace switchyard::proxy
