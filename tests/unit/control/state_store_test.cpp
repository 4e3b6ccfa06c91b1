#include "switchyard/control/state_store.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "switchyard/config/config_loader.h"

using namespace switchyard;
using namespace switchyard::control;

namespace {

config::Config load(const std::string& yaml) {
    auto c = config::loadConfigString(yaml, "test.yaml");
    REQUIRE(c.ok());
    return std::move(c).value();
}

MasterState stateOf(const config::Config& c) {
    MasterState s;
    for (const auto& svc : c.services) s.services.push_back(makeServiceEntry(svc));
    return s;
}

const char* kYaml = R"(
services:
  - name: web
    listen: 127.0.0.1:8080
    split: { blue: 100, green: 0 }
    pools:
      blue:
        - { address: 127.0.0.1:9001, weight: 100 }
        - { address: 127.0.0.1:9002, weight: 100 }
      green:
        - { address: 127.0.0.1:9003 }
)";

std::string withSplitAndWeight(int blue, int green, int weight) {
    std::string y = kYaml;
    y.replace(y.find("split: { blue: 100, green: 0 }"), 30,
              "split: { blue: " + std::to_string(blue) + ", green: " + std::to_string(green) + " }");
    y.replace(y.find("127.0.0.1:9001, weight: 100"), 27, "127.0.0.1:9001, weight: " + std::to_string(weight));
    return y;
}

config::Endpoint ep(const char* text) { return *config::parseEndpoint(text); }

} // namespace

TEST_CASE("Overrides survive a restart on an unchanged config", "[control][state]") {
    const auto cfg = load(kYaml);
    MasterState before = stateOf(cfg);
    ServiceEntry& web = before.services[0];
    web.split = {0, 100};
    web.rollbackSplit = config::Split{100, 0};
    web.generation = 7;
    web.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight = 30;
    web.pool(config::Colour::Blue).find(ep("127.0.0.1:9002"))->adminState = AdminState::Drain;
    web.pool(config::Colour::Green).offline = false;
    const std::string saved = serializeState(before);

    MasterState after = stateOf(cfg);
    auto report = mergeOverrides(saved, after);
    REQUIRE(report.ok());
    const ServiceEntry& w = after.services[0];
    CHECK(w.split == config::Split{0, 100});
    CHECK(w.rollbackSplit == config::Split{100, 0});
    CHECK(w.generation == 7);
    CHECK(const_cast<ServiceEntry&>(w).pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight == 30);
    CHECK(const_cast<ServiceEntry&>(w).pool(config::Colour::Blue).find(ep("127.0.0.1:9002"))->adminState ==
          AdminState::Drain);
    CHECK(report->replaced.empty());
    CHECK(report->kept == std::vector<std::string>{"web: split blue=0 green=100",
                                                   "web: blue backend 127.0.0.1:9001 weight 30",
                                                   "web: blue backend 127.0.0.1:9002 drain"});
}

TEST_CASE("A config value changed since the override was made replaces it", "[control][state]") {
    MasterState before = stateOf(load(kYaml));
    before.services[0].split = {0, 100};
    before.services[0].pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight = 30;
    const std::string saved = serializeState(before);

    // The config's split changed (100/0 -> 50/50) and the backend weight too (100 -> 200).
    MasterState after = stateOf(load(withSplitAndWeight(50, 50, 200)));
    auto report = mergeOverrides(saved, after);
    REQUIRE(report.ok());
    ServiceEntry& w = after.services[0];
    CHECK(w.split == config::Split{50, 50});
    CHECK(w.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight == 200);
    CHECK(report->replaced == std::vector<std::string>{
                                  "web: split (config changed to blue=50 green=50)",
                                  "web: blue backend 127.0.0.1:9001 weight (config changed to 200)"});
}

TEST_CASE("Only the changed field is replaced; the other override is kept", "[control][state]") {
    MasterState before = stateOf(load(kYaml));
    before.services[0].split = {0, 100};
    before.services[0].pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight = 30;
    const std::string saved = serializeState(before);

    MasterState after = stateOf(load(withSplitAndWeight(100, 0, 200)));
    auto report = mergeOverrides(saved, after);
    REQUIRE(report.ok());
    ServiceEntry& w = after.services[0];
    CHECK(w.split == config::Split{0, 100});                                       // kept
    CHECK(w.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight == 200); // replaced
}

TEST_CASE("Runtime-added backends come back; removed config backends stay removed", "[control][state]") {
    const auto cfg = load(kYaml);
    MasterState before = stateOf(cfg);
    ServiceEntry& web = before.services[0];
    BackendEntry added = makeBackendEntry(web, config::Colour::Green, {ep("127.0.0.1:9010"), 50});
    added.addedAtRuntime = true;
    web.pool(config::Colour::Green).backends.push_back(added);
    auto& blue = web.pool(config::Colour::Blue).backends;
    blue.erase(blue.begin() + 1);
    web.pool(config::Colour::Blue).removed.push_back({ep("127.0.0.1:9002"), 100});
    const std::string saved = serializeState(before);

    MasterState after = stateOf(cfg);
    auto report = mergeOverrides(saved, after);
    REQUIRE(report.ok());
    ServiceEntry& w = after.services[0];
    REQUIRE(w.pool(config::Colour::Green).find(ep("127.0.0.1:9010")) != nullptr);
    CHECK(w.pool(config::Colour::Green).find(ep("127.0.0.1:9010"))->weight == 50);
    CHECK(w.pool(config::Colour::Green).find(ep("127.0.0.1:9010"))->addedAtRuntime);
    CHECK(w.pool(config::Colour::Blue).find(ep("127.0.0.1:9002")) == nullptr);
    CHECK(w.pool(config::Colour::Blue).backends.size() == 1);
}

TEST_CASE("A corrupt or foreign state file is refused whole", "[control][state]") {
    MasterState state = stateOf(load(kYaml));
    SECTION("not JSON") {
        auto r = mergeOverrides("{ nope", state);
        REQUIRE_FALSE(r.ok());
        CHECK(r.errorText().rfind("not valid JSON", 0) == 0);
    }
    SECTION("foreign JSON") {
        auto r = mergeOverrides(R"({"hello": 1})", state);
        REQUIRE_FALSE(r.ok());
        CHECK(r.errorText() == "not a switchyard state file (no \"format\": \"switchyard-state\")");
    }
    SECTION("a bad value half-way leaves the state untouched") {
        MasterState before = stateOf(load(kYaml));
        before.services[0].split = {0, 100};
        std::string saved = serializeState(before);
        saved.replace(saved.find("\"admin_state\": \"enabled\""), 24, "\"admin_state\": \"bogus\"");
        auto r = mergeOverrides(saved, state);
        REQUIRE_FALSE(r.ok());
        CHECK(r.errorText() == "malformed state file: unknown admin_state 'bogus'");
        CHECK(state.services[0].split == config::Split{100, 0});
    }
}

TEST_CASE("The state store writes atomically and moves a corrupt file aside", "[control][state]") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("sy-state-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const std::string path = (dir / "sub" / "state.json").string();
    StateStore store(path);
    MasterState state = stateOf(load(kYaml));
    state.services[0].split = {10, 90};
    REQUIRE(store.save(state).ok());
    CHECK(fs::exists(path));
    CHECK_FALSE(fs::exists(path + ".tmp"));

    MasterState reloaded = stateOf(load(kYaml));
    REQUIRE(store.load(reloaded).ok());
    CHECK(reloaded.services[0].split == config::Split{10, 90});

    { std::ofstream(path) << "garbage"; }
    MasterState fresh = stateOf(load(kYaml));
    auto r = store.load(fresh);
    REQUIRE_FALSE(r.ok());
    CHECK(r.errorText().find("moved aside to " + path + ".bad-") != std::string::npos);
    CHECK_FALSE(fs::exists(path));
    CHECK(fresh.services[0].split == config::Split{100, 0});
    fs::remove_all(dir);
}
