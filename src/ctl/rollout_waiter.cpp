#include "rollout_waiter.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "ctl_options.h"
#include "poll_pause.h"
#include "drain_waiter.h"
#include "reply_printer.h"
#include "json_field.h"

namespace switchyard::ctl {

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kPollInterval = 500ms;
constexpr auto kRequestTimeout = 10s;
// A daemon restarting mid-rollout keeps the rollout: keep trying for this long.
constexpr auto kUnreachableGrace = 30s;
// Without a terminal, a progress line at least this often even when nothing moved.
constexpr auto kPlainLineEvery = 10s;

std::string str(const json& j) { return scalarText(j, "-"); }

double num(const json& j) { return j.is_number() ? j.get<double>() : 0.0; }

std::string splitText(const json& s) { return fmt::format("blue={} green={}", str(field(s, "blue")), str(field(s, "green"))); }

std::string sliText(const std::string& pool, const json& sli) {
    if (!sli.is_object()) return pool + " -";
    return fmt::format("{} err {:.2f}% ({}/{}), p99 connect {:.1f}ms ttfb {:.1f}ms", pool,
                       num(field(sli, "error_rate")) * 100.0, str(field(sli, "errors")), str(field(sli, "attempts")),
                       num(field(sli, "connect_p99_ms")), num(field(sli, "ttfb_p99_ms")));
}

std::string gateText(const json& g) {
    const std::string name = str(field(g, "gate"));
    const bool ms = name == "max_connect_p99" || name == "max_ttfb_p99";
    std::string reading;
    if (name == "min_connections")
        reading = fmt::format("{} of {}", str(field(g, "samples")), static_cast<long long>(num(field(g, "limit"))));
    else if (ms)
        reading = fmt::format("{:.1f}ms vs {:.1f}ms, {} samples", num(field(g, "observed")), num(field(g, "limit")),
                              str(field(g, "samples")));
    else
        reading = fmt::format("{:.4g} vs {:.4g}, {} samples", num(field(g, "observed")), num(field(g, "limit")),
                              str(field(g, "samples")));
    std::string out = fmt::format("{} {}: {}", name, str(field(g, "verdict")), reading);
    if (field(g, "note").is_string()) out += " (" + str(field(g, "note")) + ")";
    return out;
}

bool ended(const json& r) { return field(r, "active") == json(false); }

} // namespace

std::string rolloutProgressLine(const json& r) {
    std::string line = fmt::format("step {}/{} {} {}% {}", str(field(r, "step")), str(field(r, "steps_total")),
                                   str(field(r, "to")), str(field(r, "percent")), str(field(r, "state")));
    line += " · split " + splitText(field(r, "split"));
    const json& w = field(r, "window");
    if (w.is_object()) {
        line += " · " + sliText(str(field(r, "to")), field(w, "target"));
        line += " · " + sliText(str(field(r, "from")), field(w, "baseline"));
        if (field(w, "time_left_ms").is_number())
            line += " · " + formatMsLeft(static_cast<long long>(num(field(w, "time_left_ms")))) + " left";
        else
            line += " · clock " + str(field(w, "clock"));
        const json& gates = field(w, "gates");
        if (gates.is_array() && !gates.empty() && field(gates[0], "gate") == "min_connections")
            line += fmt::format(" · samples {}/{}", str(field(gates[0], "samples")),
                                static_cast<long long>(num(field(gates[0], "limit"))));
    }
    return line;
}

std::string formatRollout(const json& r) {
    if (r.is_null()) return "no rollout\n";
    std::string out = fmt::format("rollout {} to {}: {}, step {}/{} ({}%), split {}\n", str(field(r, "id")),
                                  str(field(r, "to")), str(field(r, "state")), str(field(r, "step")),
                                  str(field(r, "steps_total")), str(field(r, "percent")), splitText(field(r, "split")));
    if (field(r, "reason").is_string()) out += "  " + str(field(r, "reason")) + "\n";
    const json& w = field(r, "window");
    if (w.is_object()) {
        out += "  now: " + rolloutProgressLine(r) + "\n";
        for (const json& g : field(w, "gates")) out += "    " + gateText(g) + "\n";
    }
    for (const json& s : field(r, "history")) {
        std::string line = fmt::format("  step {:>3}%  {}", str(field(s, "percent")), str(field(s, "verdict")));
        if (field(s, "window_ms").is_number())
            line += fmt::format("  (window {:.1f}s)", num(field(s, "window_ms")) / 1000.0);
        if (num(field(s, "restarts")) > 0) line += fmt::format("  restarts {}", str(field(s, "restarts")));
        out += line + "\n";
        if (field(s, "reason").is_string()) out += "      " + str(field(s, "reason")) + "\n";
        for (const json& g : field(s, "gates")) out += "      " + gateText(g) + "\n";
    }
    return out;
}

int waitForRollout(const AdminClient& client, const RolloutWait& target, std::optional<Clock::time_point> deadline,
                   bool jsonEvents) {
    const bool tty = !jsonEvents && ::isatty(STDOUT_FILENO) == 1;
    bool liveLineShown = false;
    std::string lastKey;
    Clock::time_point lastLine{};
    // A plain time point and flag: GCC 12 warns (wrongly) that an optional may be used uninitialized.
    bool unreachable = false;
    Clock::time_point unreachableSince{};

    auto endLine = [&] {
        if (tty && liveLineShown) std::fputs("\r\033[K", stdout);
        liveLineShown = false;
    };
    auto event = [&](json e) {
        e["service"] = target.service;
        e["rollout_id"] = target.id;
        std::printf("%s\n", e.dump().c_str());
        std::fflush(stdout);
    };
    auto stopped = [&] {
        endLine();
        std::fflush(stdout);
        std::fprintf(stderr, "switchyardctl: stopped waiting; the rollout goes on (see: switchyardctl rollout-status %s)\n",
                     target.service.c_str());
        return kExitInterrupted;
    };
    auto finish = [&](const json& r, int code, const std::string& outcome) {
        endLine();
        if (jsonEvents) {
            event({{"event", "end"}, {"outcome", outcome}, {"exit", code}, {"rollout", r}});
        } else {
            std::printf("%s: rollout %s: %s\n", target.service.c_str(), outcome.c_str(),
                        str(field(r, "reason")).c_str());
            if (r.is_object()) std::fputs(formatRollout(r).c_str(), stdout);
            std::fflush(stdout);
        }
        return code;
    };

    const std::string request = "rollout-status " + target.service;
    while (true) {
        if (interruptRequested()) return stopped();
        const auto now = Clock::now();
        if (deadline && now >= *deadline) {
            endLine();
            std::fprintf(stderr, "switchyardctl: timed out waiting; the rollout goes on\n");
            return kExitFailure;
        }
        auto requestDeadline = now + kRequestTimeout;
        if (deadline && *deadline < requestDeadline) requestDeadline = *deadline;
        AdminReply reply = client.request(request, requestDeadline);
        if (reply.status == AdminReply::Status::Interrupted) return stopped();
        if (reply.status == AdminReply::Status::Unreachable || reply.status == AdminReply::Status::Failed) {
            if (interruptRequested()) return stopped();
            if (!unreachable) {
                unreachable = true;
                unreachableSince = now;
            }
            if (now - unreachableSince >= kUnreachableGrace) {
                endLine();
                std::fprintf(stderr, "switchyardctl: cannot reach switchyard at %s for %llds: %s (stopped waiting)\n",
                             client.socketPath().c_str(),
                             static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(kUnreachableGrace).count()),
                             reply.error.c_str());
                return reply.status == AdminReply::Status::Unreachable ? kExitUnreachable : kExitFailure;
            }
            pauseUntilNextPoll(kPollInterval);
            continue;
        }
        unreachable = false;
        json parsed = json::parse(reply.line, nullptr, false);
        if (parsed.is_discarded() || !parsed.is_object()) {
            endLine();
            std::fprintf(stderr, "switchyardctl: malformed rollout-status reply while waiting\n");
            return kExitFailure;
        }
        if (parsed.value("ok", false) != true) {
            endLine();
            std::fprintf(stderr, "switchyardctl: %s\n", formatError(parsed).c_str());
            // The service went away (reload): the rollout has ended without promotion.
            return parsed.value("code", "") == "no_such_service" ? kExitNotPromoted : kExitFailure;
        }
        const json& r = field(parsed, "rollout");
        if (!r.is_object() || field(r, "id") != json(target.id))
            return finish(r.is_object() ? r : json(nullptr), kExitNotPromoted, "replaced");
        const std::string state = str(field(r, "state"));
        if (ended(r)) return finish(r, state == "promoted" ? kExitOk : kExitNotPromoted, state);

        // Progress.
        const std::string key = str(field(r, "step")) + "/" + state;
        const bool changed = key != lastKey;
        if (jsonEvents) {
            if (changed || Clock::now() - lastLine >= kPlainLineEvery) {
                event({{"event", "progress"},
                       {"state", state},
                       {"step", field(r, "step")},
                       {"steps_total", field(r, "steps_total")},
                       {"percent", field(r, "percent")},
                       {"split", field(r, "split")},
                       {"window", field(r, "window")}});
                lastLine = Clock::now();
            }
        } else if (tty) {
            std::printf("\r\033[K%s: %s", target.service.c_str(), rolloutProgressLine(r).c_str());
            std::fflush(stdout);
            liveLineShown = true;
        } else if (changed || Clock::now() - lastLine >= kPlainLineEvery) {
            std::printf("%s: %s\n", target.service.c_str(), rolloutProgressLine(r).c_str());
            std::fflush(stdout);
            lastLine = Clock::now();
        }
        if (changed && state == "awaiting_promote" && !jsonEvents) {
            endLine();
            std::printf("%s: the canary passed its last step; waiting for promote or rollout-abort\n",
                        target.service.c_str());
            std::fflush(stdout);
        }
        lastKey = key;

        pauseUntilNextPoll(kPollInterval, deadline);
    }
}

} // namespace switchyard::ctl
