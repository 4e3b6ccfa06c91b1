// switchyardctl: the admin client. Joins COMMAND ARGS into one protocol line,
// sends it over the admin socket and prints the one-line JSON reply.

#include <unistd.h>

#include <cstdio>
#include <string>
#include <optional>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "switchyard/admin/command_parser.h"
#include "switchyard/daemon/build_info.h"

#include "admin_client.h"
#include "change_report.h"
#include "ctl_options.h"
#include "drain_waiter.h"
#include "fleet_waiter.h"
#include "reply_printer.h"
#include "rollout_waiter.h"

using namespace switchyard;
using namespace switchyard::ctl;
using nlohmann::json;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(10);
constexpr auto kUpgradeTimeout = std::chrono::seconds(60);   // the daemon's default for `upgrade`

// A typo (an unknown command, a malformed argument) is a usage error, exit 2,
// so a script can tell it from a refusal of a well-formed command (exit 1).
int exitCodeForRefusal(const std::string& code) {
    if (code == "generation_mismatch") return kExitGenerationMismatch;
    if (code == "unknown_command" || code == "bad_argument") return kExitUsage;
    return kExitFailure;
}

int usageError(const std::string& message) {
    std::fprintf(stderr, "switchyardctl: %s\n", message.c_str());
    return kExitUsage;
}

// What --wait waits for, or a usage error for commands it does not support.
// `fleet`: the daemon is a fleet member, where --wait on any change waits for every member.
std::variant<std::monostate, DrainTarget, RolloutWait, int> waitTarget(const std::string& line, const std::string& word,
                                                                       bool fleet) {
    auto parsed = admin::parseCommand(line);
    if (auto* err = std::get_if<admin::ParseError>(&parsed)) {
        // The daemon would say the same; saying it here spares a round trip.
        std::fprintf(stderr, "switchyardctl: %s (%s)\n", err->message.c_str(), err->code.c_str());
        return exitCodeForRefusal(err->code);
    }
    const auto& cmd = std::get<admin::Command>(parsed);
    switch (cmd.kind) {
    case admin::CommandKind::Cutover:
        return DrainTarget{cmd.service, config::other(*cmd.colour), std::nullopt};
    case admin::CommandKind::BackendDrain:
        return DrainTarget{cmd.service, *cmd.colour, cmd.backend};
    case admin::CommandKind::Rollout:
    case admin::CommandKind::RolloutStatus:   // attach to the running rollout
        return RolloutWait{cmd.service, 0};   // the id comes with the reply
    default: {
        if (fleet && admin::isChange(cmd.kind)) return std::monostate{};
        std::string what = word;
        if (cmd.kind == admin::CommandKind::BackendWeight || cmd.kind == admin::CommandKind::BackendDisable ||
            cmd.kind == admin::CommandKind::BackendEnable)
            what = "backend (only 'backend ... drain')";
        return usageError(fmt::format("--wait is not supported for {}", what));
    }
    }
}

// For a changing command, the status request that shows what it changed:
// `status SERVICE`, or `status` for a reload (it may touch every service).
std::optional<std::string> changeStatusRequest(const std::string& line) {
    auto parsed = admin::parseCommand(line);
    const auto* cmd = std::get_if<admin::Command>(&parsed);
    if (!cmd || !admin::isChange(cmd->kind)) return std::nullopt;
    return cmd->service.empty() ? std::string("status") : "status " + cmd->service;
}

// A status reply, or nothing when it cannot be had (the change itself will say why).
std::optional<json> fetchStatus(const AdminClient& client, const std::string& request, Clock::time_point deadline) {
    AdminReply reply = client.request(request, deadline);
    if (reply.status != AdminReply::Status::Ok) return std::nullopt;
    json parsed = json::parse(reply.line, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object() || parsed.value("ok", false) != true) return std::nullopt;
    return parsed;
}

} // namespace

int main(int argc, char** argv) {
    UsageError usage;
    auto options = parseCtlOptions(argc, argv, usage);
    if (!options) return usageError(usage.message);
    if (options->help) {
        std::fputs(usageText().c_str(), stdout);
        return kExitOk;
    }
    if (options->version) {
        std::fputs(daemon::versionReport("switchyardctl").c_str(), stdout);
        return kExitOk;
    }

    // `reload --check` and `diff` are spellings of the protocol's reload-check.
    if (options->check) {
        if (options->words.front() != "reload") return usageError("--check is only for reload (reload --check)");
        options->words.front() = "reload-check";
    }
    if (options->words.front() == "diff") options->words.front() = "reload-check";

    std::string line;
    for (const auto& word : options->words) {
        if (!line.empty()) line += ' ';
        line += word;
    }
    const bool upgrading = options->words.front() == "upgrade";
    if (options->binary && !upgrading) return usageError("--binary is only for upgrade");
    if (upgrading) {
        // --timeout bounds the hand-over itself; the reply may take that long.
        if (options->timeout) line += fmt::format(" timeout={}ms", options->timeout->count());
        if (options->binary) line += " binary=" + *options->binary;
    }
    // A newline inside an argument would smuggle a second command onto the socket.
    for (unsigned char c : line)
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return usageError("arguments must not contain control characters such as newlines");
    if (line.size() > admin::kMaxCommandLine)
        return usageError(fmt::format("command too long ({} bytes; the limit is {})", line.size(),
                                      admin::kMaxCommandLine));

    const std::string& word = options->words.front();
    std::optional<Clock::time_point> deadline;
    if (options->timeout) deadline = Clock::now() + *options->timeout;
    auto requestDeadline = Clock::now() + kRequestTimeout;
    if (upgrading) requestDeadline = Clock::now() + options->timeout.value_or(kUpgradeTimeout) + kRequestTimeout;
    if (deadline && *deadline < requestDeadline && !upgrading) requestDeadline = *deadline;

    applyConfigSocket(*options);
    auto where = resolveTarget(*options, usage);
    if (!where) return usageError(usage.message);
    AdminClient client(std::move(*where), &interruptRequested);

    std::optional<DrainTarget> target;
    std::optional<RolloutWait> rolloutTarget;
    std::optional<std::string> fleetWait;   // the service whose status shows the fleet
    if (options->wait) {
        // A fleet member (its status has "fleet"): --wait first waits until every member applied the change.
        const std::optional<std::string> statusOfChange = changeStatusRequest(line);
        if (statusOfChange)
            if (auto current = fetchStatus(client, *statusOfChange, requestDeadline); current && current->contains("fleet"))
                fleetWait = statusOfChange->size() > 7 ? statusOfChange->substr(7) : std::string();
        auto t = waitTarget(line, word, fleetWait.has_value());
        if (auto* code = std::get_if<int>(&t)) return *code;
        if (auto* r = std::get_if<RolloutWait>(&t)) rolloutTarget = *r;
        else if (auto* d = std::get_if<DrainTarget>(&t)) target = *d;
    }

    // A changing command is told as before -> after (change_report.h), so the
    // state before it is read first. --json prints only the reply line.
    std::optional<std::string> statusLine =
        options->json || upgrading ? std::nullopt : changeStatusRequest(line);
    std::optional<json> before;
    if (statusLine) before = fetchStatus(client, *statusLine, requestDeadline);

    AdminReply reply = client.request(line, requestDeadline);
    if (reply.status == AdminReply::Status::Unreachable) {
        if (client.target().tcp())
            std::fprintf(stderr, "switchyardctl: cannot reach switchyard at %s: %s (is admin.tcp set and the daemon "
                                 "running?)\n",
                         client.target().describe().c_str(), reply.error.c_str());
        else
            std::fprintf(stderr,
                         "switchyardctl: cannot reach switchyard at %s: %s (is the daemon running? set -s or "
                         "SWITCHYARD_SOCKET)\n",
                         client.socketPath().c_str(), reply.error.c_str());
        return kExitUnreachable;
    }
    if (reply.status != AdminReply::Status::Ok) {
        std::fprintf(stderr, "switchyardctl: %s (%s)\n", reply.error.c_str(), client.target().describe().c_str());
        return kExitFailure;
    }

    if (options->json) std::printf("%s\n", reply.line.c_str());
    json parsed = json::parse(reply.line, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("ok")) {
        std::string shown = reply.line.size() > 200 ? reply.line.substr(0, 200) + "..." : reply.line;
        std::fprintf(stderr, "switchyardctl: malformed reply from switchyard: %s\n", shown.c_str());
        return kExitFailure;
    }
    if (parsed["ok"] != true) {
        std::fprintf(stderr, "switchyardctl: %s\n", formatError(parsed).c_str());
        return exitCodeForRefusal(parsed.value("code", ""));
    }
    if (!options->json) {
        std::string out;
        if (word == "status") {
            out = formatStatus(parsed);
        } else if (word == "rollout-history") {
            out = formatRolloutHistory(parsed);
        } else if (word == "upgrade") {
            out = fmt::format("upgraded: pid {} (switchyard {}) serves now; pid {} drains {} connection(s)\n",
                              parsed.value("pid", 0), parsed.value("version", ""), parsed.value("previous_pid", 0),
                              parsed.value("draining_connections", 0));
        } else if (word == "reload-check") {
            json rest = parsed;
            rest.erase("services");
            rest.erase("applied");
            std::vector<std::string> changes;
            if (auto current = fetchStatus(client, "status", Clock::now() + kRequestTimeout))
                changes = describeChanges(*current, json{{"services", parsed["services"]}}, false);
            out = changes.empty() ? "reload-check: a reload would change no setting or override\n"
                                  : "reload-check: a reload would change (nothing applied):\n";
            for (const auto& change : changes) out += "  " + change + "\n";
            out += formatExtras(rest);
        } else {
            json rest = parsed;
            rest.erase("rollout");
            std::vector<std::string> changes;
            if (before)
                if (auto after = fetchStatus(client, *statusLine, Clock::now() + kRequestTimeout))
                    changes = describeChanges(*before, *after);
            if (before && changes.empty()) {
                // Accepted, but nothing an operator controls moved (e.g. enabling an enabled backend).
                const std::string who = rest.value("service", "");
                out = fmt::format("{}: no change\n", who.empty() ? word : who) + formatExtras(rest);
            } else if (changes.empty()) {
                out = formatChange(rest, word);
            } else {
                for (const auto& change : changes) out += change + "\n";
                out += formatExtras(rest);
            }
            // The rollout commands: then the rollout readably.
            if (parsed.contains("rollout")) out += formatRollout(parsed["rollout"]);
        }
        std::fputs(out.c_str(), stdout);
    }
    std::fflush(stdout);

    if (fleetWait) {
        installInterruptHandler();
        if (int code = waitForFleet(client, *fleetWait, deadline, !options->json); code != kExitOk) return code;
    }

    if (rolloutTarget) {
        const json& started = parsed["rollout"];
        if (word == "rollout-status") {
            // Attaching: nothing to follow, or a rollout that has already ended and says how.
            if (!started.is_object()) {
                std::fprintf(stderr, "switchyardctl: %s has no rollout to wait for\n", rolloutTarget->service.c_str());
                return kExitFailure;
            }
            if (started.value("active", true) == false)
                return started.value("state", "") == "promoted" ? kExitOk : kExitNotPromoted;
        }
        if (!started.is_object() || !started.contains("id")) {
            std::fprintf(stderr, "switchyardctl: the rollout reply carries no rollout id; cannot wait\n");
            return kExitFailure;
        }
        rolloutTarget->id = started["id"].get<uint64_t>();
        installInterruptHandler();
        return waitForRollout(client, *rolloutTarget, deadline, options->json);
    }

    if (!target) return kExitOk;
    // Only now: Ctrl-C before the command was answered keeps its usual meaning.
    installInterruptHandler();
    return waitForDrain(client, *target, deadline, !options->json);
}
