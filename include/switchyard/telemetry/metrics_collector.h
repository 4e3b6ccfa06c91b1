#pragma once

// The Prometheus collector: a custom prometheus-cpp Collectable that gathers
// everything at scrape time. prometheus-cpp's stock Counter/Histogram do an
// atomic read-modify-write per increment; here workers keep their own relaxed
// counters (traffic_counters.h) and the scrape sums them, so counting costs
// the data path one uncontended store.
//
// Thread safety: setView() is called by the control thread, Collect() by the
// metrics listener's thread; the view pointer is swapped under a mutex and the view
// itself is immutable.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "switchyard/telemetry/carried_counters.h"
#include "switchyard/telemetry/metrics_view.h"

namespace switchyard::telemetry {

// `le` bounds, in seconds, of the exported connect and TTFB histograms. The
// counts come from the log-linear histogram: a bound that falls inside one of
// its sub-buckets counts only the sub-buckets wholly below it (at most 3.1%
// of the bound away), so the exported counts never overstate.
const std::vector<double>& latencyBucketBounds();
// `le` bounds, in seconds, of the upstream connection duration histogram (1 ms to a day).
const std::vector<double>& connectionDurationBounds();

class MetricsCollector final : public prometheus::Collectable {
public:
    MetricsCollector(std::string version, std::string engine);

    void setView(MetricsViewPtr view);
    MetricsViewPtr view() const;
    // What an older generation counted (`upgrade`): added to the series at every scrape.
    void setCarried(std::shared_ptr<const CarriedCounters> carried);

    // Process metrics (CPU, memory, fds, start time) are on by default; tests
    // that compare exact text turn them off.
    void setProcessMetrics(bool on) { processMetrics_ = on; }

    std::vector<prometheus::MetricFamily> Collect() const override;

private:
    const std::string version_;
    const std::string engine_;
    bool processMetrics_ = true;
    mutable std::mutex mutex_;
    MetricsViewPtr view_;
    std::shared_ptr<const CarriedCounters> carried_;
};

// The text exposition of families (what /metrics serves); for tests and tools.
std::string toPrometheusText(const std::vector<prometheus::MetricFamily>& families);

} // namespace switchyard::telemetry
