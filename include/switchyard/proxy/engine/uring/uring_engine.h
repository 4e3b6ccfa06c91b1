#pragma once

// The io_uring engine's entry points: whether this kernel (and this
// container's seccomp policy) lets it run, a start-up self-check that moves
// real bytes through a ring the way the workers will, and the worker factory.

#include <memory>
#include <string>

#include "switchyard/proxy/worker.h"

namespace switchyard::proxy {

// io_uring_queue_init works and the kernel has every op and feature the engine
// uses. False with the reason in *why (e.g. "blocked (seccomp or
// kernel.io_uring_disabled): Operation not permitted").
bool uringAvailable(std::string* why);

// A loopback round trip through a ring set up like a worker's: multishot
// accept, connect with a linked timeout, recv from a provided buffer ring.
bool uringSelfCheck(std::string* why);

std::unique_ptr<Worker> makeUringWorker(unsigned index, WorkerOptions options);

} // namespace switchyard::proxy
