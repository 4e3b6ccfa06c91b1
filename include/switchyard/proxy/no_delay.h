#pragma once

// Both sockets of a relay send what they are given at once (TCP_NODELAY): a
// proxy that waited to coalesce small writes would add its delay to every
// request/response turn of the protocol it carries.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace switchyard::proxy {

inline void setNoDelay(int fd) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

} // namespace switchyard::proxy
