#pragma once

// Process metrics read from /proc/self at scrape time (prometheus-cpp has no
// process collector). Names follow the Prometheus client libraries'
// conventions (process_cpu_seconds_total, ...) so stock dashboards work.

#include <vector>

#include <prometheus/metric_family.h>

namespace switchyard::telemetry {

// Appends process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds and
// process_start_time_seconds; a figure that cannot be read is left out.
void appendProcessMetrics(std::vector<prometheus::MetricFamily>& out);

} // namespace switchyard::telemetry
