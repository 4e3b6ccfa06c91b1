#include "switchyard/telemetry/metrics_server.h"

#include <exception>

#include <prometheus/exposer.h>

namespace switchyard::telemetry {

MetricsServer::MetricsServer(std::shared_ptr<MetricsCollector> collector) : collector_(std::move(collector)) {}

MetricsServer::~MetricsServer() { stop(); }

Result<bool> MetricsServer::start(const config::Endpoint& listen) {
    // civetweb takes "127.0.0.1:9911" and "[::1]:9911", as Endpoint prints them.
    const std::string address = listen.toString();
    try {
        // One thread is enough for a scrape every few seconds; a second lets a
        // slow scraper not hold up another.
        exposer_ = std::make_unique<prometheus::Exposer>(address, 2);
    } catch (const std::exception& e) {
        return Result<bool>::failure("metrics.listen " + address + ": cannot listen: " + e.what());
    }
    exposer_->RegisterCollectable(collector_, "/metrics");
    return true;
}

int MetricsServer::port() const {
    if (!exposer_) return 0;
    const auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

void MetricsServer::stop() { exposer_.reset(); }

} // namespace switchyard::telemetry
