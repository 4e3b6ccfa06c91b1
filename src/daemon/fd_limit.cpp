#include "switchyard/daemon/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>

#include "switchyard/health/check_runner.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::daemon {

uint64_t descriptorReserve(const config::Config& config, unsigned workers) {
    // The admin socket and a share of its clients, the state file save, logs,
    // the metrics server, eventfds and the engines' own descriptors.
    constexpr uint64_t kBase = 128;
    uint64_t backends = 0;   // one health check each may be in flight, up to the runner's cap
    for (const auto& s : config.services)
        for (const auto& pool : s.pools) backends += pool.size();
    const uint64_t checks = std::min<uint64_t>(backends, health::CheckRunner::kMaxInFlight);
    // Two per service and worker: the worker's listener and the copy kept to hand it over (upgrade).
    return kBase + 2 * config.services.size() * workers + checks;
}

uint64_t raiseFileLimit(const config::Config& config, unsigned workers) {
    const auto log = telemetry::logger("daemon");
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    // A small limit still leaves the data path half of it.
    const uint64_t reserve = std::min<uint64_t>(descriptorReserve(config, workers), limit.rlim_cur / 2);
    uint64_t wanted = 0;
    for (const auto& s : config.services) wanted += s.maxConnections;
    const uint64_t allowed = (limit.rlim_cur - reserve) / 2;
    if (wanted > allowed)
        log->warn("open-file limit {} caps connections: services allow {} in total (max_connections) but at most {} "
                  "are served at once (2 descriptors each; {} kept for listeners, health checks, the admin socket "
                  "and the state file); more are closed at once as connection_limit. Raise LimitNOFILE / "
                  "ulimit -Hn to lift it",
                  limit.rlim_cur, wanted, allowed, reserve);
    return allowed;
}

uint64_t openFileLimit() {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    return limit.rlim_cur;
}

} // namespace switchyard::daemon
