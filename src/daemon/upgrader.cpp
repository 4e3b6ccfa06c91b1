#include "switchyard/daemon/upgrader.h"

#include <cerrno>
#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "switchyard/admin/command_executor.h"
#include "switchyard/daemon/handover.h"
#include "switchyard/daemon/process_spawn.h"
#include "switchyard/telemetry/logging.h"

namespace switchyard::daemon {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kPoll = std::chrono::milliseconds(20);
// How much sooner than its shutdown_grace a draining generation told to stop
// closes its last connections: the 500 ms past its deadline it allows the
// workers, its exit, and the new generation's 200 ms look at the channel.
constexpr auto kStopMargin = std::chrono::milliseconds(1000);
constexpr std::size_t kKeptOutput = 64 * 1024;
constexpr std::size_t kReportedLines = 20;
// Counter series a hand-over message carries (a histogram's is ~20 numbers): well under its size limit.
constexpr std::size_t kSeriesPerMessage = 400;
constexpr std::size_t kHealthRecordsPerMessage = 1000;
constexpr std::size_t kDrainsPerMessage = 2000;

// The descriptor the new generation finds its hand-over channel at.
constexpr int kChildChannelFd = 3;

std::string describeExit(int status) {
    if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
    return "ended";
}

// The last lines of what a child wrote, for the operator.
std::string lastLines(const std::string& text) {
    std::size_t end = text.size();
    while (end > 0 && text[end - 1] == '\n') --end;
    std::size_t start = end;
    for (std::size_t lines = 0; start > 0 && lines < kReportedLines; --start)
        if (text[start - 1] == '\n' && ++lines == kReportedLines) break;
    return text.substr(start, end - start);
}

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
}

int64_t unixMillis(Clock::time_point at) {
    const auto fromNow = at - Clock::now();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               (std::chrono::system_clock::now() + fromNow).time_since_epoch())
        .count();
}

} // namespace

std::string runningBinaryPath() {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return {};
    std::string out(path, static_cast<std::size_t>(n));
    constexpr std::string_view kDeleted = " (deleted)";
    if (out.ends_with(kDeleted)) out.resize(out.size() - kDeleted.size());
    return out;
}

struct Upgrader::Attempt {
    enum class Phase { Version, Check, Starting };
    explicit Attempt(boost::asio::io_context& context) : timer(context) {}
    std::function<void(json)> done;
    std::string binary;
    std::chrono::milliseconds timeout{0};
    Clock::time_point deadline;
    Phase phase = Phase::Version;
    SpawnedProcess process;
    UniqueFd output;   // the child's stdout and stderr
    std::string text;  // what it wrote (the tail)
    UniqueFd channel;
    boost::asio::steady_timer timer;
    bool ended = false;   // failed or handed over: a step still queued does nothing
};

Upgrader::Upgrader(Parts parts)
    : parts_(std::move(parts)), timer_(parts_.context), predecessorTimer_(parts_.context) {
    parts_.control.onPublished([this](const control::MasterState&) {
        if (predecessorChannel_.valid()) sendDrains(parts_.control.lastChanges().all);
    });
}

Upgrader::~Upgrader() {
    timer_.cancel();
    predecessorTimer_.cancel();
}

void Upgrader::upgrade(const admin::Command& command, std::function<void(json)> done) {
    const auto log = telemetry::logger("daemon");
    if (retired_) {
        done(admin::CommandExecutor::errorReply("refused", "this generation has already handed over to a newer one"));
        return;
    }
    if (stopping_) {
        done(admin::CommandExecutor::errorReply("refused", "this daemon is stopping (SIGTERM); nothing to upgrade"));
        return;
    }
    if (busy_) {
        done(admin::CommandExecutor::errorReply("upgrading", "an upgrade is already under way"));
        return;
    }
    if (parts_.control.config().sourcePath.empty()) {
        done(admin::CommandExecutor::errorReply("refused", "this daemon runs a built-in config (--demo); nothing to upgrade"));
        return;
    }
    auto attempt = std::make_shared<Attempt>(parts_.context);
    current_ = attempt;
    attempt->done = std::move(done);
    attempt->binary = command.binary.empty() ? parts_.binary : command.binary;
    attempt->timeout = command.timeout.value_or(kDefaultTimeout);
    attempt->deadline = Clock::now() + attempt->timeout;
    if (attempt->binary.empty()) {
        attempt->done(admin::CommandExecutor::errorReply("refused", "cannot tell which binary this daemon runs; name it: upgrade binary=PATH"));
        return;
    }
    busy_ = true;
    log->info("upgrade: checking {}", attempt->binary);
    int pipeFds[2];
    if (::pipe2(pipeFds, O_CLOEXEC | O_NONBLOCK) != 0) return fail(attempt, fmt::format("pipe: {}", std::strerror(errno)));
    UniqueFd writeEnd(pipeFds[1]);
    attempt->output = UniqueFd(pipeFds[0]);
    auto spawned = spawnProcess({attempt->binary, "--handover-version"}, writeEnd.get());
    if (!spawned) return fail(attempt, spawned.errorText());
    attempt->process = std::move(*spawned);
    step(attempt);
}

void Upgrader::stopping() {
    stopping_ = true;
    // Killed now, not at its next step: the stop may end this process before that.
    if (auto attempt = current_.lock(); attempt && !attempt->ended) fail(attempt, "this daemon is stopping (SIGTERM)");
}

void Upgrader::fail(std::shared_ptr<Attempt> attempt, const std::string& why) {
    attempt->ended = true;
    attempt->timer.cancel();
    killSpawned(attempt->process);
    std::string message = fmt::format("upgrade to {} failed: {}", attempt->binary, why);
    const std::string lines = lastLines(attempt->text);
    telemetry::logger("daemon")->error("{}; this generation goes on unchanged", message);
    if (!lines.empty()) message += "\n" + lines;
    parts_.control.thaw();
    busy_ = false;
    attempt->done(admin::CommandExecutor::errorReply("upgrade_failed", message));
}

void Upgrader::step(std::shared_ptr<Attempt> attempt) {
    if (attempt->ended) return;
    // What the child wrote so far (a new generation's log lines go on to ours).
    char buffer[8192];
    for (;;) {
        const ssize_t n = ::read(attempt->output.get(), buffer, sizeof buffer);
        if (n <= 0) break;
        attempt->text.append(buffer, static_cast<std::size_t>(n));
        if (attempt->phase == Attempt::Phase::Starting) [[maybe_unused]] auto w = ::write(2, buffer, static_cast<std::size_t>(n));
    }
    if (attempt->text.size() > kKeptOutput) attempt->text.erase(0, attempt->text.size() - kKeptOutput);

    if (attempt->phase == Attempt::Phase::Starting && readable(attempt->channel.get())) {
        auto message = receiveHandoverMessage(attempt->channel.get(), std::chrono::milliseconds(0));
        if (message && message->body.value("type", "") == "ready") return handOver(attempt, message->body);
        if (message && message->body.value("type", "") == "refused")
            return fail(attempt, "the new process refused the hand-over: " + message->body.value("error", ""));
        // A closed channel: the child is on its way out; its exit status says more.
    }
    int status = 0;
    bool ended = false;
    if (attempt->process.ownChild) {
        ended = ::waitpid(attempt->process.pid, &status, WNOHANG) == attempt->process.pid;
    } else {
        ended = readable(attempt->process.exited.get());   // our parent reaps it; its status is not ours to see
        status = -1;
    }
    if (ended) {
        attempt->process = SpawnedProcess{};
        for (ssize_t n; (n = ::read(attempt->output.get(), buffer, sizeof buffer)) > 0;)
            attempt->text.append(buffer, static_cast<std::size_t>(n));
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        switch (attempt->phase) {
        case Attempt::Phase::Version: {
            const std::string printed = attempt->text.substr(0, attempt->text.find_first_of("\r\n"));
            if (!ok) return fail(attempt, fmt::format("`{} --handover-version` {}", attempt->binary, describeExit(status)));
            if (printed != std::to_string(kHandoverVersion))
                return fail(attempt, fmt::format("it speaks hand-over version '{}', this daemon {}", printed,
                                                 kHandoverVersion));
            attempt->text.clear();
            attempt->phase = Attempt::Phase::Check;
            int pipeFds[2];
            if (::pipe2(pipeFds, O_CLOEXEC | O_NONBLOCK) != 0) return fail(attempt, std::strerror(errno));
            UniqueFd writeEnd(pipeFds[1]);
            attempt->output = UniqueFd(pipeFds[0]);
            auto spawned = spawnProcess({attempt->binary, "--check", "-c", parts_.control.config().sourcePath},
                                        writeEnd.get());
            if (!spawned) return fail(attempt, spawned.errorText());
            attempt->process = std::move(*spawned);
            break;
        }
        case Attempt::Phase::Check: {
            if (!ok) return fail(attempt, fmt::format("the new binary finds the config invalid (--check {})", describeExit(status)));
            attempt->text.clear();
            // From here on nothing may change until the new generation has the state.
            if (auto frozen = parts_.control.freezeForUpgrade(); !frozen) return fail(attempt, frozen.errorText());
            int pair[2];
            if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
                return fail(attempt, std::strerror(errno));
            attempt->channel = UniqueFd(pair[0]);
            UniqueFd childEnd(pair[1]);
            int pipeFds[2];
            if (::pipe2(pipeFds, O_CLOEXEC | O_NONBLOCK) != 0) return fail(attempt, std::strerror(errno));
            UniqueFd writeEnd(pipeFds[1]);
            attempt->output = UniqueFd(pipeFds[0]);
            attempt->phase = Attempt::Phase::Starting;
            // Under systemd, a sibling: the service manager's own child (process_spawn.h).
            auto spawned = spawnProcess({attempt->binary, "-c", parts_.control.config().sourcePath, "--handover-fd",
                                         std::to_string(kChildChannelFd)},
                                        writeEnd.get(), childEnd.get(), kChildChannelFd, parts_.notifier.active());
            if (!spawned) return fail(attempt, spawned.errorText());
            attempt->process = std::move(*spawned);
            childEnd.reset();
            std::vector<HandoverSocket> sockets;
            const auto add = [&sockets](std::string role, int fd, std::string service = {}, std::string address = {},
                                        unsigned worker = 0, bool shared = false) {
                if (fd < 0) return;
                sockets.push_back({std::move(role), std::move(service), std::move(address), worker,
                                   UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)), shared});
            };
            for (const auto& l : parts_.control.handoverListeners())
                add("listener", l.fd, l.service, l.address, l.worker, l.shared);
            add("admin", parts_.admin.socketFd());
            add("admin_tcp", parts_.admin.tcpSocketFd());
            if (const auto& listen = parts_.control.config().metrics.listen)
                add("metrics", parts_.metrics.listenFd(), {}, listen->toString());
            add("stderr", 2);
            // A child that already exited breaks the channel: its exit status and
            // last lines (seen on the next step) say more than EPIPE.
            // With the health this generation saw: the new one never routes to a backend known down.
            const auto health = control::HealthSeed::records(parts_.control.state(), kHealthRecordsPerMessage);
            if (auto sent = sendHello(attempt->channel.get(), sockets, health); !sent)
                telemetry::logger("daemon")->warn("upgrade: {}", sent.errorText());
            telemetry::logger("daemon")->info("upgrade: started pid {}; {} socket(s) handed over", attempt->process.pid,
                                              sockets.size());
            break;
        }
        case Attempt::Phase::Starting:
            if (status == -1) return fail(attempt, "the new process exited before it was ready");
            return fail(attempt, fmt::format("the new process {} before it was ready", describeExit(status)));
        }
    }
    if (Clock::now() >= attempt->deadline)
        return fail(attempt, fmt::format("the new process was not ready within {} ms", attempt->timeout.count()));
    attempt->timer.expires_after(kPoll);
    attempt->timer.async_wait([this, attempt](const boost::system::error_code& ec) {
        if (!ec) step(attempt);
    });
}

void Upgrader::handOver(std::shared_ptr<Attempt> attempt, const json& ready) {
    const auto log = telemetry::logger("daemon");
    const int pid = attempt->process.pid;
    const std::string version = ready.value("version", "");
    // One draining generation at a time: an older one still draining finishes
    // within its close_spread from now.
    if (predecessorChannel_.valid()) (void)sendHandoverMessage(predecessorChannel_.get(), {{"type", "finish"}});
    // The order matters: systemd learns the new main PID while this one still
    // is main; then this one stops accepting and lets go of its sockets.
    parts_.notifier.handOver(pid);
    const config::UpgradeConfig& upgrade = parts_.control.config().upgrade;
    drainDeadline_ = Clock::now() + upgrade.drainTimeout;
    parts_.control.retire(drainDeadline_, std::min(upgrade.closeSpread, upgrade.drainTimeout));
    parts_.admin.release();
    parts_.metrics.stop();
    // The new generation serves the metrics port from `go` on: it shows what this one counted from its first scrape.
    sendCounters(attempt->channel.get(), std::chrono::seconds(1));
    if (auto sent = sendHandoverMessage(attempt->channel.get(), {{"type", "go"}}); !sent)
        log->error("upgrade: {}", sent.errorText());
    retired_ = true;
    busy_ = false;
    attempt->ended = true;
    if (onRetired_) onRetired_();
    successor_ = std::move(attempt->channel);
    successorLog_ = std::move(attempt->output);
    attempt->process = SpawnedProcess{};   // systemd's main PID now, not ours to kill or reap
    log->info("upgrade: pid {} (switchyard {}) took over; this generation (pid {}) drains {} connection(s) for up "
              "to {} ms",
              pid, version, ::getpid(), openConnections(), upgrade.drainTimeout.count());
    attempt->done({{"ok", true}, {"pid", pid}, {"version", version}, {"previous_pid", ::getpid()},
                   {"draining_connections", openConnections()}, {"drain_deadline_unix_ms", unixMillis(drainDeadline_)}});
    lastReport_ = Clock::time_point{};
    handedOverAt_ = Clock::now();
    // Not at once: the `upgrade` reply above is written on this loop first.
    timer_.expires_after(kPoll);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) drainTick();
    });
}

std::size_t Upgrader::openConnections() const {
    std::size_t n = 0;
    for (const auto& w : parts_.workers) n += w->sessionCount();
    return n;
}

void Upgrader::drainTick() {
    // The new generation's log lines come through us until it switched to its own stderr.
    char buffer[8192];
    if (successorLog_.valid()) {
        for (;;) {
            const ssize_t n = ::read(successorLog_.get(), buffer, sizeof buffer);
            if (n == 0) successorLog_.reset();
            if (n <= 0) break;
            [[maybe_unused]] auto w = ::write(2, buffer, static_cast<std::size_t>(n));
        }
    }
    while (successor_.valid() && readable(successor_.get())) {
        auto message = receiveHandoverMessage(successor_.get(), std::chrono::milliseconds(0));
        const std::string type = message ? message->body.value("type", "") : "";
        if (type == "stop") {
            // Its connections get this generation's shutdown_grace, as the new one's do,
            // less a margin: the new generation exits at the end of its own grace, and
            // under systemd (KillMode=mixed) whatever is left of the unit then gets SIGKILL.
            const auto grace = std::chrono::duration_cast<Clock::duration>(parts_.control.config().shutdownGrace);
            const auto closeBy = Clock::now() + std::max(Clock::duration::zero(), grace - kStopMargin);
            drainDeadline_ = std::min(drainDeadline_, closeBy);
            telemetry::logger("daemon")->info(
                "upgrade: the new generation is stopping; this one's {} connection(s) get up to {} ms to finish",
                openConnections(),
                std::chrono::duration_cast<std::chrono::milliseconds>(drainDeadline_ - Clock::now()).count());
        } else if (type == "drains") {
            takeDrains(message->body);
        } else if (type == "finish") {
            const config::UpgradeConfig& upgrade = parts_.control.config().upgrade;
            const auto spread = std::min(upgrade.closeSpread, upgrade.drainTimeout);
            if (Clock::now() + spread < drainDeadline_) {
                drainDeadline_ = Clock::now() + spread;
                parts_.control.retire(drainDeadline_, spread);
                telemetry::logger("daemon")->info(
                    "upgrade: a newer generation took over; the last {} connection(s) close within {} ms",
                    openConnections(), spread.count());
            }
        } else if (!message) {
            successor_.reset();   // it went away; nothing more to report
        }
    }
    const std::size_t open = openConnections();
    const auto now = Clock::now();
    if (successor_.valid() && now - lastReport_ >= std::chrono::seconds(1)) {
        lastReport_ = now;
        // Best-effort: a report the new generation misses is repeated a second later.
        (void)sendHandoverMessage(successor_.get(), {{"type", "draining"},
                                                {"pid", ::getpid()},
                                                {"connections", open},
                                                {"deadline_unix_ms", unixMillis(drainDeadline_)}});
        sendCounters(successor_.get(), std::chrono::milliseconds(0));
    }
    // A little past the deadline: the workers' drain schedules close the last ones at it.
    // A moment after the hand-over at least, so the `upgrade` reply reaches its client.
    const bool replied = now - handedOverAt_ >= std::chrono::milliseconds(200);
    if ((open == 0 && replied) || now >= drainDeadline_ + std::chrono::milliseconds(500)) {
        if (open > 0) {
            telemetry::logger("daemon")->warn("upgrade.drain_timeout over: closing {} connection(s)", open);
            for (auto& w : parts_.workers) w->closeAllSessions();
        }
        telemetry::logger("daemon")->info("upgrade: this generation (pid {}) has drained; exiting", ::getpid());
        if (successor_.valid()) {
            sendCounters(successor_.get(), std::chrono::seconds(1));   // the last word on what it counted
            (void)sendHandoverMessage(successor_.get(), {{"type", "drained"}, {"pid", ::getpid()}});
        }
        if (onDrained_) onDrained_();
        return;
    }
    timer_.expires_after(kPoll);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) drainTick();
    });
}

void Upgrader::watchPredecessor(UniqueFd channel, int pid) {
    predecessorChannel_ = std::move(channel);
    predecessor_ = DrainingGeneration{pid, 0, 0};
    sendDrains(true);   // what was draining when this generation started
    readPredecessor();
}

Result<bool> Upgrader::awaitGo(int channel, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        const auto left = std::max(std::chrono::milliseconds(0),
                                   std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
        auto message = receiveHandoverMessage(channel, left);
        if (!message) return Result<bool>::failure(message.errorText());
        const std::string type = message->body.value("type", "");
        if (type == "go") return true;
        if (type != "counters") return Result<bool>::failure("the running generation did not say go");
        takeCounters(message->body);
    }
}

void Upgrader::sendCounters(int channel, std::chrono::milliseconds wait) {
    const auto parts = telemetry::CarriedCounters::from(parts_.metrics.collector()->Collect()).toJson(kSeriesPerMessage);
    ++countersSeq_;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        // Best-effort: a set the next generation misses is sent again a second later.
        const json message = {{"type", "counters"}, {"seq", countersSeq_}, {"part", i}, {"parts", parts.size()},
                              {"series", parts[i]}};
        if (auto sent = sendHandoverMessage(channel, message, {}, wait); !sent) return;
    }
}

void Upgrader::takeCounters(const json& body) {
    const uint64_t seq = body.value("seq", uint64_t{0});
    const std::size_t part = body.value("part", std::size_t{0});
    const std::size_t parts = body.value("parts", std::size_t{0});
    if (part == 0) {
        incoming_ = {};
        incomingSeq_ = seq;
        incomingParts_ = 0;
    }
    // A part of a set whose start was missed, or out of order: wait for the next set.
    if (seq != incomingSeq_ || part != incomingParts_) return;
    incoming_.addJson(body["series"]);
    if (++incomingParts_ == parts)
        parts_.metrics.collector()->setCarried(std::make_shared<telemetry::CarriedCounters>(std::exchange(incoming_, {})));
}

void Upgrader::sendDrains(bool all) {
    const routing::SnapshotPtr& snapshot = parts_.control.snapshot();
    if (!snapshot) return;
    const control::ChangeSet& changes = parts_.control.lastChanges();
    json reset = json::array();
    json spreads = json::object();
    json backends = json::array();
    const auto add = [&](const routing::ServiceRoute& route) {
        reset.push_back(route.name);
        spreads[route.name] = route.drainSpread.count();
        for (const auto& pool : route.pools)
            for (const auto& b : pool.backends)
                if (b.draining && b.drainDeadline != routing::kNoDeadline)
                    backends.push_back({route.name, config::toString(pool.colour), b.handle->key,
                                        std::chrono::duration_cast<std::chrono::milliseconds>(
                                            b.drainDeadline.time_since_epoch()).count()});
    };
    if (all || changes.all) {
        for (const auto& route : snapshot->services) add(route);
    } else {
        for (std::size_t i : changes.services)
            if (i < snapshot->services.size()) add(snapshot->services[i]);
    }
    if (reset.empty()) return;
    // In parts (a message is bounded): the first resets, the others add. A
    // second's wait at most for each: the old generation reads every 20 ms.
    for (std::size_t from = 0; from == 0 || from < backends.size(); from += kDrainsPerMessage) {
        json part = json::array();
        for (std::size_t i = from; i < backends.size() && i < from + kDrainsPerMessage; ++i) part.push_back(backends[i]);
        const json message = {{"type", "drains"},
                              {"reset", from == 0 ? reset : json::array()},
                              {"spreads", from == 0 ? spreads : json::object()},
                              {"backends", std::move(part)}};
        if (auto sent = sendHandoverMessage(predecessorChannel_.get(), message, {}, std::chrono::seconds(1)); !sent) {
            telemetry::logger("daemon")->warn("upgrade: the draining generation misses a drain: {}", sent.errorText());
            return;
        }
    }
}

void Upgrader::takeDrains(const json& body) {
    for (const auto& name : body["reset"])
        if (name.is_string()) successorDrains_.erase(name.get<std::string>());
    for (const auto& [name, spread] : body["spreads"].items())
        if (spread.is_number_unsigned()) successorDrains_[name].spread = std::chrono::milliseconds(spread.get<int64_t>());
    for (const auto& b : body["backends"]) {
        if (!b.is_array() || b.size() != 4 || !b[0].is_string() || !b[1].is_string() || !b[2].is_string() ||
            !b[3].is_number_integer())
            continue;
        const config::Colour colour = b[1].get<std::string>() == "green" ? config::Colour::Green : config::Colour::Blue;
        successorDrains_[b[0].get<std::string>()].backends.emplace_back(
            colour, b[2].get<std::string>(), routing::TimePoint(std::chrono::milliseconds(b[3].get<int64_t>())));
    }
    std::erase_if(successorDrains_, [](const auto& entry) { return entry.second.backends.empty(); });
    parts_.control.applySuccessorDrains(successorDrains_);
}

void Upgrader::stopPredecessor() {
    if (predecessorChannel_.valid()) (void)sendHandoverMessage(predecessorChannel_.get(), {{"type", "stop"}});
}

void Upgrader::readPredecessor() {
    while (predecessorChannel_.valid() && readable(predecessorChannel_.get())) {
        auto message = receiveHandoverMessage(predecessorChannel_.get(), std::chrono::milliseconds(0));
        const std::string type = message ? message->body.value("type", "") : "";
        if (type == "counters") {
            takeCounters(message->body);
        } else if (type == "draining" && predecessor_) {
            predecessor_->connections = message->body.value("connections", int64_t{0});
            predecessor_->deadlineUnixMs = message->body.value("deadline_unix_ms", int64_t{0});
        } else if (type == "drained") {
            predecessor_.reset();   // no longer shown; the channel stays until it has exited
        } else if (!message) {
            // EOF: its end of the channel closed with the process (close-on-exec, never
            // inherited), so it is gone, not merely done serving.
            predecessorChannel_.reset();
            predecessor_.reset();
        }
    }
    if (!predecessorChannel_.valid()) return;
    predecessorTimer_.expires_after(std::chrono::milliseconds(200));
    predecessorTimer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) readPredecessor();
    });
}

} // namespace switchyard::daemon
