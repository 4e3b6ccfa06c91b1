#include "switchyard/proxy/drain_schedule.h"

namespace switchyard::proxy {

void addDrainingBackends(const routing::ServiceRoute& service, DrainingBackends& out) {
    for (const auto& pool : service.pools)
        for (const auto& backend : pool.backends)
            if (backend.draining && backend.drainDeadline != routing::kNoDeadline)
                out[backend.handle.get()] = {backend.drainDeadline, service.drainSpread};
}

DrainingBackends drainingBackends(const routing::RoutingSnapshot& snapshot) {
    DrainingBackends draining;
    for (const auto& service : snapshot.services) addDrainingBackends(service, draining);
    return draining;
}

routing::TimePoint spreadCloseTime(routing::TimePoint deadline, std::chrono::milliseconds spread, std::size_t i,
                                   std::size_t n) {
    const auto k = static_cast<int64_t>(i) + 1;
    return deadline - spread + spread * k / static_cast<int64_t>(n);
}

} // namespace switchyard::proxy
