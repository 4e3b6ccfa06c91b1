#include "switchyard/rollout/gates.h"

#include <algorithm>

#include <fmt/format.h>

namespace switchyard::rollout {

const char* toString(Verdict v) {
    switch (v) {
    case Verdict::Pass: return "pass";
    case Verdict::Fail: return "fail";
    case Verdict::Skipped: return "skipped";
    case Verdict::Pending: return "pending";
    }
    return "pending";
}

namespace {

std::string rate(double r) { return fmt::format("{:.4g}", r); }

} // namespace

std::string GateReport::failureSummary() const {
    std::string out;
    for (const GateResult& g : gates) {
        if (g.verdict != Verdict::Fail) continue;
        if (!out.empty()) out += "; ";
        const bool ms = g.gate == "max_connect_p99" || g.gate == "max_ttfb_p99";
        if (ms)
            out += fmt::format("{} {:.1f}ms > {:.1f}ms ({} samples)", g.gate, g.observed, g.limit, g.samples);
        else if (g.gate == "min_connections")
            out += fmt::format("{} {} < {}", g.gate, g.samples, static_cast<uint64_t>(g.limit));
        else
            out += fmt::format("{} {} > {} ({} attempts{})", g.gate, rate(g.observed), rate(g.limit), g.samples,
                               g.note.empty() ? "" : ", " + g.note);
    }
    return out;
}

GateReport evaluateGates(const Gates& gates, const PoolSli& target, const PoolSli& baseline) {
    GateReport report;
    report.enoughSamples = target.attempts >= gates.minConnections;
    report.gates.push_back(GateResult{"min_connections", static_cast<double>(gates.minConnections),
                                      static_cast<double>(target.attempts), target.attempts,
                                      report.enoughSamples ? Verdict::Pass : Verdict::Pending,
                                      report.enoughSamples ? "" : "holding for more samples"});
    // A verdict on too few samples is noise: every gate waits for min_connections.
    auto judge = [&](bool ok) {
        if (!report.enoughSamples) return Verdict::Pending;
        if (!ok) report.failed = true;
        return ok ? Verdict::Pass : Verdict::Fail;
    };
    if (gates.maxErrorRate) {
        const double observed = target.errorRate();
        report.gates.push_back(GateResult{"max_error_rate", *gates.maxErrorRate, observed, target.attempts,
                                          judge(observed <= *gates.maxErrorRate), ""});
    }
    if (gates.maxConnectP99) {
        const double limit = static_cast<double>(gates.maxConnectP99->count());
        GateResult g{"max_connect_p99", limit, target.connectP99Ms, target.connectSamples, Verdict::Pending, ""};
        if (report.enoughSamples && target.connectSamples == 0) {
            g.verdict = Verdict::Skipped;
            g.note = "no connect completed";
        } else {
            g.verdict = judge(target.connectP99Ms <= limit);
        }
        report.gates.push_back(std::move(g));
    }
    if (gates.maxTtfbP99) {
        const double limit = static_cast<double>(gates.maxTtfbP99->count());
        GateResult g{"max_ttfb_p99", limit, target.ttfbP99Ms, target.ttfbSamples, Verdict::Pending, ""};
        if (report.enoughSamples && target.ttfbSamples == 0) {
            g.verdict = Verdict::Skipped;
            g.note = "no first byte seen";
        } else {
            g.verdict = judge(target.ttfbP99Ms <= limit);
        }
        report.gates.push_back(std::move(g));
    }
    if (gates.maxErrorRateVsBaseline) {
        const double base = std::max(baseline.errorRate(), kBaselineErrorFloor);
        const double limit = *gates.maxErrorRateVsBaseline * base;
        GateResult g{"max_error_rate_vs_baseline", limit, target.errorRate(), target.attempts, Verdict::Pending,
                     fmt::format("baseline {} over {} attempts", rate(baseline.errorRate()), baseline.attempts)};
        if (baseline.attempts < gates.minConnections) {
            g.verdict = Verdict::Skipped;
            g.note = fmt::format("baseline has {} of min_connections {} attempts", baseline.attempts,
                                 gates.minConnections);
        } else {
            g.verdict = judge(target.errorRate() <= limit);
        }
        report.gates.push_back(std::move(g));
    }
    return report;
}

} // namespace switchyard::rollout
