#pragma once

// Errors that come from this host, not from the backend: out of file
// descriptors, out of ephemeral ports or memory. They never count against a
// backend (no outlier ejection, no failed rollout gate).

#include <cerrno>

namespace switchyard::util {

inline bool isLocalError(int err) {
    return err == EMFILE || err == ENFILE || err == EADDRNOTAVAIL || err == ENOBUFS || err == ENOMEM ||
           err == EADDRINUSE;
}

} // namespace switchyard::util
