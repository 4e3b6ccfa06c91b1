#include "switchyard/config/config_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "test_paths.h"

using namespace std::chrono_literals;
using namespace switchyard::config;

namespace {

Config load(const std::string& yaml) {
    auto r = loadConfigString(yaml, "t.yaml");
    INFO(yaml);
    INFO(r.errorText());
    REQUIRE(r.ok());
    return std::move(r).value();
}

// All error lines; the config must fail.
std::string errors(const std::string& yaml) {
    auto r = loadConfigString(yaml, "t.yaml");
    INFO(yaml);
    REQUIRE_FALSE(r.ok());
    return r.errorText();
}

// A valid service on lines 1-6; `extra` starts at line 7 with the service's keys
// indented four spaces, so a value after "    key: " sits at column 4 + len(key) + 3.
std::string service(const std::string& extra = "") {
    return "services:\n"
           "  - name: web\n"
           "    listen: 127.0.0.1:8080\n"
           "    pools:\n"
           "      blue:\n"
           "        - { address: 127.0.0.1:9001 }\n" +
           extra;
}

// A valid one-service config followed by top-level keys starting at line 7.
std::string top(const std::string& extra) { return service() + extra; }

} // namespace

// --- example files, defaults ---------------------------------------------------------------

TEST_CASE("config/switchyard.yaml, the full example, loads", "[config][loader]") {
    std::string path = test::sourcePath("config/switchyard.yaml");
    auto r = loadConfigFile(path);
    INFO(r.errorText());
    REQUIRE(r.ok());
    const Config& c = *r;
    CHECK(c.sourcePath == path);
    CHECK(c.admin.socket == "/run/switchyard/admin.sock");
    CHECK(c.admin.socketMode == 0660u);
    CHECK_FALSE(c.admin.tcp);
    REQUIRE(c.metrics.listen);
    CHECK(c.metrics.listen->toString() == "127.0.0.1:9911");
    CHECK(c.stateFile == "/var/lib/switchyard/state.json");
    CHECK(c.workers == 0);
    CHECK(c.engine == Engine::Auto);
    CHECK(c.splice);
    CHECK(c.shutdownGrace == 5s);
    CHECK(c.log.level == LogLevel::Info);
    CHECK_FALSE(c.log.accessLog);
    REQUIRE(c.services.size() == 1);
    const ServiceConfig& s = c.services[0];
    CHECK(s.name == "web");
    CHECK(s.listen.toString() == "0.0.0.0:8080");
    CHECK(s.balance == Balance::RoundRobin);
    CHECK(s.affinity == Affinity::None);
    CHECK(s.split == Split{100, 0});
    CHECK(s.drainTimeout == 30s);
    CHECK(s.drainSpread == 3s);
    CHECK(s.timeouts.connect == 2s);
    CHECK(s.timeouts.idle == 300s);
    CHECK(s.retries == 2);
    CHECK(s.maxConnections == 20000);
    CHECK(s.proxyProtocol == ProxyProtocol::None);
    CHECK(s.health.type == HealthType::Tcp);
    CHECK(s.health.interval == 2s);
    CHECK(s.health.timeout == 1s);
    CHECK(s.health.rise == 2);
    CHECK(s.health.fall == 3);
    CHECK(s.fallback.minHealthy == MinHealthy{1, false});
    CHECK(s.fallback.restore == Restore::Manual);
    CHECK(s.fallback.hold == 30s);
    REQUIRE(s.pool(Colour::Blue).size() == 2);
    CHECK(s.pool(Colour::Blue)[0].address.toString() == "127.0.0.1:9001");
    CHECK(s.pool(Colour::Blue)[1].address.toString() == "127.0.0.1:9002");
    CHECK(s.pool(Colour::Blue)[1].weight == 100);
    REQUIRE(s.pool(Colour::Green).size() == 2);
    CHECK(s.pool(Colour::Green)[1].address.toString() == "127.0.0.1:9004");
    CHECK(c.findService("web") == &c.services[0]);
}

TEST_CASE("config/minimal.yaml loads and every other key takes its default", "[config][loader]") {
    auto r = loadConfigFile(test::sourcePath("config/minimal.yaml"));
    INFO(r.errorText());
    REQUIRE(r.ok());
    const Config& c = *r;
    REQUIRE(c.services.size() == 1);

    // Everything but name, listen and pools equals a default-constructed service.
    ServiceConfig expected;
    expected.name = "web";
    expected.listen = *parseEndpoint("127.0.0.1:8080");
    expected.pool(Colour::Blue).push_back({*parseEndpoint("127.0.0.1:9001"), 100});
    CHECK(c.services[0] == expected);

    Config defaults;
    CHECK(c.admin == defaults.admin);
    CHECK(c.metrics == defaults.metrics);
    CHECK_FALSE(c.metrics.listen);
    CHECK(c.stateFile == defaults.stateFile);
    CHECK(c.workers == defaults.workers);
    CHECK(c.engine == defaults.engine);
    CHECK(c.shutdownGrace == defaults.shutdownGrace);
    CHECK(c.log == defaults.log);
}

TEST_CASE("an empty file and an empty services list are valid", "[config][loader]") {
    CHECK(load("").services.empty());
    CHECK(load("# nothing here\n").services.empty());
    CHECK(load("services: []\n").services.empty());
    CHECK(load("services:\n").services.empty());
    CHECK(load("log: { level: debug }\n").log.level == LogLevel::Debug);
}

TEST_CASE("loadConfigString leaves sourcePath empty", "[config][loader]") {
    CHECK(load(service()).sourcePath.empty());
}

// --- files and syntax ------------------------------------------------------------------------

TEST_CASE("a missing or unreadable file says so", "[config][loader]") {
    auto r = loadConfigFile("/nonexistent/switchyard.yaml");
    REQUIRE_FALSE(r.ok());
    CHECK(r.errorText() == "cannot read /nonexistent/switchyard.yaml: No such file or directory");

    auto dir = loadConfigFile("/");
    REQUIRE_FALSE(dir.ok());
    CHECK(dir.errorText() == "cannot read /: not a regular file");
}

TEST_CASE("a FIFO at the config path is refused at once, not waited on", "[config][loader]") {
    const std::string path = "/tmp/switchyard-loader-test-fifo-" + std::to_string(::getpid());
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    auto r = loadConfigFile(path);   // would block until a writer came without the type check
    ::unlink(path.c_str());
    REQUIRE_FALSE(r.ok());
    CHECK(r.errorText() == "cannot read " + path + ": not a regular file");
}

TEST_CASE("errors from a file name the file", "[config][loader]") {
    char tmpl[] = "/tmp/switchyard-config-test-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    std::string body = "workers: lots\n";
    REQUIRE(write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size()));
    close(fd);
    auto r = loadConfigFile(tmpl);
    unlink(tmpl);
    REQUIRE_FALSE(r.ok());
    CHECK(r.errorText() == std::string(tmpl) + ":1:10: workers: expected auto or an integer 1..256, got 'lots'");
}

TEST_CASE("a YAML syntax error gives file, line and column", "[config][loader]") {
    CHECK(errors("services:\n  - name: web\n    listen: [::1]:8080\n") ==
          "t.yaml:3:18: YAML syntax error: end of map not found");
    CHECK(errors("log: {level: info\n") == "t.yaml:2:1: YAML syntax error: end of map flow not found");
}

TEST_CASE("only one YAML document is accepted", "[config][loader]") {
    CHECK(errors("workers: 2\n---\nworkers: 3\n") == "t.yaml:3:1: expected one YAML document, found 2");
}

TEST_CASE("the top level must be a map", "[config][loader]") {
    CHECK(errors("- a\n- b\n") == "t.yaml:1:1: expected a map, got a list");
    CHECK(errors("hello\n") == "t.yaml:1:1: expected a map, got 'hello'");
}

// --- keys ------------------------------------------------------------------------------------

TEST_CASE("unknown keys are errors, with a hint when close to a known one", "[config][loader]") {
    CHECK(errors(top("workerz: 2\n")) == "t.yaml:7:1: workerz: unknown key 'workerz'; did you mean 'workers'?");
    CHECK(errors(top("colour: blue\n")) == "t.yaml:7:1: colour: unknown key 'colour'");
    CHECK(errors(service("    listn: 127.0.0.1:8081\n")) ==
          "t.yaml:7:5: services[0].listn: unknown key 'listn'; did you mean 'listen'?");
    CHECK(errors(service("    health: { intervall: 2s }\n")) ==
          "t.yaml:7:15: services[0].health.intervall: unknown key 'intervall'; did you mean 'interval'?");
    CHECK(errors(top("admin: { sockett: /run/a.sock }\n")) ==
          "t.yaml:7:10: admin.sockett: unknown key 'sockett'; did you mean 'socket'?");
    CHECK(errors(top("metrics: { port: 9911 }\n")) == "t.yaml:7:12: metrics.port: unknown key 'port'");
    CHECK(errors(top("log: { format: json }\n")) == "t.yaml:7:8: log.format: unknown key 'format'");
}

TEST_CASE("a key given twice is an error", "[config][loader]") {
    CHECK(errors(top("workers: 2\nworkers: 3\n")) == "t.yaml:8:1: workers: duplicate key 'workers' (first at line 7)");
}

TEST_CASE("every error is reported, in file order", "[config][loader]") {
    std::string yaml = "workers: 0\n"
                       "services:\n"
                       "  - name: web\n"
                       "    listen: 127.0.0.1:70000\n"
                       "    retries: many\n"
                       "    pools:\n"
                       "      blue:\n"
                       "        - { address: 127.0.0.1:9001, weight: 1001 }\n"
                       "engine: uring\n";
    CHECK(errors(yaml) == "t.yaml:1:10: workers: 0 is out of range 1..256\n"
                          "t.yaml:4:13: services[0].listen: port 70000 out of range 1..65535\n"
                          "t.yaml:5:14: services[0].retries: expected an integer, got 'many'\n"
                          "t.yaml:8:46: services[0].pools.blue[0].weight: 1001 is out of range 0..1000\n"
                          "t.yaml:9:9: engine: expected auto, io_uring or epoll, got 'uring'");
}

// --- services: required keys, name, listen ---------------------------------------------------

TEST_CASE("name, listen and pools are required", "[config][loader]") {
    CHECK(errors("services:\n  - balance: hash\n") ==
          "t.yaml:2:5: services[0]: missing required key 'name'\n"
          "t.yaml:2:5: services[0]: missing required key 'listen'\n"
          "t.yaml:2:5: services[0]: missing required key 'pools'");
    CHECK(errors("services:\n  - name: web\n    pools: {}\n") ==
          "t.yaml:2:5: services[0]: missing required key 'listen'");
    CHECK(errors("services:\n  -\n") == "t.yaml:3:1: services[0]: expected a service (a map with name, listen and pools), got an empty value");
    CHECK(errors("services: web\n") == "t.yaml:1:11: services: expected a list of services, got 'web'");
    CHECK(errors("services:\n  - web\n") == "t.yaml:2:5: services[0]: expected a map, got 'web'");
}

TEST_CASE("service names are checked and unique", "[config][loader]") {
    auto bad = [](const std::string& name) {
        return errors("services:\n  - name: " + name + "\n    listen: 127.0.0.1:8080\n    pools: {}\n");
    };
    CHECK(bad("\"my web\"") == "t.yaml:2:11: services[0].name: 'my web' is not a valid name (1 to 64 of A-Z a-z 0-9 _ . -)");
    CHECK(bad("web/1") == "t.yaml:2:11: services[0].name: 'web/1' is not a valid name (1 to 64 of A-Z a-z 0-9 _ . -)");
    CHECK(bad("\"\"") == "t.yaml:2:11: services[0].name: '' is not a valid name (1 to 64 of A-Z a-z 0-9 _ . -)");
    CHECK(bad(std::string(65, 'a')) ==
          "t.yaml:2:11: services[0].name: '" + std::string(60, 'a') +
              "...' is not a valid name (1 to 64 of A-Z a-z 0-9 _ . -)");
    CHECK(bad("[web]") == "t.yaml:2:11: services[0].name: expected a name, got a list");
    CHECK(load("services:\n  - name: " + std::string(64, 'a') + "\n    listen: 127.0.0.1:8080\n    pools: {}\n")
              .services[0].name.size() == 64);
    CHECK(load("services:\n  - name: Web_1.a-b\n    listen: 127.0.0.1:8080\n    pools: {}\n").services[0].name ==
          "Web_1.a-b");

    CHECK(errors("services:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    pools: {}\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8081\n"
                 "    pools: {}\n") ==
          "t.yaml:5:11: services[1].name: service name 'web' is already used by services[0].name, line 2");
}

TEST_CASE("listen addresses are checked and unique", "[config][loader]") {
    auto bad = [](const std::string& listen) {
        return errors("services:\n  - name: web\n    listen: " + listen + "\n    pools: {}\n");
    };
    CHECK(bad("localhost:8080") == "t.yaml:3:13: services[0].listen: 'localhost' is not a numeric IPv4 or [IPv6] address");
    CHECK(bad("127.0.0.1") == "t.yaml:3:13: services[0].listen: missing port");
    CHECK(bad("8080") == "t.yaml:3:13: services[0].listen: missing address (write 0.0.0.0:8080 or 127.0.0.1:8080)");
    CHECK(bad("127.0.0.1:0") == "t.yaml:3:13: services[0].listen: port 0 out of range 1..65535");
    CHECK(bad("[::1]") == "t.yaml:3:13: services[0].listen: expected an address like 127.0.0.1:8080, got a list "
                          "(quote IPv6 addresses: \"[::1]:8080\")");
    CHECK(load("services:\n  - name: web\n    listen: \"[::1]:8080\"\n    pools: {}\n").services[0].listen.toString() ==
          "[::1]:8080");

    std::string two = "services:\n"
                      "  - name: a\n"
                      "    listen: 127.0.0.1:8080\n"
                      "    pools: {}\n"
                      "  - name: b\n"
                      "    listen: ";
    CHECK(errors(two + "127.0.0.1:8080\n    pools: {}\n") ==
          "t.yaml:6:13: services[1].listen: address 127.0.0.1:8080 is already used by services[0].listen, line 3");
    CHECK(errors(two + "0.0.0.0:8080\n    pools: {}\n") ==
          "t.yaml:6:13: services[1].listen: address 0.0.0.0:8080 overlaps 127.0.0.1:8080 (services[0].listen, line 3)");
    CHECK(load(two + "127.0.0.2:8080\n    pools: {}\n").services.size() == 2);
    CHECK(load(two + "127.0.0.1:8081\n    pools: {}\n").services.size() == 2);
}

// --- enumerations ----------------------------------------------------------------------------

TEST_CASE("word-valued keys take exactly the documented words", "[config][loader]") {
    auto s = load(service("    balance: leastconn\n    affinity: client\n    proxy_protocol: v2\n")).services[0];
    CHECK(s.balance == Balance::LeastConn);
    CHECK(s.affinity == Affinity::Client);
    CHECK(s.proxyProtocol == ProxyProtocol::V2);
    CHECK(load(service("    balance: hash\n    proxy_protocol: v1\n")).services[0].balance == Balance::Hash);

    CHECK(errors(service("    balance: leastcon\n")) ==
          "t.yaml:7:14: services[0].balance: expected roundrobin, leastconn or hash, got 'leastcon' (did you mean 'leastconn'?)");
    CHECK(errors(service("    balance: random\n")) ==
          "t.yaml:7:14: services[0].balance: expected roundrobin, leastconn or hash, got 'random'");
    CHECK(errors(service("    affinity: sticky\n")) ==
          "t.yaml:7:15: services[0].affinity: expected none or client, got 'sticky'");
    CHECK(errors(service("    proxy_protocol: v3\n")) ==
          "t.yaml:7:21: services[0].proxy_protocol: expected none, v1 or v2, got 'v3' (did you mean 'v1'?)");
    CHECK(errors(service("    balance: [hash]\n")) ==
          "t.yaml:7:14: services[0].balance: expected one of roundrobin, leastconn or hash, got a list");

    CHECK(load(top("engine: io_uring\n")).engine == Engine::IoUring);
    CHECK(load(top("engine: epoll\n")).engine == Engine::Epoll);
    CHECK(errors(top("engine: uring\n")) == "t.yaml:7:9: engine: expected auto, io_uring or epoll, got 'uring'");
    CHECK_FALSE(load(top("splice: off\n")).splice);
    CHECK(load(top("splice: auto\n")).splice);
    CHECK(errors(top("splice: yes\n")) == "t.yaml:7:9: splice: expected auto or off, got 'yes'");

    for (auto [word, level] : {std::pair{"trace", LogLevel::Trace}, {"debug", LogLevel::Debug},
                               {"info", LogLevel::Info}, {"warn", LogLevel::Warn}, {"error", LogLevel::Error},
                               {"critical", LogLevel::Critical}, {"off", LogLevel::Off}}) {
        CHECK(load(top(std::string("log: { level: ") + word + " }\n")).log.level == level);
    }
    CHECK(errors(top("log: { level: warning }\n")) ==
          "t.yaml:7:15: log.level: expected trace, debug, info, warn, error, critical or off, got 'warning'");
}

TEST_CASE("booleans are true or false", "[config][loader]") {
    CHECK(load(top("log: { access_log: true }\n")).log.accessLog);
    CHECK_FALSE(load(top("log: { access_log: false }\n")).log.accessLog);
    CHECK(errors(top("log: { access_log: yes }\n")) == "t.yaml:7:20: log.access_log: expected true or false, got 'yes'");
    CHECK(errors(top("log: { access_log: 1 }\n")) == "t.yaml:7:20: log.access_log: expected true or false, got '1'");
}

TEST_CASE("workers is auto or 1..256", "[config][loader]") {
    CHECK(load(top("workers: auto\n")).workers == 0);
    CHECK(load(top("workers: 1\n")).workers == 1);
    CHECK(load(top("workers: 256\n")).workers == 256);
    CHECK(errors(top("workers: 0\n")) == "t.yaml:7:10: workers: 0 is out of range 1..256");
    CHECK(errors(top("workers: 257\n")) == "t.yaml:7:10: workers: 257 is out of range 1..256");
    CHECK(errors(top("workers: many\n")) == "t.yaml:7:10: workers: expected auto or an integer 1..256, got 'many'");
    CHECK(errors(top("workers: 2.5\n")) == "t.yaml:7:10: workers: expected auto or an integer 1..256, got '2.5'");
}

// --- split and pools -------------------------------------------------------------------------

TEST_CASE("split takes both colours, 0..1000, not both 0", "[config][loader]") {
    CHECK(load(service("    split: { blue: 90, green: 10 }\n")).services[0].split == Split{90, 10});
    CHECK(load(service("    split: { green: 100 }\n")).services[0].split == Split{0, 100});
    CHECK(load(service("    split: { blue: 7 }\n")).services[0].split == Split{7, 0});
    CHECK(load(service("    split: { blue: 1000, green: 1000 }\n")).services[0].split == Split{1000, 1000});
    CHECK(errors(service("    split: { blue: 0, green: 0 }\n")) ==
          "t.yaml:7:12: services[0].split: split gives no routable weight (blue and green are both 0)");
    CHECK(errors(service("    split: { green: 0 }\n")) ==
          "t.yaml:7:12: services[0].split: split gives no routable weight (blue and green are both 0)");
    CHECK(errors(service("    split: { blue: 1001 }\n")) == "t.yaml:7:20: services[0].split.blue: 1001 is out of range 0..1000");
    CHECK(errors(service("    split: { blue: -1 }\n")) == "t.yaml:7:20: services[0].split.blue: -1 is out of range 0..1000");
    CHECK(errors(service("    split: { blue: half }\n")) == "t.yaml:7:20: services[0].split.blue: expected an integer, got 'half'");
    CHECK(errors(service("    split: { red: 5 }\n")) == "t.yaml:7:14: services[0].split.red: unknown key 'red'");
    CHECK(errors(service("    split: 50\n")) == "t.yaml:7:12: services[0].split: expected a map, got '50'");
}

TEST_CASE("pools hold blue and green lists of backends", "[config][loader]") {
    std::string head = "services:\n  - name: web\n    listen: 127.0.0.1:8080\n";
    auto s = load(head +
                  "    pools:\n"
                  "      blue:\n"
                  "        - { address: 127.0.0.1:9001, weight: 0 }\n"
                  "        - address: 127.0.0.1:9002\n"
                  "          weight: 1000\n"
                  "      green:\n"
                  "        - { address: \"[::1]:9003\" }\n")
                 .services[0];
    REQUIRE(s.pool(Colour::Blue).size() == 2);
    CHECK(s.pool(Colour::Blue)[0].weight == 0);
    CHECK(s.pool(Colour::Blue)[1].weight == 1000);
    REQUIRE(s.pool(Colour::Green).size() == 1);
    CHECK(s.pool(Colour::Green)[0].weight == 100);
    CHECK(s.pool(Colour::Green)[0].address.toString() == "[::1]:9003");

    // Either pool may be absent, empty or null.
    CHECK(load(head + "    pools: {}\n").services[0].pools[0].empty());
    CHECK(load(head + "    pools: { blue: [], green: [] }\n").services[0].pools[1].empty());
    CHECK(load(head + "    pools:\n      green:\n").services[0].pools[1].empty());
    CHECK(load(head + "    pools:\n").services[0].pools[0].empty());

    CHECK(errors(head + "    pools: { red: [] }\n") ==
          "t.yaml:4:14: services[0].pools.red: unknown key 'red' (pools are blue and green)");
    CHECK(errors(head + "    pools: { gren: [] }\n") ==
          "t.yaml:4:14: services[0].pools.gren: unknown key 'gren'; did you mean 'green'?");
    CHECK(errors(head + "    pools: [127.0.0.1:9001]\n") == "t.yaml:4:12: services[0].pools: expected a map, got a list");
    CHECK(errors(head + "    pools: { blue: 127.0.0.1:9001 }\n") ==
          "t.yaml:4:20: services[0].pools.blue: expected a list of backends, got '127.0.0.1:9001'");
    CHECK(errors(head + "    pools: { blue: [127.0.0.1:9001] }\n") ==
          "t.yaml:4:21: services[0].pools.blue[0]: expected a backend { address: A, weight: W }, got '127.0.0.1:9001'");
    CHECK(errors(head + "    pools: { blue: [{ weight: 5 }] }\n") ==
          "t.yaml:4:21: services[0].pools.blue[0]: missing required key 'address'");
    CHECK(errors(head + "    pools: { blue: [{ address: 127.0.0.1:9001, weight: 1001 }] }\n") ==
          "t.yaml:4:56: services[0].pools.blue[0].weight: 1001 is out of range 0..1000");
    CHECK(errors(head + "    pools: { blue: [{ address: 127.0.0.1:9001, weight: heavy }] }\n") ==
          "t.yaml:4:56: services[0].pools.blue[0].weight: expected an integer, got 'heavy'");
    CHECK(errors(head + "    pools: { blue: [{ address: backend1:80 }] }\n") ==
          "t.yaml:4:32: services[0].pools.blue[0].address: 'backend1' is not a numeric IPv4 or [IPv6] address");
    CHECK(errors(head + "    pools: { blue: [{ address: 127.0.0.1:9001, port: 80 }] }\n") ==
          "t.yaml:4:48: services[0].pools.blue[0].port: unknown key 'port'");
}

TEST_CASE("a backend address may appear once per service", "[config][loader]") {
    std::string head = "services:\n  - name: web\n    listen: 127.0.0.1:8080\n";
    CHECK(errors(head +
                 "    pools:\n"
                 "      blue:\n"
                 "        - { address: 127.0.0.1:9001 }\n"
                 "        - { address: 127.0.0.1:9002 }\n"
                 "      green:\n"
                 "        - { address: 127.0.0.1:9002 }\n") ==
          "t.yaml:9:22: services[0].pools.green[0].address: backend 127.0.0.1:9002 is already listed at "
          "services[0].pools.blue[1].address, line 7");
    CHECK(errors(head +
                 "    pools:\n"
                 "      blue:\n"
                 "        - { address: \"[::1]:9001\" }\n"
                 "        - { address: \"[0::1]:9001\" }\n") ==
          "t.yaml:7:22: services[0].pools.blue[1].address: backend [::1]:9001 is already listed at "
          "services[0].pools.blue[0].address, line 6");
    // Two services may share a backend.
    CHECK(load("services:\n"
               "  - { name: a, listen: 127.0.0.1:8080, pools: { blue: [{ address: 127.0.0.1:9001 }] } }\n"
               "  - { name: b, listen: 127.0.0.1:8081, pools: { blue: [{ address: 127.0.0.1:9001 }] } }\n")
              .services.size() == 2);
}

// --- durations -------------------------------------------------------------------------------

TEST_CASE("service durations and their limits", "[config][loader]") {
    auto s = load(service("    drain_timeout: 1m\n    drain_spread: 1.5s\n    timeouts: { connect: 250ms, idle: 1h }\n"))
                 .services[0];
    CHECK(s.drainTimeout == 60s);
    CHECK(s.drainSpread == 1500ms);
    CHECK(s.timeouts.connect == 250ms);
    CHECK(s.timeouts.idle == 1h);

    // drain_spread defaults to a tenth of drain_timeout.
    CHECK(load(service("    drain_timeout: 60s\n")).services[0].drainSpread == 6s);
    auto zero = load(service("    drain_timeout: 0\n")).services[0];
    CHECK(zero.drainTimeout == 0s);
    CHECK(zero.drainSpread == 0s);
    CHECK(load(service("    drain_timeout: 10s\n    drain_spread: 10s\n")).services[0].drainSpread == 10s);

    CHECK(errors(service("    drain_timeout: 10s\n    drain_spread: 11s\n")) ==
          "t.yaml:8:19: services[0].drain_spread: 11s is longer than drain_timeout 10s");
    CHECK(errors(service("    drain_spread: 31s\n")) ==
          "t.yaml:7:19: services[0].drain_spread: 31s is longer than drain_timeout 30s");
    CHECK(errors(service("    drain_timeout: -1s\n")) ==
          "t.yaml:7:20: services[0].drain_timeout: durations cannot be negative, got '-1s'");
    CHECK(errors(service("    drain_timeout: 30\n")) ==
          "t.yaml:7:20: services[0].drain_timeout: '30' has no unit; write 30s or 30ms (units: ms, s, m, h)");
    CHECK(errors(service("    drain_timeout: soon\n")) ==
          "t.yaml:7:20: services[0].drain_timeout: expected a duration like 250ms, 2s, 5m or 1h, got 'soon'");
    CHECK(errors(service("    timeouts: { connect: 0 }\n")) ==
          "t.yaml:7:26: services[0].timeouts.connect: must be greater than 0, got '0'");
    CHECK(errors(service("    timeouts: { idle: 0s }\n")) ==
          "t.yaml:7:23: services[0].timeouts.idle: must be greater than 0, got '0s'");
    CHECK(errors(service("    timeouts: { connect: [2s] }\n")) ==
          "t.yaml:7:26: services[0].timeouts.connect: expected a duration, got a list");
    CHECK(errors(service("    timeouts: 2s\n")) == "t.yaml:7:15: services[0].timeouts: expected a map, got '2s'");

    CHECK(load(top("shutdown_grace: 0\n")).shutdownGrace == 0s);
    CHECK(load(top("shutdown_grace: 2m\n")).shutdownGrace == 2min);
    CHECK(errors(top("shutdown_grace: -5s\n")) ==
          "t.yaml:7:17: shutdown_grace: durations cannot be negative, got '-5s'");
}

// --- counts ----------------------------------------------------------------------------------

TEST_CASE("retries and max_connections ranges", "[config][loader]") {
    CHECK(load(service("    retries: 0\n")).services[0].retries == 0);
    CHECK(load(service("    retries: 20\n")).services[0].retries == 20);
    CHECK(errors(service("    retries: 21\n")) == "t.yaml:7:14: services[0].retries: 21 is out of range 0..20");
    CHECK(errors(service("    retries: -1\n")) == "t.yaml:7:14: services[0].retries: -1 is out of range 0..20");
    CHECK(errors(service("    retries: 99999999999999999999\n")) ==
          "t.yaml:7:14: services[0].retries: '99999999999999999999' is out of range 0..20");
    CHECK(errors(service("    retries:\n")) == "t.yaml:7:5: services[0].retries: expected an integer, got an empty value");

    CHECK(load(service("    max_connections: 1\n")).services[0].maxConnections == 1);
    CHECK(load(service("    max_connections: 1000000\n")).services[0].maxConnections == 1000000);
    CHECK(errors(service("    max_connections: 0\n")) ==
          "t.yaml:7:22: services[0].max_connections: 0 is out of range 1..1000000");
    CHECK(errors(service("    max_connections: 1000001\n")) ==
          "t.yaml:7:22: services[0].max_connections: 1000001 is out of range 1..1000000");
    CHECK(errors(service("    max_connections: 1e6\n")) ==
          "t.yaml:7:22: services[0].max_connections: expected an integer, got '1e6'");
}

// --- health ----------------------------------------------------------------------------------

TEST_CASE("health checks: type, timing, counts", "[config][loader]") {
    auto h = load(service("    health: { type: tcp, interval: 5s, timeout: 5s, rise: 1, fall: 100 }\n")).services[0].health;
    CHECK(h.type == HealthType::Tcp);
    CHECK(h.interval == 5s);
    CHECK(h.timeout == 5s);
    CHECK(h.rise == 1);
    CHECK(h.fall == 100);

    CHECK(errors(service("    health: { type: udp }\n")) ==
          "t.yaml:7:21: services[0].health.type: expected tcp, send_expect or http, got 'udp' (did you mean 'tcp'?)");
    CHECK(errors(service("    health: { interval: 0 }\n")) ==
          "t.yaml:7:25: services[0].health.interval: must be greater than 0, got '0'");
    CHECK(errors(service("    health: { timeout: 0ms }\n")) ==
          "t.yaml:7:24: services[0].health.timeout: must be greater than 0, got '0ms'");
    CHECK(errors(service("    health: { interval: 1s, timeout: 1500ms }\n")) ==
          "t.yaml:7:38: services[0].health.timeout: timeout 1500ms is longer than interval 1s");
    // The default timeout (1s) against a shorter interval: reported at the interval.
    CHECK(errors(service("    health: { interval: 500ms }\n")) ==
          "t.yaml:7:25: services[0].health.timeout: timeout 1s is longer than interval 500ms");
    CHECK(errors(service("    health: { rise: 0 }\n")) == "t.yaml:7:21: services[0].health.rise: 0 is out of range 1..100");
    CHECK(errors(service("    health: { fall: 101 }\n")) == "t.yaml:7:21: services[0].health.fall: 101 is out of range 1..100");
    CHECK(errors(service("    health: tcp\n")) == "t.yaml:7:13: services[0].health: expected a map, got 'tcp'");
}

TEST_CASE("http health checks", "[config][loader]") {
    auto h = load(service("    health: { type: http }\n")).services[0].health;
    CHECK(h.type == HealthType::Http);
    CHECK(h.http.path == "/healthz");
    CHECK(h.http.expectStatus == 200);

    h = load(service("    health:\n      type: http\n      http: { path: \"/ready?full=1\", expect_status: 204 }\n"))
            .services[0].health;
    CHECK(h.http.path == "/ready?full=1");
    CHECK(h.http.expectStatus == 204);

    CHECK(errors(service("    health:\n      http: { path: healthz }\n")) ==
          "t.yaml:8:21: services[0].health.http.path: must start with '/', got 'healthz'");
    CHECK(errors(service("    health:\n      http: { path: \"/a b\" }\n")) ==
          "t.yaml:8:21: services[0].health.http.path: must not contain spaces or control characters");
    CHECK(errors(service("    health:\n      http: { expect_status: 600 }\n")) ==
          "t.yaml:8:30: services[0].health.http.expect_status: 600 is out of range 100..599");
    CHECK(errors(service("    health:\n      http: { expect_status: 99 }\n")) ==
          "t.yaml:8:30: services[0].health.http.expect_status: 99 is out of range 100..599");
}

TEST_CASE("send_expect health checks", "[config][loader]") {
    auto h = load(service("    health:\n      type: send_expect\n      send_expect: { send: \"PING\\r\\n\", expect: PONG }\n"))
                 .services[0].health;
    CHECK(h.type == HealthType::SendExpect);
    CHECK(h.sendExpect.send == "PING\r\n");
    CHECK(h.sendExpect.expect == "PONG");
    // send may be left out: the check then only reads what the backend says first.
    CHECK(load(service("    health:\n      type: send_expect\n      send_expect: { expect: \"220 \" }\n"))
              .services[0].health.sendExpect.send.empty());

    CHECK(errors(service("    health:\n      type: send_expect\n")) ==
          "t.yaml:8:13: services[0].health.send_expect: required when type is send_expect: "
          "{ send: \"...\", expect: \"...\" }");
    CHECK(errors(service("    health:\n      send_expect: { send: PING, expect: \"\" }\n")) ==
          "t.yaml:8:42: services[0].health.send_expect.expect: must not be empty");
    CHECK(errors(service("    health:\n      send_expect: { send: PING }\n")) ==
          "t.yaml:8:20: services[0].health.send_expect.expect: must not be empty");
    CHECK(errors(service("    health:\n      send_expect: { expect: [PONG] }\n")) ==
          "t.yaml:8:30: services[0].health.send_expect.expect: expected a string, got a list");
}

// --- fallback --------------------------------------------------------------------------------

TEST_CASE("fallback: min_healthy count or percent, restore, hold", "[config][loader]") {
    auto f = load(service("    fallback: { min_healthy: 3, restore: auto, hold: 0 }\n")).services[0].fallback;
    CHECK(f.minHealthy == MinHealthy{3, false});
    CHECK(f.restore == Restore::Auto);
    CHECK(f.hold == 0s);
    CHECK(load(service("    fallback: { min_healthy: 50% }\n")).services[0].fallback.minHealthy == MinHealthy{50, true});
    CHECK(load(service("    fallback: { min_healthy: \"100%\" }\n")).services[0].fallback.minHealthy ==
          MinHealthy{100, true});
    CHECK(load(service("    fallback: { min_healthy: 0 }\n")).services[0].fallback.minHealthy == MinHealthy{0, false});

    CHECK(errors(service("    fallback: { min_healthy: 101% }\n")) ==
          "t.yaml:7:30: services[0].fallback.min_healthy: '101%' is out of range 0%..100%");
    CHECK(errors(service("    fallback: { min_healthy: -1 }\n")) ==
          "t.yaml:7:30: services[0].fallback.min_healthy: '-1' is out of range 0..1000000");
    CHECK(errors(service("    fallback: { min_healthy: half }\n")) ==
          "t.yaml:7:30: services[0].fallback.min_healthy: expected a count or a percentage like \"50%\", got 'half'");
    CHECK(errors(service("    fallback: { min_healthy: \"%\" }\n")) ==
          "t.yaml:7:30: services[0].fallback.min_healthy: expected a count or a percentage like \"50%\", got '%'");
    CHECK(errors(service("    fallback: { restore: never }\n")) ==
          "t.yaml:7:26: services[0].fallback.restore: expected manual or auto, got 'never'");
    CHECK(errors(service("    fallback: { hold: -1m }\n")) ==
          "t.yaml:7:23: services[0].fallback.hold: durations cannot be negative, got '-1m'");
}

// --- admin, metrics, state file ---------------------------------------------------------------

TEST_CASE("admin socket and its mode", "[config][loader]") {
    auto a = load(top("admin: { socket: /run/sy/admin.sock, socket_mode: \"0600\" }\n")).admin;
    CHECK(a.socket == "/run/sy/admin.sock");
    CHECK(a.socketMode == 0600u);
    CHECK(load(top("admin: { socket_mode: 0640 }\n")).admin.socketMode == 0640u);   // unquoted: still octal
    CHECK(load(top("admin: { socket: \"\" }\n")).admin.socket.empty());
    CHECK(load(top("admin:\n")).admin == AdminConfig{});

    CHECK(errors(top("admin: { socket: admin.sock }\n")) ==
          "t.yaml:7:18: admin.socket: must be an absolute path, got 'admin.sock'");
    CHECK(errors(top("admin: { socket: /" + std::string(107, 'a') + " }\n")) ==
          "t.yaml:7:18: admin.socket: unix socket paths are limited to 107 bytes, this one has 108");
    CHECK(errors(top("admin: { socket_mode: \"0666\" }\n")) ==
          "t.yaml:7:23: admin.socket_mode: '0666' lets every local user send admin commands (world-writable); "
          "use 0660 and the socket's group");
    CHECK(errors(top("admin: { socket_mode: \"0680\" }\n")) ==
          "t.yaml:7:23: admin.socket_mode: expected an octal mode like \"0660\", got '0680'");
    CHECK(errors(top("admin: { socket_mode: \"4660\" }\n")) ==
          "t.yaml:7:23: admin.socket_mode: expected an octal mode like \"0660\", got '4660'");
    CHECK(errors(top("admin: { socket_mode: rw }\n")) ==
          "t.yaml:7:23: admin.socket_mode: expected an octal mode like \"0660\", got 'rw'");
    CHECK(errors(top("admin: /run/a.sock\n")) == "t.yaml:7:8: admin: expected a map, got '/run/a.sock'");
}

TEST_CASE("admin tcp needs a token file", "[config][loader]") {
    auto a = load(top("admin: { tcp: 127.0.0.1:9901, token_file: /etc/switchyard/admin.token }\n")).admin;
    REQUIRE(a.tcp);
    CHECK(a.tcp->toString() == "127.0.0.1:9901");
    CHECK(a.tokenFile == "/etc/switchyard/admin.token");

    CHECK(errors(top("admin: { tcp: 127.0.0.1:9901 }\n")) == "t.yaml:7:15: admin.tcp: the admin TCP listener needs admin.token_file");
    CHECK(errors(top("admin: { tcp: 127.0.0.1:9901, token_file: \"\" }\n")) ==
          "t.yaml:7:15: admin.tcp: the admin TCP listener needs admin.token_file");
    CHECK(errors(top("admin: { tcp: 127.0.0.1:9901, token_file: admin.token }\n")) ==
          "t.yaml:7:43: admin.token_file: must be an absolute path, got 'admin.token'");
    CHECK(errors(top("admin: { tcp: 127.0.0.1, token_file: /t }\n")) == "t.yaml:7:15: admin.tcp: missing port");
    CHECK(errors(top("admin: { tcp: 127.0.0.1:8080, token_file: /t }\n")) ==
          "t.yaml:7:15: admin.tcp: address 127.0.0.1:8080 is already used by services[0].listen, line 3");
}

TEST_CASE("metrics listen address", "[config][loader]") {
    CHECK_FALSE(load(service()).metrics.listen);
    CHECK_FALSE(load(top("metrics:\n")).metrics.listen);
    CHECK_FALSE(load(top("metrics: {}\n")).metrics.listen);
    auto m = load(top("metrics: { listen: \"[::]:9911\" }\n")).metrics;
    REQUIRE(m.listen);
    CHECK(m.listen->toString() == "[::]:9911");
    CHECK(errors(top("metrics: { listen: 9911 }\n")) ==
          "t.yaml:7:20: metrics.listen: missing address (write 0.0.0.0:9911 or 127.0.0.1:9911)");
    CHECK(errors(top("metrics: { listen: 0.0.0.0:8080 }\n")) ==
          "t.yaml:7:20: metrics.listen: address 0.0.0.0:8080 overlaps 127.0.0.1:8080 (services[0].listen, line 3)");
}

TEST_CASE("state_file is an absolute path, or \"\" / none for no persistence", "[config][loader]") {
    CHECK(load(top("state_file: /tmp/sy/state.json\n")).stateFile == "/tmp/sy/state.json");
    CHECK(load(top("state_file: \"\"\n")).stateFile.empty());
    CHECK(load(top("state_file: none\n")).stateFile.empty());
    CHECK(load(top("state_file:\n")).stateFile.empty());
    CHECK(errors(top("state_file: state.json\n")) ==
          "t.yaml:7:13: state_file: must be an absolute path, \"\" or none, got 'state.json'");
    CHECK(errors(top("state_file: [a]\n")) == "t.yaml:7:13: state_file: expected a path, got a list");
}

TEST_CASE("fleet: etcd URLs, prefix, instance, lease_ttl, dial_timeout", "[config][loader][fleet]") {
    CHECK_FALSE(load(service()).fleet.enabled());
    auto f = load(top("fleet:\n  etcd: [http://10.0.0.5:2379, \"http://[::1]:2381/\", http://etcd-a]\n"
                      "  prefix: /switchyard/web-tier/\n  instance: lb-1\n  lease_ttl: 5s\n  dial_timeout: 500ms\n"))
                 .fleet;
    REQUIRE(f.enabled());
    REQUIRE(f.etcd.size() == 3);
    CHECK(f.etcd[0] == EtcdEndpoint{"10.0.0.5", 2379});
    CHECK(f.etcd[1] == EtcdEndpoint{"::1", 2381});
    CHECK(f.etcd[2] == EtcdEndpoint{"etcd-a", 2379});
    CHECK(f.prefix == "/switchyard/web-tier/");
    CHECK(f.instance == "lb-1");
    CHECK(f.leaseTtl == 5s);
    CHECK(f.dialTimeout == 500ms);
    // The instance defaults to the host name; the durations to 10s and 2s.
    auto d = load(top("fleet: { etcd: [http://127.0.0.1:2379], prefix: /sy/ }\n")).fleet;
    CHECK_FALSE(d.instance.empty());
    CHECK(d.leaseTtl == 10s);
    CHECK(d.dialTimeout == 2s);
}

TEST_CASE("fleet: https endpoints take a CA file and a client certificate with its key", "[config][loader][fleet]") {
    auto f = load(top("fleet: { etcd: [https://etcd-a:2379], prefix: /sy/, ca_file: /etc/sy/ca.pem, "
                      "cert_file: /etc/sy/lb.pem, key_file: /etc/sy/lb.key }\n"))
                 .fleet;
    CHECK(f.etcd[0] == EtcdEndpoint{"etcd-a", 2379, true});
    CHECK(f.tls());
    CHECK(f.caFile == "/etc/sy/ca.pem");
    CHECK(f.certFile == "/etc/sy/lb.pem");
    CHECK(f.keyFile == "/etc/sy/lb.key");
    CHECK(errors(top("fleet: { etcd: [https://etcd-a:2379], prefix: /sy/, cert_file: /etc/sy/lb.pem }\n")) ==
          "t.yaml:7:64: fleet.cert_file: fleet.cert_file needs fleet.key_file");
    CHECK(errors(top("fleet: { etcd: [http://etcd-a:2379], prefix: /sy/, ca_file: /etc/sy/ca.pem }\n")) ==
          "t.yaml:7:61: fleet.ca_file: TLS files are used only with https:// etcd endpoints");
    CHECK(errors(top("fleet: { etcd: [https://etcd-a:2379], prefix: /sy/, ca_file: ca.pem }\n")) ==
          "t.yaml:7:62: fleet.ca_file: must be an absolute path, got 'ca.pem'");
}

TEST_CASE("fleet: bad values are named with their place", "[config][loader][fleet]") {
    CHECK(errors(top("fleet: { prefix: /sy/ }\n")) == "t.yaml:7:8: fleet: missing required key 'etcd'");
    CHECK(errors(top("fleet: { etcd: [http://127.0.0.1:2379] }\n")) == "t.yaml:7:8: fleet: missing required key 'prefix'");
    CHECK(errors(top("fleet: { etcd: [], prefix: /sy/ }\n")) ==
          "t.yaml:7:16: fleet.etcd: expected a list of etcd URLs like [http://10.0.0.5:2379], got a list");
    CHECK(errors(top("fleet: { etcd: [127.0.0.1:2379], prefix: /sy/ }\n")) ==
          "t.yaml:7:17: fleet.etcd[0]: expected an etcd URL like http://10.0.0.5:2379 or https://10.0.0.5:2379, got "
          "'127.0.0.1:2379'");
    CHECK(errors(top("fleet: { etcd: [http://127.0.0.1:99999], prefix: /sy/ }\n")) ==
          "t.yaml:7:17: fleet.etcd[0]: expected an etcd URL like http://10.0.0.5:2379 (no path), got "
          "'http://127.0.0.1:99999'");
    CHECK(errors(top("fleet: { etcd: [http://127.0.0.1:2379], prefix: /sy }\n")) ==
          "t.yaml:7:49: fleet.prefix: expected a key prefix like /switchyard/web-tier/ (2 to 200 printable "
          "characters, no spaces, ending in '/'), got '/sy'");
    CHECK(errors(top("fleet: { etcd: [http://127.0.0.1:2379], prefix: /sy/, instance: \"a b\" }\n")) ==
          "t.yaml:7:65: fleet.instance: 'a b' is not a valid instance name (1 to 64 of A-Z a-z 0-9 _ . -)");
    CHECK(errors(top("fleet: { etcd: [http://127.0.0.1:2379], prefix: /sy/, lease_ttl: 1s }\n")) ==
          "t.yaml:7:66: fleet.lease_ttl: must be between 2s and 60s, got '1s'");
    CHECK(errors(top("fleet: { etcd: [http://127.0.0.1:2379], prefix: /sy/, leas_ttl: 1s }\n")) ==
          "t.yaml:7:55: fleet.leas_ttl: unknown key 'leas_ttl'; did you mean 'lease_ttl'?");
}

TEST_CASE("fleet: user and password_file go together", "[config][loader][fleet]") {
    auto f = load(top("fleet: { etcd: [http://127.0.0.1:2379], prefix: /sy/, user: lb, password_file: /etc/sy/pw }\n")).fleet;
    CHECK(f.user == "lb");
    CHECK(f.passwordFile == "/etc/sy/pw");
    CHECK(errors(top("fleet: { etcd: [http://127.0.0.1:2379], prefix: /sy/, user: lb }\n")) ==
          "t.yaml:7:61: fleet.user: fleet.user needs fleet.password_file");
    CHECK(errors(top("fleet: { etcd: [http://127.0.0.1:2379], prefix: /sy/, password_file: /pw }\n")) ==
          "t.yaml:7:70: fleet.password_file: fleet.password_file needs fleet.user");
    CHECK(errors(top("fleet: { etcd: [http://127.0.0.1:2379], prefix: /sy/, user: lb, password_file: pw }\n")) ==
          "t.yaml:7:80: fleet.password_file: must be an absolute path, got 'pw'");
}
