#include "switchyard/admin/command_parser.h"

#include <string>

#include <catch2/catch.hpp>

using namespace switchyard;
using namespace switchyard::admin;
using namespace std::chrono_literals;

namespace {

Command parseOk(std::string_view line) {
    auto result = parseCommand(line);
    if (auto* err = std::get_if<ParseError>(&result)) FAIL("'" << line << "' failed: " << err->code << ": " << err->message);
    return std::get<Command>(result);
}

ParseError parseErr(std::string_view line) {
    auto result = parseCommand(line);
    if (std::holds_alternative<Command>(result)) FAIL("'" << line << "' parsed but should not have");
    return std::get<ParseError>(result);
}

void requireBad(std::string_view line, const std::string& message) {
    INFO(line);
    auto err = parseErr(line);
    CHECK(err.code == "bad_argument");
    CHECK(err.message == message);
}

} // namespace

TEST_CASE("isChange tells changing commands from read-only ones", "[admin]") {
    CHECK_FALSE(isChange(CommandKind::Status));
    CHECK_FALSE(isChange(CommandKind::RolloutStatus));
    CHECK_FALSE(isChange(CommandKind::Help));
    for (auto kind : {CommandKind::Split, CommandKind::Cutover, CommandKind::Rollback, CommandKind::BackendWeight,
                      CommandKind::BackendDrain, CommandKind::BackendDisable, CommandKind::BackendEnable,
                      CommandKind::Add, CommandKind::Remove, CommandKind::PoolOffline, CommandKind::PoolOnline,
                      CommandKind::Rollout, CommandKind::RolloutPause, CommandKind::RolloutResume,
                      CommandKind::RolloutAbort, CommandKind::Promote, CommandKind::Reset, CommandKind::Reload})
        CHECK(isChange(kind));
}

TEST_CASE("toString gives the protocol word of every command", "[admin]") {
    CHECK(std::string(toString(CommandKind::Status)) == "status");
    CHECK(std::string(toString(CommandKind::BackendDrain)) == "backend");
    CHECK(std::string(toString(CommandKind::BackendWeight)) == "backend");
    CHECK(std::string(toString(CommandKind::PoolOnline)) == "pool");
    CHECK(std::string(toString(CommandKind::RolloutStatus)) == "rollout-status");
    CHECK(std::string(toString(CommandKind::RolloutAbort)) == "rollout-abort");
    CHECK(std::string(toString(CommandKind::Help)) == "help");
}

TEST_CASE("the toString of every parsed command is its first word", "[admin]") {
    for (const char* line :
         {"status", "split web blue=1 green=2", "cutover web green", "rollback web", "backend web blue 10.0.0.1:80 drain",
          "add web blue 10.0.0.1:80", "remove web blue 10.0.0.1:80", "pool web green offline",
          "rollout web to=green steps=50,100 hold=1m", "rollout-status web", "rollout-pause web", "rollout-resume web",
          "rollout-abort web", "promote web", "reset web", "reload", "help"}) {
        INFO(line);
        auto cmd = parseOk(line);
        std::string text = line;
        CHECK(text.substr(0, text.find(' ')) == toString(cmd.kind));
    }
}

TEST_CASE("status takes an optional service", "[admin]") {
    auto all = parseOk("status");
    CHECK(all.kind == CommandKind::Status);
    CHECK(all.service.empty());
    auto one = parseOk("status web");
    CHECK(one.service == "web");
    requireBad("status web api", "status: unexpected argument 'api' (usage: status [SERVICE])");
    requireBad("status web force", "status: 'force' is accepted by changing commands only");
    requireBad("status if-generation=3", "status: 'if-generation=3' is accepted by changing commands only");
}

TEST_CASE("tokens split on spaces and tabs, a trailing CR is ignored", "[admin]") {
    auto cmd = parseOk(" \tsplit\tweb   blue=90 \t green=10 \r");
    CHECK(cmd.kind == CommandKind::Split);
    CHECK(cmd.service == "web");
    CHECK(cmd.split == config::Split{90, 10});
    CHECK(parseOk("help\r").kind == CommandKind::Help);
}

TEST_CASE("empty, overlong and non-printable lines are refused", "[admin]") {
    requireBad("", "empty command");
    requireBad("   \t ", "empty command");
    requireBad("\r", "empty command");
    requireBad("status " + std::string(kMaxCommandLine, 'x'), "command line too long");
    // exactly the limit is fine (the service does not exist, but that is not the parser's business)
    CHECK(parseOk("status " + std::string(kMaxCommandLine - 7, 'x')).kind == CommandKind::Status);
    // the limit applies after the CR is dropped
    CHECK(parseOk("status " + std::string(kMaxCommandLine - 7, 'x') + "\r").kind == CommandKind::Status);
    requireBad(std::string("status w\0b", 10), "command contains a non-printable byte (0x00 at offset 8)");
    requireBad("status web\nreload", "command contains a non-printable byte (0x0a at offset 10)");
    requireBad("sta\rtus", "command contains a non-printable byte (0x0d at offset 3)");
    requireBad("status \x7f", "command contains a non-printable byte (0x7f at offset 7)");
    requireBad("status w\xc3\xa9", "command contains a non-printable byte (0xc3 at offset 8)");
}

TEST_CASE("an unknown command word is unknown_command", "[admin]") {
    auto err = parseErr("frobnicate web");
    CHECK(err.code == "unknown_command");
    CHECK(err.message == "unknown command 'frobnicate' (try 'help')");
    // words are case-sensitive
    CHECK(parseErr("STATUS").code == "unknown_command");
}

TEST_CASE("split sets both weights, in any order", "[admin]") {
    auto cmd = parseOk("split web blue=90 green=10");
    CHECK(cmd.kind == CommandKind::Split);
    CHECK(cmd.service == "web");
    REQUIRE(cmd.split);
    CHECK(cmd.split->blue == 90);
    CHECK(cmd.split->green == 10);
    CHECK_FALSE(cmd.ifGeneration);
    CHECK_FALSE(cmd.force);

    CHECK(parseOk("split web green=1000 blue=0").split == config::Split{0, 1000});
    CHECK(parseOk("split web blue=007 green=0").split == config::Split{7, 0});
}

TEST_CASE("split refuses a missing colour, bad weights, duplicates and unknown options", "[admin]") {
    const std::string usage = " (usage: split SERVICE blue=W green=W)";
    requireBad("split", "split: missing SERVICE" + usage);
    requireBad("split blue=1 green=2", "split: missing SERVICE" + usage);
    requireBad("split web", "split: missing blue=W (split needs both blue= and green=)" + usage);
    requireBad("split web blue=100", "split: missing green=W (split needs both blue= and green=)" + usage);
    requireBad("split web green=100", "split: missing blue=W (split needs both blue= and green=)" + usage);
    requireBad("split web blue=abc green=0", "split: weight 'blue=abc' is not a number 0..1000");
    requireBad("split web blue=1001 green=0", "split: weight 'blue=1001' is not a number 0..1000");
    requireBad("split web blue=-1 green=0", "split: weight 'blue=-1' is not a number 0..1000");
    requireBad("split web blue=+1 green=0", "split: weight 'blue=+1' is not a number 0..1000");
    requireBad("split web blue=1.5 green=0", "split: weight 'blue=1.5' is not a number 0..1000");
    requireBad("split web blue= green=0", "split: weight 'blue=' is not a number 0..1000");
    requireBad("split web blue=99999999999999999999 green=0",
               "split: weight 'blue=99999999999999999999' is not a number 0..1000");
    requireBad("split web blue=1 blue=2 green=0", "split: duplicate option 'blue=2'");
    requireBad("split web blue=1 green=2 red=3", "split: unknown option 'red=3'" + usage);
    requireBad("split web blue=1 green=2 90", "split: unexpected argument '90'" + usage);
    requireBad("split web 90 10", "split: unexpected argument '90'" + usage);
}

TEST_CASE("change commands take if-generation and force anywhere after the fixed arguments", "[admin]") {
    auto cmd = parseOk("split web if-generation=4 blue=1 force green=2");
    CHECK(cmd.ifGeneration == 4u);
    CHECK(cmd.force);
    CHECK(cmd.split == config::Split{1, 2});

    CHECK(parseOk("cutover web green if-generation=18446744073709551615").ifGeneration ==
          18446744073709551615ull);
    CHECK(parseOk("reload force").force);
    CHECK(parseOk("rollout-abort web if-generation=0").ifGeneration == 0u);

    requireBad("cutover web green if-generation=x",
               "cutover: 'if-generation=x' is not a generation number (a non-negative integer)");
    requireBad("cutover web green if-generation=-1",
               "cutover: 'if-generation=-1' is not a generation number (a non-negative integer)");
    requireBad("cutover web green if-generation=18446744073709551616",
               "cutover: 'if-generation=18446744073709551616' is not a generation number (a non-negative integer)");
    requireBad("cutover web green if-generation=", "cutover: 'if-generation=' is not a generation number (a non-negative integer)");
    requireBad("cutover web green if-generation=1 if-generation=2", "cutover: duplicate option 'if-generation=2'");
    requireBad("cutover web green force force", "cutover: duplicate option 'force'");
    requireBad("rollout-status web force", "rollout-status: 'force' is accepted by changing commands only");
    requireBad("help if-generation=1", "help: 'if-generation=1' is accepted by changing commands only");
    // the fixed arguments come first
    requireBad("cutover web if-generation=3 green",
               "cutover: missing COLOUR (usage: cutover SERVICE COLOUR)");
}

TEST_CASE("cutover takes a service and a colour", "[admin]") {
    auto cmd = parseOk("cutover web green");
    CHECK(cmd.kind == CommandKind::Cutover);
    CHECK(cmd.service == "web");
    CHECK(cmd.colour == config::Colour::Green);
    CHECK(parseOk("cutover web blue").colour == config::Colour::Blue);

    const std::string usage = " (usage: cutover SERVICE COLOUR)";
    requireBad("cutover", "cutover: missing SERVICE" + usage);
    requireBad("cutover web", "cutover: missing COLOUR" + usage);
    requireBad("cutover web red", "cutover: 'red' is not a colour (blue|green)");
    requireBad("cutover web Green", "cutover: 'Green' is not a colour (blue|green)");
    requireBad("cutover web green now", "cutover: unexpected argument 'now'" + usage);
    requireBad("cutover web green weight=1", "cutover: unknown option 'weight=1'" + usage);
}

TEST_CASE("commands that take only a service", "[admin]") {
    struct Case {
        const char* word;
        CommandKind kind;
    };
    for (auto [word, kind] : {Case{"rollback", CommandKind::Rollback}, Case{"rollout-status", CommandKind::RolloutStatus},
                              Case{"rollout-pause", CommandKind::RolloutPause},
                              Case{"rollout-resume", CommandKind::RolloutResume},
                              Case{"rollout-abort", CommandKind::RolloutAbort}, Case{"promote", CommandKind::Promote},
                              Case{"reset", CommandKind::Reset}}) {
        std::string w = word;
        INFO(w);
        auto cmd = parseOk(w + " api");
        CHECK(cmd.kind == kind);
        CHECK(cmd.service == "api");
        CHECK_FALSE(cmd.colour);
        const std::string usage = " (usage: " + w + " SERVICE)";
        requireBad(w, w + ": missing SERVICE" + usage);
        requireBad(w + " api extra", w + ": unexpected argument 'extra'" + usage);
    }
    CHECK(parseOk("rollback web force if-generation=9").ifGeneration == 9u);
}

TEST_CASE("reload and help take no arguments", "[admin]") {
    CHECK(parseOk("reload").kind == CommandKind::Reload);
    CHECK(parseOk("help").kind == CommandKind::Help);
    requireBad("reload web", "reload: unexpected argument 'web' (usage: reload)");
    requireBad("reload x=1", "reload: unknown option 'x=1' (usage: reload)");
    requireBad("help split", "help: unexpected argument 'split' (usage: help)");
}

TEST_CASE("backend takes one action: weight, drain, disable or enable", "[admin]") {
    auto w = parseOk("backend web blue 10.0.0.11:8080 weight=50");
    CHECK(w.kind == CommandKind::BackendWeight);
    CHECK(w.service == "web");
    CHECK(w.colour == config::Colour::Blue);
    REQUIRE(w.backend);
    CHECK(w.backend->host == "10.0.0.11");
    CHECK(w.backend->port == 8080);
    CHECK(w.weight == 50u);

    CHECK(parseOk("backend web green [::1]:9000 drain").kind == CommandKind::BackendDrain);
    CHECK(parseOk("backend web green [::1]:9000 drain").backend->ipv6);
    CHECK(parseOk("backend web green 10.0.0.1:80 disable").kind == CommandKind::BackendDisable);
    auto enable = parseOk("backend web green 10.0.0.1:80 force enable if-generation=2");
    CHECK(enable.kind == CommandKind::BackendEnable);
    CHECK(enable.force);
    CHECK(enable.ifGeneration == 2u);
    CHECK_FALSE(enable.weight);

    const std::string usage = " (usage: backend SERVICE COLOUR ADDR weight=W|drain|disable|enable)";
    requireBad("backend web", "backend: missing COLOUR" + usage);
    requireBad("backend web blue", "backend: missing ADDR" + usage);
    requireBad("backend web blue weight=5", "backend: missing ADDR" + usage);
    requireBad("backend web blue 10.0.0.1:80", "backend: missing action (weight=W|drain|disable|enable)" + usage);
    requireBad("backend web purple 10.0.0.1:80 drain", "backend: 'purple' is not a colour (blue|green)");
    requireBad("backend web blue 10.0.0.1:80 weight=1001", "backend: weight 'weight=1001' is not a number 0..1000");
    requireBad("backend web blue 10.0.0.1:80 drain disable",
               "backend: 'disable' conflicts with 'drain' (one action per command)");
    requireBad("backend web blue 10.0.0.1:80 weight=5 drain",
               "backend: 'drain' conflicts with 'weight=5' (one action per command)");
    requireBad("backend web blue 10.0.0.1:80 drain drain", "backend: duplicate option 'drain'");
    requireBad("backend web blue 10.0.0.1:80 weight=1 weight=2", "backend: duplicate option 'weight=2'");
    requireBad("backend web blue 10.0.0.1:80 pause", "backend: unexpected argument 'pause'" + usage);
    requireBad("backend web blue 10.0.0.1:80 drain=1", "backend: unknown option 'drain=1'" + usage);
}

TEST_CASE("a bad backend address names the token", "[admin]") {
    for (const char* line : {"backend web blue localhost:80 drain", "backend web blue 10.0.0.1 drain",
                             "backend web blue 10.0.0.1:99999 drain", "backend web blue 10.0.0.1:0 drain",
                             "backend web blue ::1:80 drain"}) {
        INFO(line);
        auto err = parseErr(line);
        CHECK(err.code == "bad_argument");
        std::string token = std::string(line).substr(17);
        token = token.substr(0, token.find(' '));
        CHECK_THAT(err.message, Catch::StartsWith("backend: bad address '" + token + "'"));
    }
}

TEST_CASE("add takes an address and an optional weight", "[admin]") {
    auto cmd = parseOk("add web green 10.0.0.21:8080");
    CHECK(cmd.kind == CommandKind::Add);
    CHECK(cmd.colour == config::Colour::Green);
    CHECK(cmd.backend->toString() == "10.0.0.21:8080");
    CHECK_FALSE(cmd.weight);
    CHECK(parseOk("add web green 10.0.0.21:8080 weight=0").weight == 0u);

    const std::string usage = " (usage: add SERVICE COLOUR ADDR [weight=W])";
    requireBad("add web green", "add: missing ADDR" + usage);
    requireBad("add web green 10.0.0.21:8080 weight=x", "add: weight 'weight=x' is not a number 0..1000");
    requireBad("add web green 10.0.0.21:8080 weight=1 weight=1", "add: duplicate option 'weight=1'");
    requireBad("add web green 10.0.0.21:8080 drain", "add: unexpected argument 'drain'" + usage);
}

TEST_CASE("remove takes an address and nothing else", "[admin]") {
    auto cmd = parseOk("remove web blue 10.0.0.11:8080");
    CHECK(cmd.kind == CommandKind::Remove);
    CHECK(cmd.backend->port == 8080);
    const std::string usage = " (usage: remove SERVICE COLOUR ADDR)";
    requireBad("remove web blue", "remove: missing ADDR" + usage);
    requireBad("remove web blue 10.0.0.11:8080 weight=3", "remove: unknown option 'weight=3'" + usage);
}

TEST_CASE("pool takes offline or online", "[admin]") {
    auto off = parseOk("pool web green offline");
    CHECK(off.kind == CommandKind::PoolOffline);
    CHECK(off.colour == config::Colour::Green);
    CHECK(parseOk("pool web green online").kind == CommandKind::PoolOnline);

    const std::string usage = " (usage: pool SERVICE COLOUR offline|online)";
    requireBad("pool web green", "pool: missing state (offline|online)" + usage);
    requireBad("pool web offline", "pool: 'offline' is not a colour (blue|green)");
    requireBad("pool web green offline online", "pool: 'online' conflicts with 'offline' (one action per command)");
    requireBad("pool web green down", "pool: unexpected argument 'down'" + usage);
}

TEST_CASE("rollout with only the required options", "[admin]") {
    auto cmd = parseOk("rollout web to=green steps=1,5,25,50,100 hold=60s");
    CHECK(cmd.kind == CommandKind::Rollout);
    CHECK(cmd.service == "web");
    REQUIRE(cmd.rollout);
    const auto& r = *cmd.rollout;
    CHECK(r.to == config::Colour::Green);
    CHECK(r.steps == std::vector<uint32_t>{1, 5, 25, 50, 100});
    CHECK(r.hold == 60s);
    CHECK_FALSE(r.maxErrorRate);
    CHECK_FALSE(r.maxConnectP99);
    CHECK_FALSE(r.maxTtfbP99);
    CHECK_FALSE(r.maxErrorRateVsBaseline);
    CHECK(r.minConnections == 100);
    CHECK_FALSE(r.maxHold);
}

TEST_CASE("rollout with every gate, in any order", "[admin]") {
    auto cmd = parseOk(
        "rollout web max_hold=4m hold=30s to=blue max_error_rate=0.01 max_connect_p99=50ms max_ttfb_p99=200ms "
        "max_error_rate_vs_baseline=2.0 min_connections=0 steps=10 if-generation=7 force");
    REQUIRE(cmd.rollout);
    const auto& r = *cmd.rollout;
    CHECK(r.to == config::Colour::Blue);
    CHECK(r.steps == std::vector<uint32_t>{10});
    CHECK(r.hold == 30s);
    CHECK(r.maxHold == std::chrono::milliseconds(240000));
    CHECK(r.maxErrorRate == Approx(0.01));
    CHECK(r.maxConnectP99 == 50ms);
    CHECK(r.maxTtfbP99 == 200ms);
    CHECK(r.maxErrorRateVsBaseline == Approx(2.0));
    CHECK(r.minConnections == 0);
    CHECK(cmd.ifGeneration == 7u);
    CHECK(cmd.force);

    CHECK(parseOk("rollout web to=green steps=100 hold=1s max_error_rate=0").rollout->maxErrorRate == 0.0);
    CHECK(parseOk("rollout web to=green steps=100 hold=1s max_error_rate=1").rollout->maxErrorRate == 1.0);
    CHECK(parseOk("rollout web to=green steps=100 hold=1s max_error_rate_vs_baseline=.5")
              .rollout->maxErrorRateVsBaseline == 0.5);
    CHECK(parseOk("rollout web to=green steps=100 hold=1s max_connect_p99=0").rollout->maxConnectP99 == 0ms);
    CHECK(parseOk("rollout web to=green steps=100 hold=1m max_hold=1m").rollout->maxHold == 60s);
}

TEST_CASE("rollout refuses missing, malformed and duplicate options", "[admin]") {
    const std::string usage =
        " (usage: rollout SERVICE to=COLOUR steps=N,N,... hold=DURATION [max_error_rate=R] "
        "[max_connect_p99=DURATION] [max_ttfb_p99=DURATION] [max_error_rate_vs_baseline=R] "
        "[min_connections=N] [max_hold=DURATION])";
    requireBad("rollout", "rollout: missing SERVICE" + usage);
    requireBad("rollout to=green steps=1 hold=1s", "rollout: missing SERVICE" + usage);
    requireBad("rollout web steps=1 hold=1s", "rollout: missing to=COLOUR" + usage);
    requireBad("rollout web to=green hold=1s", "rollout: missing steps=N,N,..." + usage);
    requireBad("rollout web to=green steps=1", "rollout: missing hold=DURATION" + usage);

    requireBad("rollout web to=red steps=1 hold=1s", "rollout: 'to=red' is not a colour (blue|green)");
    requireBad("rollout web to=green steps=0,5 hold=1s", "rollout: step '0' in 'steps=0,5' is not an integer 1..100");
    requireBad("rollout web to=green steps=5,101 hold=1s",
               "rollout: step '101' in 'steps=5,101' is not an integer 1..100");
    requireBad("rollout web to=green steps=5,,10 hold=1s", "rollout: step '' in 'steps=5,,10' is not an integer 1..100");
    requireBad("rollout web to=green steps=5, hold=1s", "rollout: step '' in 'steps=5,' is not an integer 1..100");
    requireBad("rollout web to=green steps= hold=1s", "rollout: step '' in 'steps=' is not an integer 1..100");
    requireBad("rollout web to=green steps=1.5 hold=1s", "rollout: step '1.5' in 'steps=1.5' is not an integer 1..100");
    requireBad("rollout web to=green steps=5,5 hold=1s", "rollout: steps in 'steps=5,5' must strictly rise (5 after 5)");
    requireBad("rollout web to=green steps=50,25,100 hold=1s",
               "rollout: steps in 'steps=50,25,100' must strictly rise (25 after 50)");

    requireBad("rollout web to=green steps=1 hold=soon", "rollout: 'hold=soon' is not a duration (e.g. 500ms, 60s, 5m)");
    requireBad("rollout web to=green steps=1 hold=", "rollout: 'hold=' is not a duration (e.g. 500ms, 60s, 5m)");
    requireBad("rollout web to=green steps=1 hold=0s", "rollout: 'hold=0s' must be longer than 0");
    requireBad("rollout web to=green steps=1 hold=8761h",
               "rollout: 'hold=8761h' is longer than the limit of 365 days (8760h)");
    requireBad("rollout web to=green steps=1 hold=2562047788015h",
               "rollout: 'hold=2562047788015h' is longer than the limit of 365 days (8760h)");
    requireBad("rollout web to=green steps=1 hold=1s max_hold=99999999999999999999ms",
               "rollout: 'max_hold=99999999999999999999ms' is longer than the limit of 365 days (8760h)");
    CHECK(parseOk("rollout web to=green steps=1 hold=8760h").rollout->hold == 8760h);
    requireBad("rollout web to=green steps=1 hold=1s max_hold=0", "rollout: 'max_hold=0' must be longer than 0");
    requireBad("rollout web to=green steps=1 hold=1m max_hold=30s", "rollout: 'max_hold=30s' is shorter than hold (1m)");
    requireBad("rollout web to=green steps=1 hold=1s max_connect_p99=fast",
               "rollout: 'max_connect_p99=fast' is not a duration (e.g. 500ms, 60s, 5m)");
    requireBad("rollout web to=green steps=1 hold=1s max_ttfb_p99=-5ms",
               "rollout: 'max_ttfb_p99=-5ms' is not a duration (e.g. 500ms, 60s, 5m)");

    requireBad("rollout web to=green steps=1 hold=1s max_error_rate=abc",
               "rollout: 'max_error_rate=abc' is not a non-negative decimal");
    requireBad("rollout web to=green steps=1 hold=1s max_error_rate=-0.1",
               "rollout: 'max_error_rate=-0.1' is not a non-negative decimal");
    requireBad("rollout web to=green steps=1 hold=1s max_error_rate=1e-3",
               "rollout: 'max_error_rate=1e-3' is not a non-negative decimal");
    requireBad("rollout web to=green steps=1 hold=1s max_error_rate=0.0.1",
               "rollout: 'max_error_rate=0.0.1' is not a non-negative decimal");
    requireBad("rollout web to=green steps=1 hold=1s max_error_rate=.",
               "rollout: 'max_error_rate=.' is not a non-negative decimal");
    requireBad("rollout web to=green steps=1 hold=1s max_error_rate=5",
               "rollout: 'max_error_rate=5' is not a fraction 0..1 (0.01 means 1%)");
    requireBad("rollout web to=green steps=1 hold=1s max_error_rate_vs_baseline=nan",
               "rollout: 'max_error_rate_vs_baseline=nan' is not a non-negative decimal");
    requireBad("rollout web to=green steps=1 hold=1s min_connections=lots",
               "rollout: 'min_connections=lots' is not a non-negative integer");
    requireBad("rollout web to=green steps=1 hold=1s min_connections=4294967296",
               "rollout: 'min_connections=4294967296' is not a non-negative integer");

    requireBad("rollout web to=green to=blue steps=1 hold=1s", "rollout: duplicate option 'to=blue'");
    requireBad("rollout web to=green steps=1 hold=1s hold=2s", "rollout: duplicate option 'hold=2s'");
    requireBad("rollout web to=green steps=1 hold=1s max_latency=5ms", "rollout: unknown option 'max_latency=5ms'" + usage);
    requireBad("rollout web to=green steps=1 hold=1s now", "rollout: unexpected argument 'now'" + usage);
}

TEST_CASE("help text has one line per command and names every command", "[admin]") {
    std::string text = helpText();
    REQUIRE_FALSE(text.empty());
    CHECK(text.back() == '\n');
    int commandLines = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string line = text.substr(pos, nl - pos);
        CHECK(line.size() <= 100);
        // notes are indented; each unindented line is one command, and parses as that command's word
        if (line[0] != ' ') {
            ++commandLines;
            auto word = line.substr(0, line.find(' '));
            auto result = parseCommand(word);
            CHECK_FALSE((std::holds_alternative<ParseError>(result) &&
                         std::get<ParseError>(result).code == "unknown_command"));
        }
        pos = nl + 1;
    }
    CHECK(commandLines == 20);
    for (const char* syntax :
         {"status [SERVICE]", "split SERVICE blue=W green=W", "cutover SERVICE COLOUR", "rollback SERVICE",
          "backend SERVICE COLOUR ADDR weight=W|drain|disable|enable", "add SERVICE COLOUR ADDR [weight=W]",
          "remove SERVICE COLOUR ADDR", "pool SERVICE COLOUR offline|online",
          "rollout SERVICE to=COLOUR steps=N,N,... hold=DURATION", "rollout-status SERVICE", "rollout-history SERVICE", "rollout-pause SERVICE",
          "rollout-resume SERVICE", "rollout-abort SERVICE", "promote SERVICE", "reset SERVICE", "\nreload\n", "\nreload-check\n", "upgrade [timeout=DURATION] [binary=PATH]",
          "\nhelp\n", "if-generation=N", "force", "max_error_rate=R", "max_connect_p99=DURATION", "max_ttfb_p99=DURATION",
          "max_error_rate_vs_baseline=R", "min_connections=N", "max_hold=DURATION"}) {
        INFO(syntax);
        CHECK(text.find(syntax) != std::string::npos);
    }
}

TEST_CASE("upgrade takes an optional timeout and an absolute binary path", "[admin]") {
    auto plain = parseOk("upgrade");
    CHECK(plain.kind == CommandKind::Upgrade);
    CHECK_FALSE(plain.timeout);
    CHECK(plain.binary.empty());
    CHECK(isChange(CommandKind::Upgrade));   // the admin level only

    auto full = parseOk("upgrade timeout=30s binary=/usr/sbin/switchyard");
    REQUIRE(full.timeout);
    CHECK(full.timeout->count() == 30000);
    CHECK(full.binary == "/usr/sbin/switchyard");

    requireBad("upgrade timeout=soon", "upgrade: 'timeout=soon' is not a positive duration such as 30s");
    requireBad("upgrade timeout=0", "upgrade: 'timeout=0' is not a positive duration such as 30s");
    requireBad("upgrade binary=switchyard", "upgrade: 'binary=switchyard' is not an absolute path");
    requireBad("upgrade timeout=1s timeout=2s", "upgrade: duplicate option 'timeout=2s'");
    requireBad("upgrade now", "upgrade: unexpected argument 'now' (usage: upgrade [timeout=DURATION] [binary=PATH])");
}
