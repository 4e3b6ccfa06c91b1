#include "switchyard/daemon/daemon.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio.hpp>
#include <systemd/sd-daemon.h>

#include "switchyard/admin/admin_server.h"
#include "switchyard/admin/command_executor.h"
#include "switchyard/control/control_plane.h"
#include "switchyard/daemon/demo.h"
#include "switchyard/daemon/fd_limit.h"
#include "switchyard/daemon/handover.h"
#include "switchyard/daemon/limit_watcher.h"
#include "switchyard/daemon/metrics_view_builder.h"
#include "switchyard/daemon/systemd_notifier.h"
#include "switchyard/daemon/socket_activation.h"
#include "switchyard/daemon/upgrader.h"
#include "switchyard/health/health_monitor.h"
#include "switchyard/proxy/engine/uring/uring_engine.h"
#include "switchyard/proxy/session_accounting.h"
#include "switchyard/proxy/worker.h"
#include "switchyard/rollout/rollout_driver.h"
#include "switchyard/rollout/rollout_history.h"
#include "switchyard/telemetry/access_log.h"
#include "switchyard/telemetry/logging.h"
#include "switchyard/telemetry/traffic_counters.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::daemon {
namespace {

namespace net = boost::asio;

unsigned workerCount(const config::Config& config) {
    if (config.workers > 0) return config.workers;
    const unsigned cores = std::thread::hardware_concurrency();
    return cores > 0 ? cores : 1;
}

class Shutdown {
public:
    Shutdown(net::io_context& context, control::ControlPlane& control, admin::AdminServer& admin,
             std::vector<std::unique_ptr<proxy::Worker>>& workers, config::Duration grace, SystemdNotifier& notifier)
        : context_(context), control_(control), admin_(admin), workers_(workers), grace_(grace), timer_(context),
          notifier_(notifier) {}

    // Runs first when stopping begins (the metrics listener's /ready turns 503).
    void onBegin(std::function<void()> hook) { onBegin_ = std::move(hook); }
    // Something else this process must outlive, within the same grace: a
    // draining older generation. Under systemd (KillMode=mixed) whatever is
    // left of the unit once the main process exits gets SIGKILL.
    void outlive(std::function<bool()> stillRunning) { outlive_ = std::move(stillRunning); }

    void begin() {
        const auto log = telemetry::logger("daemon");
        if (started_) {
            log->warn("second stop signal: exiting now");
            std::_Exit(0);
        }
        started_ = true;
        if (onBegin_) onBegin_();
        notifier_.stopping();
        control_.stopAccepting();
        // Worker calls run in order: once this runs on a worker, its listeners
        // are closed and every connection it accepted is a counted session.
        // Until all workers got there, "0 open" could miss a just-accepted one.
        for (auto& w : workers_) w->post([stopped = stoppedWorkers_] { stopped->fetch_add(1); });
        deadline_ = std::chrono::steady_clock::now() + grace_;
        log->info("stopping: no new connections; {} open connection(s) get up to {} ms to finish", open(),
                  grace_.count());
        poll();
    }

private:
    std::size_t open() const {
        std::size_t n = 0;
        for (const auto& w : workers_) n += w->sessionCount();
        return n;
    }

    void poll() {
        const std::size_t left = open();
        const bool allStopped = stoppedWorkers_->load() == workers_.size();
        const bool othersDone = !outlive_ || !outlive_();
        if ((left == 0 && allStopped && othersDone) || std::chrono::steady_clock::now() >= deadline_) {
            if (left > 0) telemetry::logger("daemon")->warn("shutdown_grace over: closing {} connection(s)", left);
            for (auto& w : workers_) w->closeAllSessions();
            admin_.stop();
            notifier_.stop();
            context_.stop();
            return;
        }
        timer_.expires_after(std::chrono::milliseconds(20));
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) poll();
        });
    }

    net::io_context& context_;
    control::ControlPlane& control_;
    admin::AdminServer& admin_;
    std::vector<std::unique_ptr<proxy::Worker>>& workers_;
    config::Duration grace_;
    net::steady_timer timer_;
    std::chrono::steady_clock::time_point deadline_;
    bool started_ = false;
    SystemdNotifier& notifier_;
    std::shared_ptr<std::atomic<std::size_t>> stoppedWorkers_ = std::make_shared<std::atomic<std::size_t>>(0);
    std::function<void()> onBegin_;
    std::function<bool()> outlive_;
};

void waitForSignals(net::signal_set& signals, control::ControlPlane& control, Shutdown& shutdown,
                    SystemdNotifier& notifier) {
    signals.async_wait([&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        if (signal == SIGUSR1) {
            // logrotate moved the access log away: write to a new file at its path.
            if (const std::string error = telemetry::reopenAccessLog(); !error.empty())
                telemetry::logger("daemon")->error("SIGUSR1: cannot reopen the access log: {}", error);
            else
                telemetry::logger("daemon")->info("SIGUSR1: access log reopened");
        } else if (signal == SIGHUP) {
            notifier.reloading();
            const auto report = control.reload();
            if (!report.outcome.ok)
                telemetry::logger("daemon")->error("SIGHUP reload failed: {}", report.outcome.message);
            notifier.ready();
        } else {
            shutdown.begin();
        }
        waitForSignals(signals, control, shutdown, notifier);
    });
}

// `auto` picks io_uring: it passes the whole integration suite
// (scripts/test.sh runs it on both engines via SWITCHYARD_TEST_ENGINE) and
// holds an idle connection in a fraction of the epoll engine's memory.
constexpr bool kAutoPrefersUring = true;

// The engine name the workers run ("io_uring" or "epoll"); never falls back
// silently: one log line says why epoll runs instead of io_uring.
std::string chooseEngine(config::Engine wanted) {
    const auto log = telemetry::logger("daemon");
    if (wanted == config::Engine::Epoll) return "epoll";
    if (wanted == config::Engine::Auto && !kAutoPrefersUring) {
        log->info("engine auto: using epoll (the io_uring engine is opt-in: engine: io_uring)");
        return "epoll";
    }
    std::string why;
    if (proxy::uringAvailable(&why) && proxy::uringSelfCheck(&why)) return "io_uring";
    if (wanted == config::Engine::IoUring)
        log->warn("engine: io_uring requested but unavailable, using epoll: {}", why);
    else
        log->info("engine auto: using epoll: {}", why);
    return "epoll";
}

// A TCP port another process holds (the running copy's metrics server) is
// found by binding it once, without SO_REUSEPORT, and letting it go.
Result<bool> checkPortFree(const config::Endpoint& at, const char* key) {
    sockaddr_storage address{};
    const socklen_t length = at.toSockaddr(address);
    UniqueFd fd(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Result<bool>::failure(fmt::format("{} {}: {}", key, at.toString(), std::strerror(errno)));
    const int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (at.ipv6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);   // as the listeners
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
        const int err = errno;
        return Result<bool>::failure(fmt::format("{} {}: {}{}", key, at.toString(), std::strerror(err),
                                                 err == EADDRINUSE ? " (is switchyard already running?)" : ""));
    }
    return true;
}

} // namespace

int runDaemon(DaemonOptions options) {
    std::signal(SIGPIPE, SIG_IGN);
    telemetry::setupLogging(options.config.log.level);
    const auto log = telemetry::logger("daemon");
    // What `upgrade` starts by default: the file this process was started from.
    const std::string binaryPath = runningBinaryPath();
    net::io_context context(1);

    std::unique_ptr<DemoBackends> demoBackends;
    if (options.demo) {
        demoBackends = std::make_unique<DemoBackends>(context);
        auto endpoints = demoBackends->start(2);
        if (!endpoints) {
            log->error("{}", endpoints.errorText());
            return 1;
        }
        options.config = demoConfig(*endpoints);
    }
    config::Config& config = options.config;
    proxy::setSessionLimit(raiseFileLimit(config, workerCount(config)));
    if (config.log.accessLog) {
        if (const std::string error =
                telemetry::setupAccessLog(true, config.log.accessLogPath, config.log.accessLogFormat);
            !error.empty()) {
            log->error("cannot start: {}", error);
            return 1;
        }
    }

    const std::string engine = chooseEngine(config.engine);

    const unsigned count = workerCount(config);
    telemetry::setWorkerSlots(count);
    proxy::WorkerOptions workerOptions;
    workerOptions.splice = config.splice;
    workerOptions.fdShare = static_cast<std::size_t>(openFileLimit() / count);
    std::vector<std::unique_ptr<proxy::Worker>> workers;
    for (unsigned i = 0; i < count; ++i)
        workers.push_back(engine == "io_uring" ? proxy::makeUringWorker(i, workerOptions)
                                               : proxy::makeEpollWorker(i, workerOptions));
    for (auto& w : workers) w->start();
    auto stopWorkers = [&] {
        for (auto& w : workers) w->stop();
    };

    control::ControlPlane control(context, config, workers, engine);
    InheritedSockets inherited = InheritedSockets::fromEnvironment();
    // systemd's fd store gave back the listeners the last process kept there (a restart).
    std::optional<AdoptedSockets> stored;
    if (auto kept = inherited.takeStored(); !kept.empty()) {
        stored.emplace(std::move(kept));
        log->info("systemd's fd store gave back {} listener(s)", stored->size());
        control.setAdoptedListeners(
            [&stored](const config::ServiceConfig& s, std::size_t worker) {
                return stored->takeListener(s.name, s.listen.toString(), static_cast<unsigned>(worker));
            },
            "kept in systemd's fd store");
    }
    if (inherited.size() > 0) {
        control.setInheritedListeners([&inherited](const config::ServiceConfig& s) { return inherited.find(s); });
        for (const auto& name : inherited.unclaimed(config))
            log->warn("socket activation: no service listens on inherited socket {}", name);
    }
    // upgrade: the previous generation's sockets, taken instead of bound.
    UniqueFd handoverChannel;
    std::optional<AdoptedSockets> adopted;
    int predecessor = -1;
    if (options.handoverFd >= 0) {
        handoverChannel = UniqueFd(options.handoverFd);
        ::fcntl(handoverChannel.get(), F_SETFD, FD_CLOEXEC);
        auto hello = receiveHello(handoverChannel.get(), std::chrono::seconds(10));
        if (!hello) {
            log->error("cannot take over from the running generation: {}", hello.errorText());
            (void)sendHandoverMessage(handoverChannel.get(), {{"type", "refused"}, {"error", hello.errorText()}});
            stopWorkers();
            return 1;
        }
        adopted.emplace(std::move(hello->sockets));
        control::HealthSeed health;
        for (const auto& part : hello->health) health.add(part);
        control.setHealthSeed(std::move(health));
        predecessor = predecessorPid(handoverChannel.get());
        // systemd's watchdog names the main PID, our predecessor until now: once
        // we are main, the pings are ours to send.
        if (const char* watched = std::getenv("WATCHDOG_PID"); watched && std::atol(watched) == predecessor)
            ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
        log->info("taking over {} socket(s) from the running generation (pid {})", adopted->size(), predecessor);
        control.setTakingOver();
        control.setAdoptedListeners(
            [&adopted](const config::ServiceConfig& s, std::size_t worker) {
                return adopted->takeListener(s.name, s.listen.toString(), static_cast<unsigned>(worker));
            },
            "the previous generation handed over");
    }
    // The admin socket (and ports) first: a second copy started by mistake is
    // refused here, before its SO_REUSEPORT listeners could take connections
    // from the running daemon's queues and reset them on exit. Nothing is
    // served before context.run(), so the control plane is ready by then.
    // Ended rollouts, kept for rollout-history (the control plane keeps only the latest).
    rollout::RolloutHistory rolloutHistory;
    admin::CommandExecutor executor(control);
    executor.setRolloutHistory(&rolloutHistory);
    admin::AdminServer adminServer(context, executor);
    const std::string socketPath = config.admin.socket.empty() ? admin::defaultSocketPath() : config.admin.socket;
    adminServer.setAccess(admin::AccessPolicy(config.admin, ::geteuid()));
    // Taking over: the admin sockets are served only once the previous generation let go of them.
    if (auto ok = adopted ? Result<bool>(true) : adminServer.start(socketPath, config.admin.socketMode); !ok) {
        log->error("cannot start: {}", ok.errorText());
        stopWorkers();
        return 1;
    }
    std::string adminToken;
    if (config.admin.tcp) {
        // A token file anyone else can read is a configuration error (exit 2).
        auto token = admin::loadAdminToken(config.admin.tokenFile);
        if (!token) {
            log->error("cannot start: {}", token.errorText());
            stopWorkers();
            return 2;
        }
        adminToken = std::move(token).value();
        if (auto ok = adopted ? Result<bool>(true) : adminServer.startTcp(*config.admin.tcp, adminToken); !ok) {
            log->error("cannot start: {}", ok.errorText());
            stopWorkers();
            return 1;
        }
    }
    // The metrics server starts after the control plane; its port is checked now.
    UniqueFd adoptedMetrics = adopted ? adopted->take("metrics") : UniqueFd();
    if (config.metrics.listen && !adoptedMetrics.valid()) {
        if (auto free = checkPortFree(*config.metrics.listen, "metrics.listen"); !free) {
            log->error("cannot start: {}", free.errorText());
            stopWorkers();
            return 1;
        }
    }
    if (auto started = control.start(); !started) {
        log->error("cannot start: {}", started.errorText());
        stopWorkers();
        return 1;
    }
    // Outlier ejections and fallback decisions run on this (the control) thread; the checks
    // themselves on the health monitor's own thread.
    health::HealthMonitor healthMonitor(context, control);
    healthMonitor.start();
    // Rollout gates and steps, also on the control thread (after health: a turn sees this turn's fallbacks).
    rollout::RolloutDriver rolloutDriver(context, control);
    rolloutDriver.start();
    LimitWatcher limitWatcher(context, control);   // logs refusals at max_connections
    limitWatcher.start();
    const auto observeRollouts = [&rolloutHistory, &control](const control::MasterState& state) {
        const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count();
        const auto observe = [&](const control::ServiceEntry& s) {
            rolloutHistory.observe(s.config.name, s.rollout ? &*s.rollout : nullptr, now);
        };
        // Only the services the publish changed: its cost follows the change.
        const control::ChangeSet& changes = control.lastChanges();
        if (changes.all) {
            for (const auto& s : state.services) observe(s);
        } else {
            for (std::size_t i : changes.services) observe(state.services[i]);
        }
    };
    observeRollouts(control.state());
    control.onPublished(observeRollouts);
    // admin.allow / admin.read_only follow reloads; socket and TCP settings need a restart.
    control.onPublished([&control, &adminServer](const control::MasterState&) {
        adminServer.setAccess(admin::AccessPolicy(control.config().admin, ::geteuid()));
    });

    // Metrics and access log follow the control plane (the log can be turned on and off by reload).
    MetricsPublisher metrics(context, control, engine);
    // Taking over: the metrics port is served from `go` on, once this process
    // shows what the previous generation counted (no counter seems to reset).
    if (config.metrics.listen && !adopted) {
        if (auto ok = metrics.start(*config.metrics.listen, adoptedMetrics.release()); !ok) {
            log->error("cannot start: {}", ok.errorText());
            stopWorkers();
            return 1;
        }
    }
    control.onPublished([&control, log](const control::MasterState&) {
        const config::LogConfig& wanted = control.config().log;
        telemetry::setAccessLogFormat(wanted.accessLogFormat);
        if (wanted.accessLog == telemetry::accessLogEnabled()) return;
        if (const std::string error =
                telemetry::setupAccessLog(wanted.accessLog, wanted.accessLogPath, wanted.accessLogFormat);
            !error.empty())
            log->error("access log: {}", error);
    });

    SystemdNotifier notifier(context, workers, [&control, count, &engine] {
        int64_t open = 0;
        for (const auto& s : control.state().services) open += s.state ? s.state->active.load() : 0;
        return fmt::format("{} service(s), {} open connection(s), {} worker(s), engine {}, revision {}",
                           control.state().services.size(), open, count, engine, control.state().revision);
    });
    // Restarts keep the listeners (FileDescriptorStoreMax=): stored once this
    // process is systemd's main PID (below), and again when a reload changes them.
    std::vector<std::string> unclaimedStored;
    if (stored)
        for (const auto& [service, worker] : stored->leftListeners()) unclaimedStored.push_back(fdStoreName(service, worker));
    stored.reset();   // listeners nothing claimed (fewer workers, a service gone) close now
    control.onPublished([&control, &notifier](const control::MasterState&) {
        if (control.lastChanges().all && !control.retired()) notifier.storeListeners(control.handoverListeners());
    });
    Upgrader upgrader({context, control, adminServer, metrics, notifier, workers, binaryPath});
    executor.setDrainingGeneration([&upgrader] { return upgrader.drainingGeneration(); });
    metrics.setDrainingGeneration([&upgrader] { return upgrader.drainingGeneration(); });
    adminServer.setUpgradeHandler([&upgrader](const admin::Command& command, std::function<void(nlohmann::json)> done) {
        upgrader.upgrade(command, std::move(done));
    });
    upgrader.onRetired([&] {
        healthMonitor.stop();
        rolloutDriver.stop();
    });
    upgrader.onDrained([&] {
        notifier.stop();
        context.stop();
    });
    Shutdown shutdown(context, control, adminServer, workers, config.shutdownGrace, notifier);
    auto stopping = std::make_shared<bool>(false);
    shutdown.onBegin([&metrics, &upgrader, stopping] {
        *stopping = true;
        metrics.setReady(false);
        upgrader.stopPredecessor();   // a draining older generation ends with this one
        upgrader.stopping();
    });
    shutdown.outlive([&upgrader] { return upgrader.predecessorRunning(); });
    net::signal_set signals(context, SIGTERM, SIGINT, SIGHUP);
    signals.add(SIGUSR1);
    waitForSignals(signals, control, shutdown, notifier);

    if (handoverChannel.valid()) {
        // Ready: the previous generation stops accepting and lets go of the
        // admin and metrics sockets, then says `go`.
        if (auto sent = sendHandoverMessage(handoverChannel.get(), {{"type", "ready"},
                                                                    {"pid", ::getpid()},
                                                                    {"version", SWITCHYARD_VERSION}});
            !sent) {
            log->error("cannot take over: {}", sent.errorText());
            stopWorkers();
            return 1;
        }
        if (auto go = upgrader.awaitGo(handoverChannel.get(), std::chrono::seconds(30)); !go) {
            log->error("cannot take over: {}", go.errorText());
            stopWorkers();
            return 1;
        }
        // The previous generation let go of the state file's writer lock before it said go.
        if (auto writer = control.becomeWriter(); !writer) log->error("state: {}; changes are not saved", writer.errorText());
        // Our own log lines went through the previous generation until now.
        if (UniqueFd output = adopted->take("stderr"); output.valid()) {
            ::dup2(output.get(), STDOUT_FILENO);
            ::dup2(output.get(), STDERR_FILENO);
        }
        if (UniqueFd admin = adopted->take("admin"); admin.valid()) {
            if (auto ok = adminServer.adopt(socketPath, std::move(admin)); !ok) log->error("{}", ok.errorText());
        } else if (auto ok = adminServer.start(socketPath, config.admin.socketMode); !ok) {
            log->error("{}", ok.errorText());
        }
        if (config.admin.tcp) {
            if (UniqueFd tcp = adopted->take("admin_tcp"); tcp.valid()) {
                if (auto ok = adminServer.adoptTcp(std::move(tcp), adminToken); !ok) log->error("{}", ok.errorText());
            } else if (auto ok = adminServer.startTcp(*config.admin.tcp, adminToken); !ok) {
                log->error("{}", ok.errorText());
            }
        }
        if (config.metrics.listen) {
            if (auto ok = metrics.start(*config.metrics.listen, adoptedMetrics.release()); !ok)
                log->error("{}", ok.errorText());
        }
        upgrader.watchPredecessor(std::move(handoverChannel), predecessor);
        adopted.reset();   // sockets nothing claimed (a service no longer configured) close now
    }
    // Every listener is bound and the state file loaded by now.
    notifier.storeListeners(control.handoverListeners(), unclaimedStored);
    notifier.ready();
    // Fleet mode: ready once the fleet's intent was read from etcd (docs/fleet.md);
    // until then the state file's copy is served, but a load balancer in front should wait.
    if (control.fleet() && !control.fleet()->synced())
        control.onFleetSynced([&metrics, stopping] {
            if (!*stopping) metrics.setReady(true);
        });
    else
        metrics.setReady(true);
    // Parsing a large config leaves megabytes of freed heap behind (yaml-cpp's
    // node tree): hand it back rather than keep it resident for the process' life.
    ::malloc_trim(0);
    log->info("switchyard {} ready: {} service(s), {} worker(s), engine {}, admin socket {}", SWITCHYARD_VERSION,
              config.services.size(), count, engine, socketPath);
    if (options.demo) {
        log->info("demo: try `curl http://127.0.0.1:8080/` then `switchyardctl{} cutover demo green`",
                  config.admin.socket.empty() && socketPath != "/run/switchyard/admin.sock" ? "" : "");
    }
    for (;;) {
        try {
            context.run();
            break;
        } catch (const std::exception& e) {
            log->critical("control loop: unexpected exception: {}", e.what());
        }
    }
    stopWorkers();
    metrics.stop();
    telemetry::shutdownAccessLog();
    log->info("stopped");
    return 0;
}

} // namespace switchyard::daemon
