#include "switchyard/admin/command_parser.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "switchyard/config/duration.h"
#include "switchyard/config/endpoint.h"

namespace switchyard::admin {

namespace {

using Tokens = std::vector<std::string_view>;

// The grammar, one row per command word. Positional arguments come first and in
// order; everything after them is an option (key=value or a bare word), in any order.
struct Grammar {
    std::string_view word;
    CommandKind kind;                            // the kind, or the first of a family (backend, pool)
    std::array<std::string_view, 3> positional;  // names for "missing X" messages; empty = unused
    bool optionalService = false;                // status [SERVICE]
    const char* usage;
};

constexpr std::array kGrammar{
    Grammar{"status", CommandKind::Status, {"SERVICE"}, true, "status [SERVICE]"},
    Grammar{"split", CommandKind::Split, {"SERVICE"}, false, "split SERVICE blue=W green=W"},
    Grammar{"cutover", CommandKind::Cutover, {"SERVICE", "COLOUR"}, false, "cutover SERVICE COLOUR"},
    Grammar{"rollback", CommandKind::Rollback, {"SERVICE"}, false, "rollback SERVICE"},
    Grammar{"backend", CommandKind::BackendWeight, {"SERVICE", "COLOUR", "ADDR"}, false,
            "backend SERVICE COLOUR ADDR weight=W|drain|disable|enable"},
    Grammar{"add", CommandKind::Add, {"SERVICE", "COLOUR", "ADDR"}, false,
            "add SERVICE COLOUR ADDR [weight=W]"},
    Grammar{"remove", CommandKind::Remove, {"SERVICE", "COLOUR", "ADDR"}, false,
            "remove SERVICE COLOUR ADDR"},
    Grammar{"pool", CommandKind::PoolOffline, {"SERVICE", "COLOUR"}, false,
            "pool SERVICE COLOUR offline|online"},
    Grammar{"rollout", CommandKind::Rollout, {"SERVICE"}, false,
            "rollout SERVICE to=COLOUR steps=N,N,... hold=DURATION [max_error_rate=R] "
            "[max_connect_p99=DURATION] [max_ttfb_p99=DURATION] [max_error_rate_vs_baseline=R] "
            "[min_connections=N] [max_hold=DURATION]"},
    Grammar{"rollout-status", CommandKind::RolloutStatus, {"SERVICE"}, false, "rollout-status SERVICE"},
    Grammar{"rollout-history", CommandKind::RolloutHistory, {"SERVICE"}, false, "rollout-history SERVICE"},
    Grammar{"rollout-pause", CommandKind::RolloutPause, {"SERVICE"}, false, "rollout-pause SERVICE"},
    Grammar{"rollout-resume", CommandKind::RolloutResume, {"SERVICE"}, false, "rollout-resume SERVICE"},
    Grammar{"rollout-abort", CommandKind::RolloutAbort, {"SERVICE"}, false, "rollout-abort SERVICE"},
    Grammar{"promote", CommandKind::Promote, {"SERVICE"}, false, "promote SERVICE"},
    Grammar{"reset", CommandKind::Reset, {"SERVICE"}, false, "reset SERVICE"},
    Grammar{"reload", CommandKind::Reload, {}, false, "reload"},
    Grammar{"reload-check", CommandKind::ReloadCheck, {}, false, "reload-check"},
    Grammar{"upgrade", CommandKind::Upgrade, {}, false, "upgrade [timeout=DURATION] [binary=PATH]"},
    Grammar{"help", CommandKind::Help, {}, false, "help"},
};

ParseError badArgument(std::string message) { return ParseError{"bad_argument", std::move(message)}; }

Tokens tokenize(std::string_view line) {
    Tokens tokens;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (i > start) tokens.push_back(line.substr(start, i - start));
    }
    return tokens;
}

template <typename T>
std::optional<T> parseUnsigned(std::string_view text) {
    // from_chars would accept neither a sign nor spaces, but says nothing about "", so check.
    if (text.empty()) return std::nullopt;
    for (char c : text)
        if (c < '0' || c > '9') return std::nullopt;
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// A plain decimal such as 0.01 or 2: no sign, no exponent, nothing that is not a finite number.
std::optional<double> parseDecimal(std::string_view text) {
    int digits = 0;
    int dots = 0;
    for (char c : text) {
        if (c >= '0' && c <= '9') ++digits;
        else if (c == '.') ++dots;
        else return std::nullopt;
    }
    if (digits == 0 || dots > 1) return std::nullopt;
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value)) return std::nullopt;
    return value;
}

std::optional<config::Colour> parseColour(std::string_view text) {
    if (text == "blue") return config::Colour::Blue;
    if (text == "green") return config::Colour::Green;
    return std::nullopt;
}

// Parses the tokens after the command word. Reports the first problem found,
// always naming the command and the token at fault.
class CommandReader {
public:
    CommandReader(const Grammar& grammar, Tokens args) : g_(grammar), args_(std::move(args)) {
        cmd_.kind = grammar.kind;
    }

    std::optional<ParseError> read() {
        if (auto err = readPositionals()) return err;
        for (std::size_t i = next_; i < args_.size(); ++i)
            if (auto err = readOption(args_[i])) return err;
        return finish();
    }

    Command& command() { return cmd_; }

private:
    std::string_view word() const { return g_.word; }

    ParseError fail(std::string what) const { return badArgument(fmt::format("{}: {}", word(), what)); }
    ParseError failWithUsage(std::string what) const {
        return badArgument(fmt::format("{}: {} (usage: {})", word(), what, g_.usage));
    }

    std::optional<ParseError> readPositionals() {
        for (std::string_view name : g_.positional) {
            if (name.empty()) break;
            // An option in a positional slot means the positional was left out.
            bool present = next_ < args_.size() && args_[next_].find('=') == std::string_view::npos;
            if (!present) {
                if (g_.optionalService) break;
                return failWithUsage(fmt::format("missing {}", name));
            }
            std::string_view tok = args_[next_++];
            if (name == "SERVICE") {
                cmd_.service = std::string(tok);
            } else if (name == "COLOUR") {
                auto colour = parseColour(tok);
                if (!colour) return fail(fmt::format("'{}' is not a colour (blue|green)", tok));
                cmd_.colour = colour;
            } else if (name == "ADDR") {
                std::string why;
                auto endpoint = config::parseEndpoint(tok, &why);
                if (!endpoint) {
                    return fail(why.empty() ? fmt::format("bad address '{}'", tok)
                                            : fmt::format("bad address '{}': {}", tok, why));
                }
                cmd_.backend = std::move(endpoint);
            }
        }
        return std::nullopt;
    }

    // Marks an option key as seen; a second one is an error.
    std::optional<ParseError> once(std::string_view key, std::string_view tok) {
        for (auto seen : seen_)
            if (seen == key) return fail(fmt::format("duplicate option '{}'", tok));
        seen_.push_back(key);
        return std::nullopt;
    }

    // backend and pool take exactly one action word (or weight=) among their options.
    std::optional<ParseError> action(CommandKind kind, std::string_view tok) {
        if (action_) return fail(fmt::format("'{}' conflicts with '{}' (one action per command)", tok, *action_));
        action_ = tok;
        cmd_.kind = kind;
        return std::nullopt;
    }

    std::optional<ParseError> readWeight(std::string_view tok, std::string_view value, uint32_t& out) {
        auto w = parseUnsigned<uint32_t>(value);
        if (!w || *w > config::kMaxWeight)
            return fail(fmt::format("weight '{}' is not a number 0..{}", tok, config::kMaxWeight));
        out = *w;
        return std::nullopt;
    }

    std::optional<ParseError> readOption(std::string_view tok) {
        auto eq = tok.find('=');
        std::string_view key = eq == std::string_view::npos ? tok : tok.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view{} : tok.substr(eq + 1);
        bool keyed = eq != std::string_view::npos;

        if ((keyed && key == "if-generation") || (!keyed && key == "force")) {
            if (!isChange(g_.kind))
                return fail(fmt::format("'{}' is accepted by changing commands only", tok));
            if (auto err = once(key, tok)) return err;
            if (!keyed) {
                cmd_.force = true;
                return std::nullopt;
            }
            auto gen = parseUnsigned<uint64_t>(value);
            if (!gen) return fail(fmt::format("'{}' is not a generation number (a non-negative integer)", tok));
            cmd_.ifGeneration = gen;
            return std::nullopt;
        }

        switch (g_.kind) {
        case CommandKind::Split:
            if (keyed && (key == "blue" || key == "green")) {
                if (auto err = once(key, tok)) return err;
                if (!cmd_.split) cmd_.split = config::Split{0, 0};
                auto colour = key == "blue" ? config::Colour::Blue : config::Colour::Green;
                return readWeight(tok, value, cmd_.split->weight(colour));
            }
            break;
        case CommandKind::BackendWeight:   // the backend family
            if (keyed && key == "weight") {
                if (auto err = once(key, tok)) return err;
                if (auto err = action(CommandKind::BackendWeight, tok)) return err;
                cmd_.weight = 0;
                return readWeight(tok, value, *cmd_.weight);
            }
            if (!keyed && (key == "drain" || key == "disable" || key == "enable")) {
                if (auto err = once(key, tok)) return err;
                auto kind = key == "drain"     ? CommandKind::BackendDrain
                            : key == "disable" ? CommandKind::BackendDisable
                                               : CommandKind::BackendEnable;
                return action(kind, tok);
            }
            break;
        case CommandKind::Add:
            if (keyed && key == "weight") {
                if (auto err = once(key, tok)) return err;
                cmd_.weight = 0;
                return readWeight(tok, value, *cmd_.weight);
            }
            break;
        case CommandKind::PoolOffline:     // the pool family
            if (!keyed && (key == "offline" || key == "online")) {
                if (auto err = once(key, tok)) return err;
                return action(key == "offline" ? CommandKind::PoolOffline : CommandKind::PoolOnline, tok);
            }
            break;
        case CommandKind::Rollout:
            if (keyed) return readRolloutOption(key, value, tok);
            break;
        case CommandKind::Upgrade:
            if (keyed && key == "timeout") {
                if (auto err = once(key, tok)) return err;
                auto d = config::parseDuration(value);
                if (!d || d->count() <= 0 || *d > config::kMaxDuration)
                    return fail(fmt::format("'{}' is not a positive duration such as 30s", tok));
                cmd_.timeout = d;
                return std::nullopt;
            }
            if (keyed && key == "binary") {
                if (auto err = once(key, tok)) return err;
                if (value.empty() || value.front() != '/') return fail(fmt::format("'{}' is not an absolute path", tok));
                cmd_.binary = std::string(value);
                return std::nullopt;
            }
            break;
        default:
            break;
        }
        if (keyed) return failWithUsage(fmt::format("unknown option '{}'", tok));
        return failWithUsage(fmt::format("unexpected argument '{}'", tok));
    }

    std::optional<ParseError> readDuration(std::string_view tok, std::string_view value,
                                           std::optional<config::Duration>& out) {
        auto d = config::parseDuration(value);
        if (!d || d->count() < 0)
            return fail(fmt::format("'{}' is not a duration (e.g. 500ms, 60s, 5m)", tok));
        if (*d > config::kMaxDuration)
            return fail(fmt::format("'{}' is longer than the limit of {}", tok, config::maxDurationText()));
        out = d;
        return std::nullopt;
    }

    std::optional<ParseError> readRolloutOption(std::string_view key, std::string_view value,
                                                std::string_view tok) {
        static constexpr std::array<std::string_view, 9> kKeys{
            "to", "steps", "hold", "max_error_rate", "max_connect_p99", "max_ttfb_p99",
            "max_error_rate_vs_baseline", "min_connections", "max_hold"};
        bool known = false;
        for (auto k : kKeys) known = known || k == key;
        if (!known) return failWithUsage(fmt::format("unknown option '{}'", tok));
        if (auto err = once(key, tok)) return err;

        RolloutRequest& r = rollout_;
        if (key == "to") {
            auto colour = parseColour(value);
            if (!colour) return fail(fmt::format("'{}' is not a colour (blue|green)", tok));
            r.to = *colour;
        } else if (key == "steps") {
            return readSteps(tok, value);
        } else if (key == "hold") {
            if (auto err = readDuration(tok, value, hold_)) return err;
            if (hold_->count() == 0) return fail(fmt::format("'{}' must be longer than 0", tok));
        } else if (key == "max_hold") {
            if (auto err = readDuration(tok, value, r.maxHold)) return err;
            if (r.maxHold->count() == 0) return fail(fmt::format("'{}' must be longer than 0", tok));
            maxHoldToken_ = tok;
        } else if (key == "max_connect_p99") {
            return readDuration(tok, value, r.maxConnectP99);
        } else if (key == "max_ttfb_p99") {
            return readDuration(tok, value, r.maxTtfbP99);
        } else if (key == "max_error_rate") {
            auto rate = parseDecimal(value);
            if (!rate) return fail(fmt::format("'{}' is not a non-negative decimal", tok));
            // An error rate is a fraction; "5" almost certainly meant 5%, and would never fail.
            if (*rate > 1.0) return fail(fmt::format("'{}' is not a fraction 0..1 (0.01 means 1%)", tok));
            r.maxErrorRate = rate;
        } else if (key == "max_error_rate_vs_baseline") {
            auto ratio = parseDecimal(value);
            if (!ratio) return fail(fmt::format("'{}' is not a non-negative decimal", tok));
            r.maxErrorRateVsBaseline = ratio;
        } else if (key == "min_connections") {
            auto n = parseUnsigned<uint32_t>(value);
            if (!n) return fail(fmt::format("'{}' is not a non-negative integer", tok));
            r.minConnections = *n;
        }
        return std::nullopt;
    }

    std::optional<ParseError> readSteps(std::string_view tok, std::string_view value) {
        std::vector<uint32_t> steps;
        std::size_t pos = 0;
        while (true) {
            auto comma = value.find(',', pos);
            std::string_view item = value.substr(pos, comma == std::string_view::npos ? value.npos : comma - pos);
            auto step = parseUnsigned<uint32_t>(item);
            if (!step || *step < 1 || *step > 100)
                return fail(fmt::format("step '{}' in '{}' is not an integer 1..100", item, tok));
            if (!steps.empty() && *step <= steps.back())
                return fail(fmt::format("steps in '{}' must strictly rise ({} after {})", tok, *step, steps.back()));
            steps.push_back(*step);
            if (comma == std::string_view::npos) break;
            pos = comma + 1;
        }
        rollout_.steps = std::move(steps);
        return std::nullopt;
    }

    bool seen(std::string_view key) const {
        for (auto k : seen_)
            if (k == key) return true;
        return false;
    }

    // Checks what no single option can: required options and combinations.
    std::optional<ParseError> finish() {
        switch (g_.kind) {
        case CommandKind::Split:
            for (std::string_view colour : {"blue", "green"})
                if (!seen(colour))
                    return failWithUsage(fmt::format("missing {}=W (split needs both blue= and green=)", colour));
            break;
        case CommandKind::BackendWeight:
            if (!action_) return failWithUsage("missing action (weight=W|drain|disable|enable)");
            break;
        case CommandKind::PoolOffline:
            if (!action_) return failWithUsage("missing state (offline|online)");
            break;
        case CommandKind::Rollout:
            for (std::string_view key : {"to", "steps", "hold"}) {
                if (seen(key)) continue;
                auto what = key == "to" ? "to=COLOUR" : key == "steps" ? "steps=N,N,..." : "hold=DURATION";
                return failWithUsage(fmt::format("missing {}", what));
            }
            rollout_.hold = *hold_;
            if (rollout_.maxHold && *rollout_.maxHold < rollout_.hold)
                return fail(fmt::format("'{}' is shorter than hold ({})", maxHoldToken_,
                                        config::formatDuration(rollout_.hold)));
            cmd_.rollout = std::move(rollout_);
            break;
        default:
            break;
        }
        return std::nullopt;
    }

    const Grammar& g_;
    Tokens args_;
    std::size_t next_ = 0;
    Command cmd_;
    std::vector<std::string_view> seen_;
    std::optional<std::string_view> action_;
    RolloutRequest rollout_;
    std::optional<config::Duration> hold_;
    std::string_view maxHoldToken_;
};

std::string buildHelpText() {
    std::string text;
    for (const auto& g : kGrammar) {
        // The full rollout syntax would fill three lines; its gates get a line of their own.
        if (g.kind == CommandKind::Rollout)
            text += "rollout SERVICE to=COLOUR steps=N,N,... hold=DURATION [GATE=VALUE...]\n";
        else
            text += std::string(g.usage) + "\n";
    }
    text += "  rollout gates: max_error_rate=R max_connect_p99=DURATION max_ttfb_p99=DURATION\n"
            "                 max_error_rate_vs_baseline=R min_connections=N max_hold=DURATION\n";
    text += "  changing commands also take if-generation=N and force; the read-only ones (status,\n"
            "  rollout-status, rollout-history, reload-check, help) take neither\n";
    return text;
}

} // namespace

std::variant<Command, ParseError> parseCommand(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > kMaxCommandLine) return badArgument("command line too long");
    for (std::size_t i = 0; i < line.size(); ++i) {
        auto c = static_cast<unsigned char>(line[i]);
        // ASCII only: replies echo tokens back, and JSON must stay valid UTF-8.
        if ((c < 0x20 && c != '\t') || c >= 0x7f)
            return badArgument(fmt::format("command contains a non-printable byte (0x{:02x} at offset {})", c, i));
    }

    Tokens tokens = tokenize(line);
    if (tokens.empty()) return badArgument("empty command");

    const Grammar* grammar = nullptr;
    for (const auto& g : kGrammar)
        if (g.word == tokens.front()) grammar = &g;
    if (!grammar)
        return ParseError{"unknown_command", fmt::format("unknown command '{}' (try 'help')", tokens.front())};

    CommandReader reader(*grammar, Tokens(tokens.begin() + 1, tokens.end()));
    if (auto err = reader.read()) return *std::move(err);
    return std::move(reader.command());
}

const char* helpText() {
    static const std::string text = buildHelpText();
    return text.c_str();
}

} // namespace switchyard::admin
