#pragma once

// The proxy's name for util::isLocalError, kept only while the io_uring accept
// path (uring_worker.cpp) is being rewritten; new code includes
// switchyard/util/local_error.h.

#include "switchyard/util/local_error.h"

namespace switchyard::proxy {

using util::isLocalError;

} // namespace switchyard::proxy
