#pragma once

// Counters an older generation counted (`upgrade`, docs/upgrade.md). The
// draining process sends the counter and histogram series its scrape shows to
// the new one, which adds them to its own series at every scrape: no
// Prometheus counter resets across an upgrade, and each series goes on from
// what the two processes counted together.

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>
#include <prometheus/metric_family.h>

namespace switchyard::telemetry {

class CarriedCounters {
public:
    // The counter and histogram series of `families`, as a scrape shows them
    // (process_* series are the process's own and stay out).
    static CarriedCounters from(const std::vector<prometheus::MetricFamily>& families);

    // The wire form: the series in parts of at most `perPart` (a hand-over
    // message is bounded), each a JSON array of [key, [values...]].
    std::vector<nlohmann::json> toJson(std::size_t perPart) const;
    // Adds the series of one part; entries that are not of that form are skipped.
    void addJson(const nlohmann::json& part);

    // Adds the carried values to the series of `families` with the same name
    // and labels (a series the new process no longer has is not shown).
    void addTo(std::vector<prometheus::MetricFamily>& families) const;

    std::size_t size() const { return series_.size(); }

private:
    // A counter: {value}. A histogram: the cumulative bucket counts, then count and sum.
    std::unordered_map<std::string, std::vector<double>> series_;
};

} // namespace switchyard::telemetry
