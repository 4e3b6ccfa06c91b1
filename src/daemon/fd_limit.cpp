#include "switchyard/daemon/fd_limit.h"

#include <sys/resource.h>

#include "switchyard/telemetry/logging.h"

namespace switchyard::daemon {

uint64_t raiseFileLimit(const config::Config& config) {
    const auto log = telemetry::logger("daemon");
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    constexpr uint64_t kReserved = 128;   // listeners, admin, health checks, logs
    uint64_t wanted = 0;
    for (const auto& s : config.services) wanted += s.maxConnections;
    const uint64_t allowed = limit.rlim_cur > kReserved ? (limit.rlim_cur - kReserved) / 2 : 0;
    if (wanted > allowed)
        log->warn("open-file limit {} caps connections: services allow {} in total (max_connections) but only about "
                  "{} can be open at once (2 descriptors each); raise LimitNOFILE / ulimit -Hn to lift it",
                  limit.rlim_cur, wanted, allowed);
    return allowed;
}

uint64_t openFileLimit() {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    return limit.rlim_cur;
}

} // namespace switchyard::daemon
