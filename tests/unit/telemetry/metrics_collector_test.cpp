#include "switchyard/telemetry/metrics_collector.h"

#include <cmath>
#include <memory>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "switchyard/telemetry/traffic_counters.h"

using namespace switchyard;
using namespace switchyard::telemetry;

namespace {

// One service "web": blue has one backend, green is empty.
struct Fixture {
    std::shared_ptr<TrafficCounters> backendTraffic = std::make_shared<TrafficCounters>();
    std::shared_ptr<std::atomic<int64_t>> backendActive = std::make_shared<std::atomic<int64_t>>(0);
    std::shared_ptr<std::atomic<bool>> ejected = std::make_shared<std::atomic<bool>>(false);
    PoolCountersPtr blue = std::make_shared<PoolCounters>();
    PoolCountersPtr green = std::make_shared<PoolCounters>();
    std::shared_ptr<std::atomic<int64_t>> serviceActive = std::make_shared<std::atomic<int64_t>>(0);
    std::shared_ptr<std::atomic<uint64_t>> accepted = std::make_shared<std::atomic<uint64_t>>(0);
    std::shared_ptr<std::array<std::atomic<uint64_t>, 16>> closedWithoutBackend =
        std::make_shared<std::array<std::atomic<uint64_t>, 16>>();

    MetricsViewPtr view() const {
        auto v = std::make_shared<MetricsView>();
        v->backendCloseReasons = {{0, "client_close"}, {1, "backend_close"}};
        v->serviceCloseReasons = {{6, "connect_failed"}, {7, "no_backend"}};
        v->reloadsOk = 2;
        v->reloadsFailed = 1;
        v->saveFailures = 3;
        ServiceMetricsView s;
        s.name = "web";
        s.generation = 4;
        s.revision = 9;
        s.active = serviceActive;
        s.accepted = accepted;
        s.closedWithoutBackend = closedWithoutBackend;
        s.pools[0].colour = "blue";
        s.pools[0].counters = blue;
        s.pools[0].weight = 90;
        s.pools[0].effectiveWeight = 90;
        s.pools[1].colour = "green";
        s.pools[1].counters = green;
        s.pools[1].weight = 10;
        s.pools[1].effectiveWeight = 0;
        s.pools[1].offline = true;
        BackendMetricsView b;
        b.address = "10.0.0.11:8080";
        b.traffic = backendTraffic;
        b.active = backendActive;
        b.ejected = ejected;
        b.healthy = true;
        b.weight = 100;
        b.adminState = "enabled";
        s.pools[0].backends.push_back(b);
        s.rollout.outcomes = {{"promoted", 0}, {"rolled_back", 1}};
        v->services.push_back(std::move(s));
        return v;
    }
};

std::string scrape(const MetricsCollector& c) { return toPrometheusText(c.Collect()); }

// The value of the one sample line that starts with `prefix` (name and labels).
double sample(const std::string& text, const std::string& prefix) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(prefix + " ", 0) == 0) return std::stod(line.substr(prefix.size() + 1));
    FAIL("no sample " << prefix << " in\n" << text);
    return NAN;
}

} // namespace

TEST_CASE("The collector exports known counter values with exact names, labels and text", "[telemetry]") {
    Fixture f;
    TrafficSlot& s0 = f.backendTraffic->slot(0);
    TrafficSlot& s1 = f.backendTraffic->slot(1);
    s0.connectAttempts.add(5);
    s1.connectAttempts.add(2);   // two workers' copies are summed (one copy when there is one slot)
    s0.connectFailures.add(1);
    s0.connections.add(6);
    s0.bytesIn.add(1200);
    s0.bytesOut.add(34000);
    s0.closed[0].add(4);
    s0.closed[1].add(2);
    f.blue->traffic.slot(0).connectAttempts.add(7);
    f.blue->traffic.slot(0).connections.add(6);
    f.backendActive->store(3);
    f.serviceActive->store(3);
    f.accepted->store(10);
    (*f.closedWithoutBackend)[6].store(1);

    MetricsCollector c("0.1.0", "epoll");
    c.setProcessMetrics(false);
    c.setView(f.view());
    const std::string text = scrape(c);

    CHECK_THAT(text, Catch::Contains("# HELP switchyard_build_info Version of switchyard and the data-path engine in use.\n"
                                     "# TYPE switchyard_build_info gauge\n"
                                     "switchyard_build_info{version=\"0.1.0\",engine=\"epoll\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("# TYPE switchyard_upstream_connect_attempts_total counter\n"
                                     "switchyard_upstream_connect_attempts_total{service=\"web\",pool=\"blue\","
                                     "backend=\"10.0.0.11:8080\"} 7\n"));
    CHECK_THAT(text, Catch::Contains("# TYPE switchyard_connections_closed_total counter\n"
                                     "switchyard_connections_closed_total{service=\"web\",reason=\"connect_failed\"} 1\n"
                                     "switchyard_connections_closed_total{service=\"web\",reason=\"no_backend\"} 0\n"
                                     "switchyard_connections_closed_total{service=\"web\",pool=\"blue\","
                                     "backend=\"10.0.0.11:8080\",reason=\"client_close\"} 4\n"
                                     "switchyard_connections_closed_total{service=\"web\",pool=\"blue\","
                                     "backend=\"10.0.0.11:8080\",reason=\"backend_close\"} 2\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_connections_accepted_total{service=\"web\"} 10\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_connections_active{service=\"web\"} 3\n"));
    CHECK_THAT(text, Catch::Contains(
                         "switchyard_upstream_connections_active{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\"} 3\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_upstream_connections_draining{service=\"web\",pool=\"blue\","
                                     "backend=\"10.0.0.11:8080\"} 0\n"));
    CHECK_THAT(text, Catch::Contains(
                         "switchyard_upstream_connect_failures_total{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_in_bytes_total{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\"} 1200\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_out_bytes_total{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\"} 34000\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_pool_connect_attempts_total{service=\"web\",pool=\"blue\"} 7\n"
                                     "switchyard_pool_connect_attempts_total{service=\"web\",pool=\"green\"} 0\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_pool_connections_total{service=\"web\",pool=\"blue\"} 6\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_backend_up{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_backend_admin_state{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\","
                                     "state=\"enabled\"} 1\n"
                                     "switchyard_backend_admin_state{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\","
                                     "state=\"drain\"} 0\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_pool_weight{service=\"web\",pool=\"blue\"} 90\n"
                                     "switchyard_pool_weight{service=\"web\",pool=\"green\"} 10\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_pool_effective_weight{service=\"web\",pool=\"green\"} 0\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_pool_offline{service=\"web\",pool=\"green\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_generation{service=\"web\"} 4\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_revision{service=\"web\"} 9\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_rollout_step{service=\"web\"} 0\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_rollouts_total{service=\"web\",outcome=\"rolled_back\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_reloads_total{result=\"ok\"} 2\n"
                                     "switchyard_reloads_total{result=\"failed\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("# TYPE switchyard_state_save_failures_total counter\n"
                                     "switchyard_state_save_failures_total 3\n"));
    CHECK_THAT(text, Catch::Contains("switchyard_access_log_dropped_total 0\n"));
    CHECK_THAT(text, !Catch::Contains("process_"));
}

TEST_CASE("Counters read at scrape time follow the workers' stores", "[telemetry]") {
    Fixture f;
    MetricsCollector c("0.1.0", "epoll");
    c.setProcessMetrics(false);
    c.setView(f.view());
    const std::string prefix = "switchyard_out_bytes_total{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\"}";
    CHECK(sample(scrape(c), prefix) == 0);
    f.backendTraffic->slot(0).bytesOut.add(4096);
    CHECK(sample(scrape(c), prefix) == 4096);
}

TEST_CASE("Backends that drain report their open connections as draining", "[telemetry]") {
    Fixture f;
    f.backendActive->store(5);
    auto v = std::make_shared<MetricsView>(*f.view());
    v->services.edit(0).pools[0].backends[0].draining = true;
    v->services.edit(0).pools[0].backends[0].adminState = "drain";
    MetricsCollector c("0.1.0", "epoll");
    c.setProcessMetrics(false);
    c.setView(v);
    const std::string text = scrape(c);
    CHECK(sample(text, "switchyard_upstream_connections_draining{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\"}") == 5);
    CHECK(sample(text, "switchyard_backend_admin_state{service=\"web\",pool=\"blue\",backend=\"10.0.0.11:8080\",state=\"drain\"}") == 1);
}

TEST_CASE("Latency histograms export cumulative le buckets and a p99 within 2% of known samples", "[telemetry]") {
    Fixture f;
    // 1 ms .. 100 ms in 10 us steps: 9901 samples, p99 is the 9803rd = 99.02 ms.
    uint64_t n = 0;
    for (uint64_t us = 1000; us <= 100000; us += 10, ++n) f.blue->latency(n % 2).connect.record(us);
    for (uint64_t i = 0; i < 1000; ++i) f.blue->latency(0).ttfb.record(200);   // all 200 us
    MetricsCollector c("0.1.0", "epoll");
    c.setProcessMetrics(false);
    c.setView(f.view());
    const std::string text = scrape(c);

    const std::string pool = "service=\"web\",pool=\"blue\"";
    CHECK(sample(text, "switchyard_upstream_connect_seconds_count{" + pool + "}") == n);
    CHECK(sample(text, "switchyard_upstream_connect_seconds_bucket{" + pool + ",le=\"+Inf\"}") == n);
    CHECK(sample(text, "switchyard_upstream_connect_seconds_bucket{" + pool + ",le=\"0.0005\"}") == 0);
    // Cumulative and never overstated: at most the true count below the bound, and within one sub-bucket of it.
    const double under10ms = sample(text, "switchyard_upstream_connect_seconds_bucket{" + pool + ",le=\"0.01\"}");
    CHECK(under10ms <= 901);
    CHECK(under10ms >= 901 - 10000 * 0.032 / 10);
    CHECK(sample(text, "switchyard_upstream_connect_seconds_bucket{" + pool + ",le=\"0.1\"}") <= n);
    const double sum = sample(text, "switchyard_upstream_connect_seconds_sum{" + pool + "}");
    CHECK(sum == Approx(n * 0.0505).epsilon(1e-6));

    const double p99 = sample(text, "switchyard_upstream_connect_quantile_seconds{" + pool + ",quantile=\"0.99\"}");
    CHECK(p99 == Approx(0.09902).epsilon(0.02));
    const double p50 = sample(text, "switchyard_upstream_connect_quantile_seconds{" + pool + ",quantile=\"0.5\"}");
    CHECK(p50 == Approx(0.0505).epsilon(0.02));
    CHECK(sample(text, "switchyard_upstream_ttfb_quantile_seconds{" + pool + ",quantile=\"0.99\"}") ==
          Approx(0.0002).epsilon(0.02));
    CHECK(sample(text, "switchyard_upstream_ttfb_seconds_bucket{" + pool + ",le=\"0.00025\"}") == 1000);
    CHECK(sample(text, "switchyard_upstream_ttfb_seconds_bucket{" + pool + ",le=\"0.0001\"}") == 0);
}

TEST_CASE("Without a view the collector still exports build info", "[telemetry]") {
    MetricsCollector c("1.2.3", "io_uring");
    c.setProcessMetrics(false);
    const std::string text = scrape(c);
    CHECK_THAT(text, Catch::Contains("switchyard_build_info{version=\"1.2.3\",engine=\"io_uring\"} 1\n"));
    CHECK_THAT(text, !Catch::Contains("switchyard_connections_accepted_total"));
}

TEST_CASE("Process metrics come from /proc/self", "[telemetry]") {
    MetricsCollector c("0.1.0", "epoll");
    const std::string text = scrape(c);
    CHECK(sample(text, "process_open_fds") > 2);
    CHECK(sample(text, "process_resident_memory_bytes") > 1e6);
    CHECK(sample(text, "process_cpu_seconds_total") >= 0);
    const double start = sample(text, "process_start_time_seconds");
    const double now = static_cast<double>(std::time(nullptr));
    CHECK(start <= now + 1);
    CHECK(start > now - 86400);
}
