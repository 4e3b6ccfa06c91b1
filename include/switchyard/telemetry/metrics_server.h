#pragma once

// The HTTP endpoint for Prometheus (`metrics.listen`, path /metrics): a
// prometheus-cpp Exposer serving one MetricsCollector. Scrapes run on the
// exposer's own threads, never on a worker or the control thread.

#include <memory>
#include <string>

#include "switchyard/config/endpoint.h"
#include "switchyard/telemetry/metrics_collector.h"
#include "switchyard/util/result.h"

namespace prometheus {
class Exposer;
}

namespace switchyard::telemetry {

class MetricsServer {
public:
    explicit MetricsServer(std::shared_ptr<MetricsCollector> collector);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // Binds and serves; fails with a message naming the address.
    Result<bool> start(const config::Endpoint& listen);
    // The bound port (useful when listen asked for port 0).
    int port() const;
    void stop();

private:
    std::shared_ptr<MetricsCollector> collector_;
    std::unique_ptr<prometheus::Exposer> exposer_;
};

} // namespace switchyard::telemetry
