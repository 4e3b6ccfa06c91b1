#include "switchyard/daemon/metrics_view_builder.h"

#include <memory>

#include <boost/asio/post.hpp>

#include "switchyard/admin/status_report.h"
#include "switchyard/proxy/close_reason.h"
#include "switchyard/rollout/rollout_controller.h"

namespace switchyard::daemon {
namespace {

// Reasons counted per backend (the session reached one) and per service (it never did).
constexpr proxy::CloseReason kBackendReasons[] = {
    proxy::CloseReason::ClientClose, proxy::CloseReason::BackendClose,  proxy::CloseReason::ClientReset,
    proxy::CloseReason::BackendReset, proxy::CloseReason::IdleTimeout, proxy::CloseReason::DrainDeadline,
    proxy::CloseReason::Shutdown,
};
constexpr proxy::CloseReason kServiceReasons[] = {
    proxy::CloseReason::ConnectFailed, proxy::CloseReason::NoBackend, proxy::CloseReason::ConnectionLimit,
};

telemetry::CloseReasonLabel label(proxy::CloseReason r) {
    return {static_cast<int>(r), proxy::toString(r)};
}

} // namespace

void fillRolloutMetrics(const control::ServiceEntry& service, telemetry::RolloutMetricsView& out) {
    out.active = service.rolloutActive();
    out.step = out.active ? static_cast<uint32_t>(service.rollout->step + 1) : 0;
    out.targetWeight = out.active ? service.rollout->percent() : 0;
}

telemetry::MetricsViewPtr MetricsViewBuilder::build(const control::ControlPlane& control) {
    auto view = std::make_shared<telemetry::MetricsView>();
    for (auto r : kBackendReasons) view->backendCloseReasons.push_back(label(r));
    for (auto r : kServiceReasons) view->serviceCloseReasons.push_back(label(r));
    view->reloadsOk = control.reloadsOk();
    view->reloadsFailed = control.reloadsFailed();
    view->saveFailures = control.saveFailures();

    const control::MasterState& state = control.state();
    const std::size_t n = state.services.size();
    if (state.index() != cacheIndex_ || cache_.size() != n) {
        cache_.assign(n, {});
        cacheIndex_ = state.index();
    }
    view->services.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto& [entry, built] = cache_[i];
        if (entry != state.services.ptr(i)) {
            entry = state.services.ptr(i);
            built = buildService(*entry);
        }
        view->services.push_back(built);
    }
    return view;
}

MetricsViewBuilder::ServiceViewPtr MetricsViewBuilder::buildService(const control::ServiceEntry& s) {
    auto out = std::make_shared<telemetry::ServiceMetricsView>();
    telemetry::ServiceMetricsView& sv = *out;
    sv.name = s.config.name;
    sv.generation = s.generation;
    sv.revision = s.revision;
    sv.fallbackActive = s.fallback.active;
    if (s.state) {
        sv.fallbacks = s.state->fallbacks.load(std::memory_order_relaxed);
        // Aliasing pointers: they keep the ServiceState alive and point at one member.
        sv.active = std::shared_ptr<const std::atomic<int64_t>>(s.state, &s.state->active);
        sv.accepted = std::shared_ptr<const std::atomic<uint64_t>>(s.state, &s.state->accepted);
        sv.closedWithoutBackend =
            std::shared_ptr<const std::array<std::atomic<uint64_t>, 16>>(s.state, &s.state->closedWithoutBackend);
        using Live = std::shared_ptr<const std::atomic<uint64_t>>;
        sv.refusedAtLimit = Live(s.state, &s.state->refusedAtLimit);
        sv.backendsFull = Live(s.state, &s.state->backendsFull);
        sv.proxyHeaderErrors = Live(s.state, &s.state->proxyHeaderErrors);
        sv.proxyHeaderTimeouts = Live(s.state, &s.state->proxyHeaderTimeouts);
    }
    sv.panic = s.panic;
    sv.maxConnections = s.config.maxConnections;
    const config::Split effective = s.effectiveSplit();
    for (auto colour : config::kColours) {
        const control::PoolEntry& pool = s.pool(colour);
        telemetry::PoolMetricsView& pv = sv.pools[config::index(colour)];
        pv.colour = config::toString(colour);
        pv.counters = s.poolCounters[config::index(colour)];
        pv.weight = s.split.weight(colour);
        pv.effectiveWeight = pool.offline ? 0 : effective.weight(colour);
        pv.offline = pool.offline;
        const bool poolDraining = pool.drainDeadline != routing::kNoDeadline;
        pv.backends.reserve(pool.backends.size());
        for (const control::BackendEntry& b : pool.backends) {
            telemetry::BackendMetricsView bv;
            bv.address = b.address.toString();
            if (b.handle) {
                bv.traffic = std::shared_ptr<const telemetry::TrafficCounters>(b.handle, &b.handle->traffic);
                bv.active = std::shared_ptr<const std::atomic<int64_t>>(b.handle, &b.handle->active);
                bv.ejected = std::shared_ptr<const std::atomic<bool>>(b.handle, &b.handle->ejected);
                bv.limitSkips = std::shared_ptr<const std::atomic<uint64_t>>(b.handle, &b.handle->limitSkips);
                bv.checks = std::shared_ptr<const telemetry::HealthCheckCounters>(b.handle, &b.handle->checks);
                // Recorded by the control thread, which publishes each ejection.
                bv.ejections = b.handle->ejections.load(std::memory_order_relaxed);
            }
            bv.healthy = b.healthy;
            bv.draining = poolDraining || b.adminState != control::AdminState::Enabled || b.removing;
            bv.weight = b.weight;
            bv.adminState = control::toString(b.adminState);
            bv.maxConnections = b.maxConnections;
            pv.backends.push_back(std::move(bv));
        }
    }
    fillRolloutMetrics(s, sv.rollout);
    // A rollout that ended is counted once, by its outcome (its id tells one from the next).
    auto& outcomes = rolloutOutcomes_[sv.name];
    for (const char* word : {"promoted", "rolled_back", "aborted"}) outcomes.try_emplace(word, 0);
    // One that had already ended when this process first looked (restored
    // from the state file) is not counted again.
    const auto [counted, firstLook] = rolloutCounted_.try_emplace(sv.name, 0);
    if (s.rollout && !s.rollout->active() && counted->second != s.rollout->id) {
        counted->second = s.rollout->id;
        const std::string word = rollout::toString(s.rollout->phase);
        if (!firstLook && outcomes.count(word)) ++outcomes[word];
    }
    sv.rollout.outcomes.assign(outcomes.begin(), outcomes.end());
    return out;
}

MetricsPublisher::MetricsPublisher(boost::asio::io_context& context, control::ControlPlane& control,
                                   std::string engine)
    : control_(control),
      collector_(std::make_shared<telemetry::MetricsCollector>(SWITCHYARD_VERSION, std::move(engine))),
      server_(collector_), timer_(context) {}

Result<bool> MetricsPublisher::start(const config::Endpoint& listen, int adoptedFd) {
    refresh();
    // /status is the admin `status` reply, built on the control thread (the one
    // writer of the state it reads); the server thread only waits for the text.
    server_.setStatusProvider([this, executor = timer_.get_executor()](telemetry::MetricsServer::StatusReply reply) {
        boost::asio::post(executor, [this, reply = std::move(reply)] {
            if (running_) reply(admin::statusReportText(control_, ""));
        });
    });
    if (auto ok = server_.start(listen, adoptedFd); !ok) return ok;
    running_ = true;
    control_.onPublished([this](const control::MasterState&) {
        if (running_) refresh();
    });
    arm();
    return true;
}

void MetricsPublisher::stop() {
    running_ = false;
    timer_.cancel();
    server_.stop();
}

void MetricsPublisher::refresh() {
    telemetry::MetricsViewPtr view = builder_.build(control_);
    if (const auto old = draining_ ? draining_() : std::nullopt) {
        auto withOld = std::make_shared<telemetry::MetricsView>(*view);   // shares the per-service views
        withOld->drainingGenerationPid = old->pid;
        withOld->drainingGenerationConnections = old->connections;
        withOld->drainingGenerationDeadlineUnixMs = old->deadlineUnixMs;
        view = std::move(withOld);
    }
    collector_->setView(std::move(view));
}

void MetricsPublisher::arm() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || !running_) return;
        refresh();
        arm();
    });
}

} // namespace switchyard::daemon
