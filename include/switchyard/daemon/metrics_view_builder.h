#pragma once

// Turns the control thread's MasterState into the immutable view the metrics
// scrape reads (telemetry/metrics_view.h). Runs on the control thread only:
// after every publish (ControlPlane::onPublished) and on a short timer, so
// counters the control plane keeps outside snapshots (reloads, save failures)
// reach the scrape within a second.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "switchyard/admin/status_report.h"
#include "switchyard/control/control_plane.h"
#include "switchyard/telemetry/metrics_collector.h"
#include "switchyard/telemetry/metrics_server.h"
#include "switchyard/telemetry/metrics_view.h"

namespace switchyard::daemon {

// Rollout figures of one service. Until the rollout controller keeps its state
// in ServiceEntry this exports "no rollout" (step 0) and zero outcomes; the
// rollout owner fills `out` from the service's rollout state here.
void fillRolloutMetrics(const control::ServiceEntry& service, telemetry::RolloutMetricsView& out);

// Builds anew only the views of services whose entry changed since the last
// build (by pointer: the state shares unchanged entries), so a build costs
// what changed, not the number of backends.
class MetricsViewBuilder {
public:
    telemetry::MetricsViewPtr build(const control::ControlPlane& control);

private:
    using ServiceViewPtr = std::shared_ptr<const telemetry::ServiceMetricsView>;
    ServiceViewPtr buildService(const control::ServiceEntry& s);

    // The last build's views by position, and the entries they were built from.
    std::vector<std::pair<std::shared_ptr<const control::ServiceEntry>, ServiceViewPtr>> cache_;
    routing::ServiceIndexPtr cacheIndex_;
    // Rollouts that ended, by service and outcome; the id of the last one counted.
    std::map<std::string, std::map<std::string, uint64_t>> rolloutOutcomes_;
    std::map<std::string, uint64_t> rolloutCounted_;
};

// The daemon's metrics: collector, HTTP listener and the view kept fresh on the
// control thread (every publish, and every second for the counters that
// change without one).
class MetricsPublisher {
public:
    MetricsPublisher(boost::asio::io_context& context, control::ControlPlane& control, std::string engine);

    // Serves /metrics, /ready, /status and the status page at `listen`; call
    // after the control plane started. /status is answered on the control thread.
    Result<bool> start(const config::Endpoint& listen, int adoptedFd = -1);
    int listenFd() const { return server_.listenFd(); }
    // The older generation still draining after `upgrade`, read at each refresh.
    void setDrainingGeneration(std::function<std::optional<admin::DrainingGeneration>()> provider) {
        draining_ = std::move(provider);
    }
    void stop();
    // /ready: set once every listener is bound and the state loaded; cleared when stopping.
    void setReady(bool ready) { server_.setReady(ready); }
    const std::shared_ptr<telemetry::MetricsCollector>& collector() const { return collector_; }

private:
    void refresh();
    void arm();

    control::ControlPlane& control_;
    std::shared_ptr<telemetry::MetricsCollector> collector_;
    telemetry::MetricsServer server_;
    MetricsViewBuilder builder_;
    boost::asio::steady_timer timer_;
    bool running_ = false;
    std::function<std::optional<admin::DrainingGeneration>()> draining_;
};

} // namespace switchyard::daemon
