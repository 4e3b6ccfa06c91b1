#include "switchyard/proxy/worker_core.h"

#include <cerrno>
#include <cstring>

#include "switchyard/telemetry/logging.h"

namespace switchyard::proxy {

AcceptError classifyAcceptError(int err) {
    switch (err) {
    case EAGAIN: return AcceptError::Drained;
    case ECONNABORTED: case EINTR: case EPROTO: case EPERM: case ENETDOWN: case ENETUNREACH:
    case EHOSTDOWN: case EHOSTUNREACH: case ENONET: case ENOPROTOOPT: case ETIMEDOUT: return AcceptError::Next;
    default: return AcceptError::Pause;
    }
}

void logAcceptPause(unsigned worker, std::string_view service, int err, AcceptBackoffLog& log,
                    std::chrono::steady_clock::time_point now) {
    // Out of fds or memory: the connections stay queued; the worker backs off
    // instead of spinning on a listener that stays readable.
    if (const auto quiet = log.due(now))
        telemetry::logger("proxy")->warn(
            "worker {}: accept on {} failed: {}; pausing accepts for 100ms ({} more pauses since the last line)",
            worker, service, std::strerror(err), *quiet);
}

void logDrainClosed(unsigned worker, std::size_t closed) {
    if (closed > 0) telemetry::logger("proxy")->info("worker {}: drain deadline closed {} connection(s)", worker, closed);
}

} // namespace switchyard::proxy
