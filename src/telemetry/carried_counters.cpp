#include "switchyard/telemetry/carried_counters.h"

#include <algorithm>

namespace switchyard::telemetry {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

bool carried(const MetricFamily& family) {
    return (family.type == MetricType::Counter || family.type == MetricType::Histogram) &&
           !family.name.starts_with("process_");
}

// Name and labels (sorted: another build may add them in another order),
// separated by characters no metric name or label value uses.
std::string key(const MetricFamily& family, const ClientMetric& metric) {
    std::vector<std::pair<std::string_view, std::string_view>> labels;
    labels.reserve(metric.label.size());
    for (const auto& l : metric.label) labels.emplace_back(l.name, l.value);
    std::sort(labels.begin(), labels.end());
    std::string out = family.name;
    for (const auto& [name, value] : labels) {
        out += '\x1f';
        out += name;
        out += '\x1e';
        out += value;
    }
    return out;
}

std::vector<double> values(const MetricFamily& family, const ClientMetric& metric) {
    if (family.type == MetricType::Counter) return {metric.counter.value};
    std::vector<double> out;
    out.reserve(metric.histogram.bucket.size() + 2);
    for (const auto& b : metric.histogram.bucket) out.push_back(static_cast<double>(b.cumulative_count));
    out.push_back(static_cast<double>(metric.histogram.sample_count));
    out.push_back(metric.histogram.sample_sum);
    return out;
}

} // namespace

CarriedCounters CarriedCounters::from(const std::vector<MetricFamily>& families) {
    CarriedCounters out;
    for (const MetricFamily& family : families) {
        if (!carried(family)) continue;
        for (const ClientMetric& metric : family.metric) out.series_[key(family, metric)] = values(family, metric);
    }
    return out;
}

std::vector<nlohmann::json> CarriedCounters::toJson(std::size_t perPart) const {
    std::vector<nlohmann::json> parts;
    for (const auto& [name, v] : series_) {
        if (parts.empty() || parts.back().size() >= std::max<std::size_t>(perPart, 1))
            parts.push_back(nlohmann::json::array());
        parts.back().push_back(nlohmann::json::array({name, v}));
    }
    if (parts.empty()) parts.push_back(nlohmann::json::array());
    return parts;
}

void CarriedCounters::addJson(const nlohmann::json& part) {
    if (!part.is_array()) return;
    for (const auto& entry : part) {
        if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_array()) continue;
        std::vector<double> v;
        v.reserve(entry[1].size());
        for (const auto& x : entry[1]) {
            if (!x.is_number()) break;
            v.push_back(x.get<double>());
        }
        if (v.size() == entry[1].size() && !v.empty()) series_[entry[0].get<std::string>()] = std::move(v);
    }
}

void CarriedCounters::addTo(std::vector<MetricFamily>& families) const {
    if (series_.empty()) return;
    for (MetricFamily& family : families) {
        if (!carried(family)) continue;
        for (ClientMetric& metric : family.metric) {
            const auto it = series_.find(key(family, metric));
            if (it == series_.end()) continue;
            const std::vector<double>& v = it->second;
            if (family.type == MetricType::Counter) {
                metric.counter.value += v[0];
                continue;
            }
            auto& h = metric.histogram;
            if (v.size() != h.bucket.size() + 2) continue;   // other bounds: not the same series
            for (std::size_t i = 0; i < h.bucket.size(); ++i)
                h.bucket[i].cumulative_count += static_cast<std::uint64_t>(v[i]);
            h.sample_count += static_cast<std::uint64_t>(v[h.bucket.size()]);
            h.sample_sum += v[h.bucket.size() + 1];
        }
    }
}

} // namespace switchyard::telemetry
