#include "switchyard/routing/backend_state.h"

#include <utility>

namespace switchyard::routing {

// The address is resolved once here so that a connect on the data path never
// parses or formats an address.
BackendState::BackendState(std::string serviceName, config::Colour poolColour,
                           config::Endpoint endpoint, telemetry::PoolCountersPtr poolCounters)
    : service(std::move(serviceName)),
      colour(poolColour),
      address(std::move(endpoint)),
      key(address.toString()),
      pool(poolCounters ? std::move(poolCounters) : std::make_shared<telemetry::PoolCounters>()) {
    sockaddrLen = address.toSockaddr(sockaddr);
}

} // namespace switchyard::routing
