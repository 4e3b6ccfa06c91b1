#include "switchyard/rollout/rollout_json.h"
#include "switchyard/config/split_json.h"

#include <cmath>
#include <stdexcept>

namespace switchyard::rollout {
namespace {

using nlohmann::json;

config::Colour colourFrom(const json& j) {
    const auto word = j.get<std::string>();
    if (word == "blue") return config::Colour::Blue;
    if (word == "green") return config::Colour::Green;
    throw std::invalid_argument("unknown colour '" + word + "'");
}

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

json optionalMs(const std::optional<Millis>& d) { return d ? json(d->count()) : json(nullptr); }
json optionalNumber(const std::optional<double>& d) { return d ? json(*d) : json(nullptr); }

json planJson(const RolloutPlan& p) {
    return {{"to", config::toString(p.to)},
            {"steps", p.steps},
            {"hold_ms", p.hold.count()},
            {"max_hold_ms", p.maxHold.count()},
            {"gates",
             {{"max_error_rate", optionalNumber(p.gates.maxErrorRate)},
              {"max_connect_p99_ms", optionalMs(p.gates.maxConnectP99)},
              {"max_ttfb_p99_ms", optionalMs(p.gates.maxTtfbP99)},
              {"max_error_rate_vs_baseline", optionalNumber(p.gates.maxErrorRateVsBaseline)},
              {"min_connections", p.gates.minConnections}}}};
}

RolloutPlan planFrom(const json& j) {
    RolloutPlan p;
    p.to = colourFrom(j.at("to"));
    p.steps = j.at("steps").get<std::vector<uint32_t>>();
    if (p.steps.empty()) throw std::invalid_argument("rollout has no steps");
    for (std::size_t i = 0; i < p.steps.size(); ++i)
        if (p.steps[i] < 1 || p.steps[i] > 100 || (i > 0 && p.steps[i] <= p.steps[i - 1]))
            throw std::invalid_argument("rollout steps must rise within 1..100");
    p.hold = Millis(j.at("hold_ms").get<int64_t>());
    p.maxHold = Millis(j.at("max_hold_ms").get<int64_t>());
    const json& g = j.at("gates");
    if (!g.at("max_error_rate").is_null()) p.gates.maxErrorRate = g.at("max_error_rate").get<double>();
    if (!g.at("max_connect_p99_ms").is_null()) p.gates.maxConnectP99 = Millis(g.at("max_connect_p99_ms").get<int64_t>());
    if (!g.at("max_ttfb_p99_ms").is_null()) p.gates.maxTtfbP99 = Millis(g.at("max_ttfb_p99_ms").get<int64_t>());
    if (!g.at("max_error_rate_vs_baseline").is_null())
        p.gates.maxErrorRateVsBaseline = g.at("max_error_rate_vs_baseline").get<double>();
    p.gates.minConnections = g.at("min_connections").get<uint32_t>();
    return p;
}

json persistSli(const PoolSli& s) {
    return {{"attempts", s.attempts},         {"errors", s.errors}, {"ejections", s.ejections},
            {"connections", s.connections},   {"connect_samples", s.connectSamples},
            {"ttfb_samples", s.ttfbSamples},  {"connect_p50_ms", s.connectP50Ms},
            {"connect_p99_ms", s.connectP99Ms}, {"ttfb_p50_ms", s.ttfbP50Ms},
            {"ttfb_p99_ms", s.ttfbP99Ms}};
}

PoolSli sliFrom(const json& j) {
    PoolSli s;
    s.attempts = j.at("attempts").get<uint64_t>();
    s.errors = j.at("errors").get<uint64_t>();
    s.connections = j.at("connections").get<uint64_t>();
    s.ejections = j.value("ejections", uint64_t{0});
    s.connectSamples = j.at("connect_samples").get<uint64_t>();
    s.ttfbSamples = j.at("ttfb_samples").get<uint64_t>();
    s.connectP50Ms = j.at("connect_p50_ms").get<double>();
    s.connectP99Ms = j.at("connect_p99_ms").get<double>();
    s.ttfbP50Ms = j.at("ttfb_p50_ms").get<double>();
    s.ttfbP99Ms = j.at("ttfb_p99_ms").get<double>();
    return s;
}

Verdict verdictFrom(const std::string& w) {
    for (Verdict v : {Verdict::Pass, Verdict::Fail, Verdict::Skipped, Verdict::Pending})
        if (w == toString(v)) return v;
    throw std::invalid_argument("unknown gate verdict '" + w + "'");
}

json persistGate(const GateResult& g) {
    return {{"gate", g.gate}, {"limit", g.limit}, {"observed", g.observed},
            {"samples", g.samples}, {"verdict", toString(g.verdict)}, {"note", g.note}};
}

GateResult gateFrom(const json& j) {
    return GateResult{j.at("gate").get<std::string>(), j.at("limit").get<double>(), j.at("observed").get<double>(),
                      j.at("samples").get<uint64_t>(), verdictFrom(j.at("verdict").get<std::string>()),
                      j.value("note", "")};
}

json stepJson(const StepRecord& s, bool persisted) {
    json gates = json::array();
    for (const auto& g : s.gates) gates.push_back(persisted ? persistGate(g) : gateJson(g));
    json j = {{"percent", s.percent},
              {"verdict", s.verdict},
              {"started_unix_ms", s.startedUnixMs ? json(s.startedUnixMs) : json(nullptr)},
              {"ended_unix_ms", s.endedUnixMs ? json(s.endedUnixMs) : json(nullptr)},
              {"window_ms", s.judged ? json(s.windowMs) : json(nullptr)},
              {"restarts", s.restarts},
              {"reason", s.reason.empty() ? json(nullptr) : json(s.reason)},
              {"target", s.judged ? (persisted ? persistSli(s.target) : sliJson(s.target)) : json(nullptr)},
              {"baseline", s.judged ? (persisted ? persistSli(s.baseline) : sliJson(s.baseline)) : json(nullptr)},
              {"gates", gates}};
    return j;
}

json histogramJson(const telemetry::HistogramData& h) {
    json buckets = json::array();
    for (std::size_t i = 0; i < h.buckets.size(); ++i)
        if (h.buckets[i] != 0) buckets.push_back(json::array({i, h.buckets[i]}));
    return {{"count", h.count}, {"sum_us", h.sumMicros}, {"buckets", buckets}};
}

telemetry::HistogramData histogramFrom(const json& j) {
    telemetry::HistogramData h;
    h.count = j.at("count").get<uint64_t>();
    h.sumMicros = j.at("sum_us").get<uint64_t>();
    for (const json& b : j.at("buckets")) {
        const auto i = b.at(0).get<std::size_t>();
        if (i >= h.buckets.size()) throw std::out_of_range("histogram bucket out of range");
        h.buckets[i] = b.at(1).get<uint64_t>();
    }
    return h;
}

} // namespace

json sampleJson(const PoolSample& s) {
    return {{"attempts", s.attempts},       {"failures", s.failures},
            {"early_closes", s.earlyCloses}, {"connections", s.connections},
            {"ejections", s.ejections},     {"connect", histogramJson(s.connect)},
            {"ttfb", histogramJson(s.ttfb)}};
}

PoolSample sampleFrom(const json& j) {
    PoolSample s;
    s.attempts = j.at("attempts").get<uint64_t>();
    s.failures = j.at("failures").get<uint64_t>();
    s.earlyCloses = j.at("early_closes").get<uint64_t>();
    s.connections = j.at("connections").get<uint64_t>();
    s.ejections = j.at("ejections").get<uint64_t>();
    s.connect = histogramFrom(j.at("connect"));
    s.ttfb = histogramFrom(j.at("ttfb"));
    return s;
}

json sliJson(const PoolSli& s) {
    return {{"attempts", s.attempts},
            {"errors", s.errors},
            {"error_rate", round3(s.errorRate() * 1000.0) / 1000.0},
            {"connections", s.connections},
            {"ejections", s.ejections},
            {"connect_samples", s.connectSamples},
            {"connect_p50_ms", round3(s.connectP50Ms)},
            {"connect_p99_ms", round3(s.connectP99Ms)},
            {"ttfb_samples", s.ttfbSamples},
            {"ttfb_p50_ms", round3(s.ttfbP50Ms)},
            {"ttfb_p99_ms", round3(s.ttfbP99Ms)}};
}

json gateJson(const GateResult& g) {
    return {{"gate", g.gate},
            {"limit", round3(g.limit * 1000.0) / 1000.0},
            {"observed", round3(g.observed * 1000.0) / 1000.0},
            {"samples", g.samples},
            {"verdict", toString(g.verdict)},
            {"note", g.note.empty() ? json(nullptr) : json(g.note)}};
}

json persistJson(const Rollout& r) {
    json steps = json::array();
    for (const auto& s : r.steps) steps.push_back(stepJson(s, true));
    return {{"id", r.id},
            {"plan", planJson(r.plan)},
            {"start_split", config::splitToJson(r.startSplit)},
            {"start_rollback_split", r.startRollbackSplit ? config::splitToJson(*r.startRollbackSplit) : json(nullptr)},
            {"state", toString(r.phase)},
            {"step", r.step},
            {"started_unix_ms", r.startedUnixMs},
            {"ended_unix_ms", r.endedUnixMs},
            {"reason", r.reason},
            {"steps", steps}};
}

Rollout restoreJson(const json& j) {
    Rollout r;
    r.id = j.at("id").get<uint64_t>();
    r.plan = planFrom(j.at("plan"));
    r.startSplit = config::splitFromJson(j.at("start_split"));
    if (!j.at("start_rollback_split").is_null()) r.startRollbackSplit = config::splitFromJson(j.at("start_rollback_split"));
    const auto phase = phaseFrom(j.at("state").get<std::string>());
    if (!phase) throw std::invalid_argument("unknown rollout state '" + j.at("state").get<std::string>() + "'");
    r.phase = *phase;
    r.step = j.at("step").get<std::size_t>();
    if (r.step >= r.plan.steps.size()) throw std::out_of_range("rollout step beyond its plan");
    r.startedUnixMs = j.at("started_unix_ms").get<int64_t>();
    r.endedUnixMs = j.at("ended_unix_ms").get<int64_t>();
    r.reason = j.at("reason").get<std::string>();
    const json& steps = j.at("steps");
    if (steps.size() != r.plan.steps.size()) throw std::invalid_argument("rollout history does not match its plan");
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const json& s = steps[i];
        StepRecord rec;
        rec.percent = r.plan.steps[i];
        rec.verdict = s.at("verdict").get<std::string>();
        rec.startedUnixMs = s.at("started_unix_ms").is_null() ? 0 : s.at("started_unix_ms").get<int64_t>();
        rec.endedUnixMs = s.at("ended_unix_ms").is_null() ? 0 : s.at("ended_unix_ms").get<int64_t>();
        rec.restarts = s.at("restarts").get<uint32_t>();
        rec.reason = s.at("reason").is_null() ? "" : s.at("reason").get<std::string>();
        if (!s.at("target").is_null()) {
            rec.judged = true;
            rec.windowMs = s.at("window_ms").get<int64_t>();
            rec.target = sliFrom(s.at("target"));
            rec.baseline = sliFrom(s.at("baseline"));
        }
        for (const json& g : s.at("gates")) rec.gates.push_back(gateFrom(g));
        r.steps.push_back(std::move(rec));
    }
    return r;
}

json statusJson(const Rollout& r, const Now& now) {
    json steps = json::array();
    for (const auto& s : r.steps) steps.push_back(stepJson(s, false));
    json window = nullptr;
    if (r.active()) {
        const PoolSli target = r.targetWindow(now);
        const PoolSli baseline = r.baselineWindow(now);
        const GateReport report = evaluateGates(r.plan.gates, target, baseline);
        json gates = json::array();
        for (const auto& g : report.gates) gates.push_back(gateJson(g));
        const Millis elapsed = r.stepElapsed(now.steady);
        const bool clockRuns = r.phase == Phase::Running;
        json left = nullptr;
        if (clockRuns) {
            // Past hold, a step lacking samples waits up to max_hold.
            const Millis until = elapsed < r.plan.hold || report.enoughSamples ? r.plan.hold : r.plan.maxHold;
            left = std::max<int64_t>(0, (until - elapsed).count());
        }
        window = {{"elapsed_ms", elapsed.count()},
                  {"hold_ms", r.plan.hold.count()},
                  {"max_hold_ms", r.plan.maxHold.count()},
                  {"time_left_ms", left},
                  {"clock", clockRuns ? "running" : "frozen"},
                  {"enough_samples", report.enoughSamples},
                  {"target", sliJson(target)},
                  {"baseline", sliJson(baseline)},
                  {"gates", gates}};
    }
    const config::Split split = r.split();
    return {{"id", r.id},
            {"state", toString(r.phase)},
            {"active", r.active()},
            {"to", config::toString(r.target())},
            {"from", config::toString(r.baseline())},
            {"step", r.step + 1},
            {"steps_total", r.plan.steps.size()},
            {"percent", r.percent()},
            {"split", config::splitToJson(split)},
            {"start_split", config::splitToJson(r.startSplit)},
            {"plan", planJson(r.plan)},
            {"started_unix_ms", r.startedUnixMs},
            {"ended_unix_ms", r.endedUnixMs ? json(r.endedUnixMs) : json(nullptr)},
            {"reason", r.reason.empty() ? json(nullptr) : json(r.reason)},
            {"window", window},
            {"history", steps}};
}

} // namespace switchyard::rollout
