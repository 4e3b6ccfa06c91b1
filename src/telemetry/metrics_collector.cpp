#include "switchyard/telemetry/metrics_collector.h"

#include <deque>
#include <limits>
#include <sstream>
#include <utility>

#include <prometheus/text_serializer.h>

#include "switchyard/telemetry/access_log.h"
#include "switchyard/telemetry/histogram.h"
#include "switchyard/telemetry/metrics_process.h"
#include "switchyard/telemetry/worker_gauges.h"

namespace switchyard::telemetry {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// Families are created in the order they appear on /metrics and filled as the
// view is walked once; empty families are dropped at the end.
class Families {
public:
    MetricFamily& add(std::string name, std::string help, MetricType type) {
        families_.push_back(MetricFamily{std::move(name), std::move(help), type, {}});
        return families_.back();
    }
    std::vector<MetricFamily> take() {
        std::vector<MetricFamily> out;
        out.reserve(families_.size());
        for (auto& f : families_)
            if (!f.metric.empty()) out.push_back(std::move(f));
        return out;
    }

private:
    std::deque<MetricFamily> families_;   // stable references while adding
};

void counter(MetricFamily& f, Labels labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    m.counter.value = value;
    f.metric.push_back(std::move(m));
}

void gauge(MetricFamily& f, Labels labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    m.gauge.value = value;
    f.metric.push_back(std::move(m));
}

void histogram(MetricFamily& f, Labels labels, const HistogramData& data,
               const std::vector<double>& bounds = latencyBucketBounds()) {
    ClientMetric m;
    m.label = std::move(labels);
    // The count is the sum of the buckets read, so +Inf always equals it even
    // while a worker is between its bucket and count stores.
    uint64_t total = 0;
    for (uint64_t b : data.buckets) total += b;
    for (double bound : bounds) {
        const auto micros = static_cast<uint64_t>(bound * 1e6 + 0.5);
        m.histogram.bucket.push_back({data.countAtMost(micros), bound});
    }
    m.histogram.bucket.push_back({total, std::numeric_limits<double>::infinity()});
    m.histogram.sample_count = total;
    m.histogram.sample_sum = static_cast<double>(data.sumMicros) / 1e6;
    f.metric.push_back(std::move(m));
}

void checkHistogram(MetricFamily& f, Labels labels, const HealthCheckCounters& checks) {
    ClientMetric m;
    m.label = std::move(labels);
    const auto cumulative = checks.durationBuckets();
    for (std::size_t i = 0; i < kCheckDurationBounds.size(); ++i)
        m.histogram.bucket.push_back({cumulative[i], kCheckDurationBounds[i]});
    m.histogram.bucket.push_back({cumulative.back(), std::numeric_limits<double>::infinity()});
    m.histogram.sample_count = cumulative.back();
    m.histogram.sample_sum = checks.durationSumSeconds();
    f.metric.push_back(std::move(m));
}

Labels with(Labels base, const char* name, std::string value) {
    base.push_back({name, std::move(value)});
    return base;
}

double d(uint64_t v) { return static_cast<double>(v); }

} // namespace

const std::vector<double>& latencyBucketBounds() {
    static const std::vector<double> bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                            0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
    return bounds;
}

const std::vector<double>& connectionDurationBounds() {
    static const std::vector<double> bounds{0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 14400, 86400};
    return bounds;
}

MetricsCollector::MetricsCollector(std::string version, std::string engine)
    : version_(std::move(version)), engine_(std::move(engine)) {}

void MetricsCollector::setView(MetricsViewPtr view) {
    std::lock_guard lock(mutex_);
    view_ = std::move(view);
}

MetricsViewPtr MetricsCollector::view() const {
    std::lock_guard lock(mutex_);
    return view_;
}

void MetricsCollector::setCarried(std::shared_ptr<const CarriedCounters> carried) {
    std::lock_guard lock(mutex_);
    carried_ = std::move(carried);
}

std::vector<MetricFamily> MetricsCollector::Collect() const {
    const MetricsViewPtr view = this->view();
    Families fam;
    constexpr auto C = MetricType::Counter;
    constexpr auto G = MetricType::Gauge;

    auto& buildInfo = fam.add("switchyard_build_info", "Version of switchyard and the data-path engine in use.", G);
    gauge(buildInfo, {{"version", version_}, {"engine", engine_}}, 1);

    auto& accepted = fam.add("switchyard_connections_accepted_total", "Client connections accepted.", C);
    auto& active = fam.add("switchyard_connections_active",
                           "Client connections open now, routed or still connecting.", G);
    auto& closed = fam.add("switchyard_connections_closed_total",
                           "Client connections that reached a backend and ended, by reason.", C);
    auto& unserved = fam.add("switchyard_connections_unserved_total",
                             "Client connections closed before any backend served them, by reason.", C);
    auto& upActive = fam.add("switchyard_upstream_connections_active",
                             "Proxied connections open now on the backend.", G);
    auto& upDraining = fam.add("switchyard_upstream_connections_draining",
                               "Proxied connections open now on a backend or pool that drains.", G);
    auto& attempts = fam.add("switchyard_upstream_connect_attempts_total", "Upstream connects tried.", C);
    auto& failures = fam.add("switchyard_upstream_connect_failures_total",
                             "Upstream connects that failed for a reason of the backend's (refused, timed out).", C);
    auto& localErrors = fam.add("switchyard_upstream_connect_local_errors_total",
                                "Upstream connects that failed for a reason of this host's (EMFILE, EADDRNOTAVAIL); "
                                "never counted against the backend.", C);
    auto& established = fam.add("switchyard_upstream_connections_total", "Upstream connections established.", C);
    auto& early = fam.add("switchyard_upstream_early_closes_total",
                          "Upstream connections the backend closed or reset before sending a byte.", C);
    auto& bytesIn = fam.add("switchyard_in_bytes_total", "Bytes relayed from clients to backends.", C);
    auto& bytesOut = fam.add("switchyard_out_bytes_total", "Bytes relayed from backends to clients.", C);

    auto& poolAttempts = fam.add("switchyard_pool_connect_attempts_total",
                                 "Upstream connects tried, per pool (kept when backends are removed).", C);
    auto& poolFailures = fam.add("switchyard_pool_connect_failures_total",
                                 "Upstream connects that failed for a reason of the backend's, per pool.", C);
    auto& poolEstablished = fam.add("switchyard_pool_connections_total", "Upstream connections established, per pool.", C);
    auto& poolEarly = fam.add("switchyard_pool_early_closes_total",
                              "Upstream connections closed or reset by the backend before its first byte, per pool.", C);
    auto& poolIn = fam.add("switchyard_pool_in_bytes_total", "Bytes relayed from clients to the pool's backends.", C);
    auto& poolOut = fam.add("switchyard_pool_out_bytes_total", "Bytes relayed from the pool's backends to clients.", C);
    auto& connectHist = fam.add("switchyard_upstream_connect_seconds", "Time to establish upstream connections, per pool.",
                                MetricType::Histogram);
    auto& ttfbHist = fam.add("switchyard_upstream_ttfb_seconds",
                             "Time to the first backend byte after the first client byte (after connect when the "
                             "server speaks first), per pool.", MetricType::Histogram);

    auto& durationHist = fam.add("switchyard_upstream_connection_duration_seconds",
                                 "How long upstream connections lived, from established to closed, per pool.",
                                 MetricType::Histogram);
    auto& retries = fam.add("switchyard_upstream_retries_total",
                            "Upstream connects tried after an earlier connect of the same client failed, "
                            "counted on the backend retried.", C);
    auto& connectErrors = fam.add("switchyard_upstream_connect_errors_total",
                                  "Upstream connects that failed, by reason: timeout, refused, other (all three "
                                  "count against the backend) and local (this host's: EMFILE, EADDRNOTAVAIL).", C);
    auto& poolRetries = fam.add("switchyard_pool_retries_total", "Upstream connects tried as retries, per pool.", C);
    auto& checks = fam.add("switchyard_backend_checks_total", "Active health checks run against the backend.", C);
    auto& checkFailures = fam.add("switchyard_backend_check_failures_total",
                                  "Active health checks that failed, by reason (timeout, refused, connect_error, "
                                  "io_error, closed, bad_response, bad_status).", C);
    auto& checkDuration = fam.add("switchyard_backend_check_duration_seconds",
                                  "How long active health checks took.", MetricType::Histogram);
    auto& backendMax = fam.add("switchyard_backend_max_connections",
                               "The backend's max_connections (only backends that have one).", G);
    auto& backendLimitSkips = fam.add("switchyard_backend_limit_skips_total",
                                      "Picks that passed the backend over because it was at its max_connections.", C);
    auto& serviceMax = fam.add("switchyard_max_connections", "The service's max_connections.", G);
    auto& limitRefused = fam.add("switchyard_connections_limit_refused_total",
                                 "Client connections refused because the service was at its max_connections.", C);
    auto& backendsFull = fam.add("switchyard_backends_full_total",
                                 "Client connections that found every pickable backend at its max_connections.", C);
    auto& proxyErrors = fam.add("switchyard_proxy_header_errors_total",
                                "Incoming PROXY headers (accept_proxy) that were malformed, cut short or late.", C);
    auto& proxyTimeouts = fam.add("switchyard_proxy_header_timeouts_total",
                                  "Incoming PROXY headers that did not arrive in time (also counted as errors).", C);
    auto& panic = fam.add("switchyard_panic_active",
                          "1 while the service is in panic mode (no healthy backend where traffic goes: health "
                          "is ignored).", G);

    auto& backendUp = fam.add("switchyard_backend_up", "1 if the backend passes its health checks, else 0.", G);
    auto& backendEjected = fam.add("switchyard_backend_ejected", "1 while outlier detection ejects the backend.", G);
    auto& backendEjections = fam.add("switchyard_backend_ejections_total", "Outlier ejections of the backend.", C);
    auto& backendWeight = fam.add("switchyard_backend_weight", "Backend weight after operator overrides.", G);
    auto& backendAdmin = fam.add("switchyard_backend_admin_state",
                                 "Operator state of the backend: 1 for the current state.", G);
    auto& poolWeight = fam.add("switchyard_pool_weight", "Pool weight as the operator set it (split intent).", G);
    auto& poolEffective = fam.add("switchyard_pool_effective_weight",
                                  "Pool weight new connections get now (after offline pools and fallback).", G);
    auto& poolOffline = fam.add("switchyard_pool_offline", "1 while the pool is offline.", G);
    auto& generation = fam.add("switchyard_generation", "Changes of operator intent (if-generation counts these).", G);
    auto& revision = fam.add("switchyard_revision", "Routing snapshots published for the service.", G);
    auto& fallbackActive = fam.add("switchyard_fallback_active", "1 while a fallback overlay moves traffic.", G);
    auto& fallbacks = fam.add("switchyard_fallbacks_total", "Fallbacks started.", C);
    auto& rolloutActive = fam.add("switchyard_rollout_active", "1 while a rollout runs.", G);
    auto& rolloutStep = fam.add("switchyard_rollout_step", "Current rollout step (1-based), 0 when none.", G);
    auto& rolloutWeight = fam.add("switchyard_rollout_target_weight",
                                  "Share of the rollout's target pool at the current step, 0..100.", G);
    auto& rollouts = fam.add("switchyard_rollouts_total", "Rollouts ended, by outcome.", C);

    auto& reloads = fam.add("switchyard_reloads_total", "Configuration reloads, by result.", C);
    auto& saveFailures = fam.add("switchyard_state_save_failures_total", "State-file saves that failed.", C);
    auto& draining = fam.add("switchyard_upgrade_draining_generations",
                             "Older generations still serving their connections after an upgrade (0 or 1).", G);
    auto& drainingConnections = fam.add("switchyard_upgrade_draining_connections",
                                        "Connections the draining older generation still serves.", G);
    auto& drainingDeadline = fam.add("switchyard_upgrade_draining_deadline_seconds",
                                     "When the draining older generation closes its last connections (Unix time).", G);
    auto& accessDropped = fam.add("switchyard_access_log_dropped_total",
                                  "Access-log lines dropped because the writer fell behind.", C);
    auto& pipesInUse = fam.add("switchyard_worker_splice_pipes_in_use",
                               "Splice pipes a bulk flow holds now, per worker (two descriptors each).", G);
    auto& pipesPooled = fam.add("switchyard_worker_splice_pipes_pooled",
                                "Empty splice pipes kept for the next bulk flow, per worker.", G);

    if (view) {
        for (const ServiceMetricsView& s : view->services) {
            const Labels sl{{"service", s.name}};
            if (s.accepted) counter(accepted, sl, d(s.accepted->load(std::memory_order_relaxed)));
            if (s.active) gauge(active, sl, static_cast<double>(s.active->load(std::memory_order_relaxed)));
            if (s.closedWithoutBackend)
                for (const auto& r : view->serviceCloseReasons)
                    counter(unserved, with(sl, "reason", r.name),
                            d((*s.closedWithoutBackend)[static_cast<std::size_t>(r.slot)].load(std::memory_order_relaxed)));
            for (const PoolMetricsView& p : s.pools) {
                const Labels pl = with(sl, "pool", p.colour);
                for (const BackendMetricsView& b : p.backends) {
                    const Labels bl = with(pl, "backend", b.address);
                    if (b.traffic) {
                        const TrafficTotals t = b.traffic->totals();
                        counter(retries, bl, d(t.retries));
                        counter(connectErrors, with(bl, "reason", "timeout"), d(t.connectTimeouts));
                        counter(connectErrors, with(bl, "reason", "refused"), d(t.connectRefused));
                        counter(connectErrors, with(bl, "reason", "other"),
                                d(t.connectFailures - std::min(t.connectFailures, t.connectTimeouts + t.connectRefused)));
                        counter(connectErrors, with(bl, "reason", "local"), d(t.localErrors));
                        for (const auto& r : view->backendCloseReasons)
                            counter(closed, with(bl, "reason", r.name), d(t.closed[static_cast<std::size_t>(r.slot)]));
                        counter(attempts, bl, d(t.connectAttempts));
                        counter(failures, bl, d(t.connectFailures));
                        counter(localErrors, bl, d(t.localErrors));
                        counter(established, bl, d(t.connections));
                        counter(early, bl, d(t.earlyCloses));
                        counter(bytesIn, bl, d(t.bytesIn));
                        counter(bytesOut, bl, d(t.bytesOut));
                    }
                    const double open = b.active ? static_cast<double>(b.active->load(std::memory_order_relaxed)) : 0;
                    gauge(upActive, bl, open);
                    gauge(upDraining, bl, b.draining ? open : 0);
                    gauge(backendUp, bl, b.healthy ? 1 : 0);
                    gauge(backendEjected, bl, b.ejected && b.ejected->load(std::memory_order_relaxed) ? 1 : 0);
                    counter(backendEjections, bl, d(b.ejections));
                    gauge(backendWeight, bl, b.weight);
                    for (const char* state : {"enabled", "drain", "disabled"})
                        gauge(backendAdmin, with(bl, "state", state), b.adminState == state ? 1 : 0);
                    if (b.maxConnections > 0) gauge(backendMax, bl, b.maxConnections);
                    if (b.limitSkips) counter(backendLimitSkips, bl, d(b.limitSkips->load(std::memory_order_relaxed)));
                    if (b.checks) {
                        counter(checks, bl, d(b.checks->attempts()));
                        for (std::size_t k = 0; k < kCheckFailureKinds; ++k) {
                            const auto kind = static_cast<CheckFailure>(k);
                            counter(checkFailures, with(bl, "reason", std::string(toString(kind))),
                                    d(b.checks->failures(kind)));
                        }
                        checkHistogram(checkDuration, bl, *b.checks);
                    }
                }
                if (p.counters) {
                    const TrafficTotals t = p.counters->traffic.totals();
                    counter(poolAttempts, pl, d(t.connectAttempts));
                    counter(poolFailures, pl, d(t.connectFailures));
                    counter(poolEstablished, pl, d(t.connections));
                    counter(poolEarly, pl, d(t.earlyCloses));
                    counter(poolIn, pl, d(t.bytesIn));
                    counter(poolOut, pl, d(t.bytesOut));
                    const HistogramData connect = p.counters->connectHistogram();
                    const HistogramData ttfb = p.counters->ttfbHistogram();
                    histogram(connectHist, pl, connect);
                    histogram(ttfbHist, pl, ttfb);
                    histogram(durationHist, pl, p.counters->durationHistogram(), connectionDurationBounds());
                    counter(poolRetries, pl, d(t.retries));
                }
                gauge(poolWeight, pl, p.weight);
                gauge(poolEffective, pl, p.effectiveWeight);
                gauge(poolOffline, pl, p.offline ? 1 : 0);
            }
            gauge(generation, sl, d(s.generation));
            gauge(revision, sl, d(s.revision));
            gauge(fallbackActive, sl, s.fallbackActive ? 1 : 0);
            gauge(panic, sl, s.panic ? 1 : 0);
            gauge(serviceMax, sl, s.maxConnections);
            auto live = [](const std::shared_ptr<const std::atomic<uint64_t>>& p) {
                return p ? d(p->load(std::memory_order_relaxed)) : 0.0;
            };
            if (s.refusedAtLimit) counter(limitRefused, sl, live(s.refusedAtLimit));
            if (s.backendsFull) counter(backendsFull, sl, live(s.backendsFull));
            if (s.proxyHeaderErrors) counter(proxyErrors, sl, live(s.proxyHeaderErrors));
            if (s.proxyHeaderTimeouts) counter(proxyTimeouts, sl, live(s.proxyHeaderTimeouts));
            counter(fallbacks, sl, d(s.fallbacks));
            gauge(rolloutActive, sl, s.rollout.active ? 1 : 0);
            gauge(rolloutStep, sl, s.rollout.step);
            gauge(rolloutWeight, sl, s.rollout.targetWeight);
            for (const auto& [outcome, n] : s.rollout.outcomes) counter(rollouts, with(sl, "outcome", outcome), d(n));
        }
        counter(reloads, {{"result", "ok"}}, d(view->reloadsOk));
        counter(reloads, {{"result", "failed"}}, d(view->reloadsFailed));
        counter(saveFailures, {}, d(view->saveFailures));
        const bool drainingOne = view->drainingGenerationPid != 0;
        gauge(draining, {}, drainingOne ? 1 : 0);
        if (drainingOne) {
            const Labels pl{{"pid", std::to_string(view->drainingGenerationPid)}};
            gauge(drainingConnections, pl, static_cast<double>(view->drainingGenerationConnections));
            gauge(drainingDeadline, pl, static_cast<double>(view->drainingGenerationDeadlineUnixMs) / 1000.0);
        }
    }
    counter(accessDropped, {}, d(accessLogDropped()));
    for (unsigned w = 0; w < workerSlots(); ++w) {
        const WorkerGauges& g = workerGauges(w);
        gauge(pipesInUse, {{"worker", std::to_string(w)}}, d(static_cast<uint64_t>(g.splicePipesInUse.load(std::memory_order_relaxed))));
        gauge(pipesPooled, {{"worker", std::to_string(w)}}, d(static_cast<uint64_t>(g.splicePipesPooled.load(std::memory_order_relaxed))));
    }

    std::vector<MetricFamily> out = fam.take();
    if (const auto carried = [this] {
            std::lock_guard lock(mutex_);
            return carried_;
        }())
        carried->addTo(out);
    if (processMetrics_) appendProcessMetrics(out);
    return out;
}

std::string toPrometheusText(const std::vector<prometheus::MetricFamily>& families) {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, families);
    return out.str();
}

} // namespace switchyard::telemetry
