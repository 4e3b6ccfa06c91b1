#include "switchyard/telemetry/carried_counters.h"

#include <catch2/catch.hpp>

using namespace switchyard::telemetry;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

MetricFamily counterFamily(const std::string& name, std::vector<ClientMetric::Label> labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    m.counter.value = value;
    return MetricFamily{name, "help", MetricType::Counter, {m}};
}

MetricFamily histogramFamily(uint64_t below, uint64_t total, double sum) {
    ClientMetric m;
    m.label = {{"pool", "blue"}};
    m.histogram.bucket = {{below, 0.1}, {total, 1e300}};
    m.histogram.sample_count = total;
    m.histogram.sample_sum = sum;
    return MetricFamily{"lat_seconds", "help", MetricType::Histogram, {m}};
}

// Sent as the hand-over does: in parts, through JSON text.
CarriedCounters overTheWire(const CarriedCounters& sent, std::size_t perPart) {
    CarriedCounters received;
    for (const auto& part : sent.toJson(perPart)) received.addJson(nlohmann::json::parse(part.dump()));
    return received;
}

} // namespace

TEST_CASE("Carried counters and histograms add to the same series, whatever the label order", "[telemetry]") {
    const std::vector<MetricFamily> old = {
        counterFamily("a_total", {{"service", "web"}, {"pool", "blue"}}, 40),
        counterFamily("gone_total", {{"service", "old"}}, 7),
        histogramFamily(3, 5, 1.5),
        counterFamily("process_cpu_seconds_total", {}, 9),
        MetricFamily{"g", "help", MetricType::Gauge, {ClientMetric{}}},
    };
    const CarriedCounters carried = overTheWire(CarriedCounters::from(old), 1);
    CHECK(carried.size() == 3);   // no process_* series, no gauge

    std::vector<MetricFamily> mine = {
        counterFamily("a_total", {{"pool", "blue"}, {"service", "web"}}, 2),
        counterFamily("a_total", {{"pool", "green"}, {"service", "web"}}, 1),
        histogramFamily(1, 1, 0.25),
        counterFamily("process_cpu_seconds_total", {}, 1),
    };
    carried.addTo(mine);
    CHECK(mine[0].metric[0].counter.value == 42);
    CHECK(mine[1].metric[0].counter.value == 1);   // a series the old one did not have
    const auto& h = mine[2].metric[0].histogram;
    CHECK(h.bucket[0].cumulative_count == 4);
    CHECK(h.bucket[1].cumulative_count == 6);
    CHECK(h.sample_count == 6);
    CHECK(h.sample_sum == Approx(1.75));
    CHECK(mine[3].metric[0].counter.value == 1);   // the process's own
}

TEST_CASE("Carried series of another shape or malformed entries are skipped", "[telemetry]") {
    CarriedCounters carried;
    carried.addJson(nlohmann::json::parse(R"([["a_total", [5]], ["b_total", ["x"]], 3, ["c_total"], ["lat_seconds\u001fpool\u001eblue", [1, 2]]])"));
    CHECK(carried.size() == 2);
    std::vector<MetricFamily> mine = {counterFamily("a_total", {}, 1), histogramFamily(1, 1, 0.5)};
    carried.addTo(mine);
    CHECK(mine[0].metric[0].counter.value == 6);
    CHECK(mine[1].metric[0].histogram.sample_count == 1);   // two values for two buckets: not this histogram
}
