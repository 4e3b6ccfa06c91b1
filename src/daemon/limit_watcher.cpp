#include "switchyard/daemon/limit_watcher.h"

#include "switchyard/telemetry/logging.h"

namespace switchyard::daemon {

void LimitWatcher::arm() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        check();
        arm();
    });
}

void LimitWatcher::check() {
    for (const auto& s : control_.state().services) {
        if (!s.state) continue;
        const uint64_t now = s.state->refusedAtLimit.load(std::memory_order_relaxed);
        auto it = seen_.try_emplace(s.config.name, 0).first;   // counters start at 0 with their service
        if (now <= it->second) {
            it->second = now;
            continue;
        }
        const int64_t open = s.state->active.load(std::memory_order_relaxed);
        if (open < static_cast<int64_t>(s.config.maxConnections))   // the session cap of the fd limit
            telemetry::logger("proxy")->warn(
                "service {}: the open-file limit's cap on connections reached: refused {} new connection(s) in "
                "the last second ({} open here; raise LimitNOFILE / ulimit -Hn)",
                s.config.name, now - it->second, open);
        else
            telemetry::logger("proxy")->warn(
                "service {}: max_connections {} reached: refused {} new connection(s) in the last second "
                "({} open; raise services[].max_connections or add capacity)",
                s.config.name, s.config.maxConnections, now - it->second, open);
        it->second = now;
    }
}

} // namespace switchyard::daemon
