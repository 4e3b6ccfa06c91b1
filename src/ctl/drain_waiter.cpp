#include "drain_waiter.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ctl_options.h"
#include "poll_pause.h"
#include "reply_printer.h"

namespace switchyard::ctl {

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kPollInterval = 200ms;
constexpr auto kRequestTimeout = 10s;

volatile std::sig_atomic_t gInterrupted = 0;

void onInterrupt(int) { gInterrupted = 1; }

const json* member(const json& j, const char* key) {
    if (!j.is_object()) return nullptr;
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

long long count(const json& obj, const char* key) {
    const json* v = member(obj, key);
    return v && v->is_number() ? v->get<long long>() : 0;
}

std::string connections(long long n) { return fmt::format("{} connection{}", n, n == 1 ? "" : "s"); }

bool sameAddress(const json& address, const config::Endpoint& want) {
    if (!address.is_string()) return false;
    auto text = address.get<std::string>();
    if (auto parsed = config::parseEndpoint(text, nullptr, true)) return *parsed == want;
    return text == want.toString();
}

// Connections left on the target, or an error message.
struct Left {
    long long connections = 0;
    std::string error;
};

Left connectionsLeft(const json& reply, const DrainTarget& target) {
    const json* services = member(reply, "services");
    if (!services || !services->is_array()) return {0, "status reply has no services"};
    for (const json& svc : *services) {
        const json* name = member(svc, "name");
        if (!name || *name != target.service) continue;
        const json* pools = member(svc, "pools");
        const json* pool = pools ? member(*pools, config::toString(target.pool)) : nullptr;
        if (!pool) return {0, fmt::format("status of '{}' has no {} pool", target.service, config::toString(target.pool))};
        if (!target.backend) {
            if (!member(*pool, "active")) return {0, "status reply has no connection counts"};
            return {count(*pool, "active") + count(*pool, "draining_connections"), {}};
        }
        const json* backends = member(*pool, "backends");
        if (backends && backends->is_array()) {
            for (const json& b : *backends) {
                const json* address = member(b, "address");
                if (address && sameAddress(*address, *target.backend))
                    return {count(b, "active") + count(b, "draining_connections"), {}};
            }
        }
        return {0, {}};   // a backend that is gone has no connections left
    }
    return {0, fmt::format("status has no service '{}'", target.service)};
}

} // namespace

bool interruptRequested() { return gInterrupted != 0; }

void installInterruptHandler() {
    struct sigaction sa {};
    sa.sa_handler = onInterrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;   // no SA_RESTART: a blocked poll/connect must return so we can stop
    ::sigaction(SIGINT, &sa, nullptr);
}

int waitForDrain(const AdminClient& client, const DrainTarget& target, std::optional<Clock::time_point> deadline,
                 bool humanOutput) {
    const bool tty = ::isatty(STDERR_FILENO) == 1;
    const std::string what =
        target.backend ? target.backend->toString() : std::string(config::toString(target.pool));
    long long shown = -1;
    long long left = -1;

    auto endLine = [&] {
        if (tty && shown >= 0) std::fputs("\r\033[K", stderr);
    };
    auto stopped = [&] {
        endLine();
        std::fprintf(stderr, "switchyardctl: stopped waiting with %s left on %s (the change stays in effect)\n",
                     left >= 0 ? connections(left).c_str() : "unknown connections", what.c_str());
        return kExitInterrupted;
    };

    const std::string request = "status " + target.service;
    while (true) {
        if (interruptRequested()) return stopped();
        auto now = Clock::now();
        if (deadline && now >= *deadline) {
            endLine();
            if (left < 0)
                std::fprintf(stderr, "switchyardctl: timed out before the daemon reported %s\n", what.c_str());
            else
                std::fprintf(stderr, "switchyardctl: timed out with %s left on %s\n", connections(left).c_str(),
                             what.c_str());
            return kExitFailure;
        }
        auto requestDeadline = now + kRequestTimeout;
        if (deadline && *deadline < requestDeadline) requestDeadline = *deadline;

        AdminReply reply = client.request(request, requestDeadline);
        switch (reply.status) {
        case AdminReply::Status::Interrupted:
            return stopped();
        case AdminReply::Status::Unreachable:
            endLine();
            std::fprintf(stderr, "switchyardctl: cannot reach switchyard at %s: %s (stopped waiting)\n",
                         client.socketPath().c_str(), reply.error.c_str());
            return kExitUnreachable;
        case AdminReply::Status::Failed:
            if (interruptRequested()) return stopped();
            if (deadline && Clock::now() >= *deadline) continue;   // reported as a timeout above
            endLine();
            std::fprintf(stderr, "switchyardctl: %s (while waiting)\n", reply.error.c_str());
            return kExitFailure;
        case AdminReply::Status::Ok:
            break;
        }

        json parsed = json::parse(reply.line, nullptr, false);
        if (parsed.is_discarded() || !parsed.is_object()) {
            endLine();
            std::fprintf(stderr, "switchyardctl: malformed status reply while waiting\n");
            return kExitFailure;
        }
        if (parsed.value("ok", false) != true) {
            endLine();
            std::fprintf(stderr, "switchyardctl: %s\n", formatError(parsed).c_str());
            return kExitFailure;
        }
        Left l = connectionsLeft(parsed, target);
        if (!l.error.empty()) {
            endLine();
            std::fprintf(stderr, "switchyardctl: %s\n", l.error.c_str());
            return kExitFailure;
        }
        left = l.connections;
        if (left == 0) {
            endLine();
            if (humanOutput) std::printf("%s: %s drained\n", target.service.c_str(), what.c_str());
            return kExitOk;
        }
        if (left != shown) {
            std::fprintf(stderr, tty ? "\r\033[Kwaiting: %s left on %s" : "waiting: %s left on %s\n",
                         connections(left).c_str(), what.c_str());
            std::fflush(stderr);
            shown = left;
        }

        pauseUntilNextPoll(kPollInterval, deadline);
    }
}

} // namespace switchyard::ctl
