#include "switchyard/control/overrides.h"

#include <nlohmann/json.hpp>

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

ServiceEntry serviceOf(const config::Config& c) { return makeServiceEntry(c.services.at(0)); }

// The overrides `before` holds, through their JSON record (as a restart reads
// them), merged into `after`.
MergeReport restart(const ServiceEntry& before, ServiceEntry& after) {
    const Overrides saved = overridesFromJson(nlohmann::json::parse(overridesToJson(overridesOf(before)).dump()));
    MergeReport report;
    mergeOverrides(saved, after, report, routing::Clock::now());
    return report;
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
    ServiceEntry web = serviceOf(cfg);
    web.split = {0, 100};
    web.rollbackSplit = config::Split{100, 0};
    web.generation = 7;
    web.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight = 30;
    web.pool(config::Colour::Blue).find(ep("127.0.0.1:9002"))->adminState = AdminState::Drain;

    ServiceEntry w = serviceOf(cfg);
    const MergeReport report = restart(web, w);
    CHECK(w.split == config::Split{0, 100});
    CHECK(w.rollbackSplit == config::Split{100, 0});
    CHECK(w.generation == 7);
    CHECK(w.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight == 30);
    CHECK(w.pool(config::Colour::Blue).find(ep("127.0.0.1:9002"))->adminState == AdminState::Drain);
    CHECK(report.replaced.empty());
    CHECK(report.kept == std::vector<std::string>{"web: split blue=0 green=100",
                                                  "web: blue backend 127.0.0.1:9001 weight 30",
                                                  "web: blue backend 127.0.0.1:9002 drain"});
}

TEST_CASE("A service nobody changed has no overrides; one change makes a small record", "[control][state]") {
    ServiceEntry web = serviceOf(load(kYaml));
    CHECK(overridesOf(web).empty());
    web.split = {0, 100};
    web.generation = 2;
    const Overrides o = overridesOf(web);
    CHECK_FALSE(o.empty());
    // Backends as the config made them are not recorded.
    for (const auto& pool : o.pools) CHECK(pool.backends.empty());
    CHECK(overridesToJson(o).dump().size() < 1024);
}

TEST_CASE("A config value changed since the override was made replaces it", "[control][state]") {
    ServiceEntry before = serviceOf(load(kYaml));
    before.split = {0, 100};
    before.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight = 30;

    // The config's split changed (100/0 -> 50/50) and the backend weight too (100 -> 200).
    ServiceEntry w = serviceOf(load(withSplitAndWeight(50, 50, 200)));
    const MergeReport report = restart(before, w);
    CHECK(w.split == config::Split{50, 50});
    CHECK(w.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight == 200);
    CHECK(report.replaced == std::vector<std::string>{"web: split (config changed to blue=50 green=50)",
                                                      "web: blue backend 127.0.0.1:9001 weight (config changed to 200)"});
}

TEST_CASE("Only the changed field is replaced; the other override is kept", "[control][state]") {
    ServiceEntry before = serviceOf(load(kYaml));
    before.split = {0, 100};
    before.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight = 30;

    ServiceEntry w = serviceOf(load(withSplitAndWeight(100, 0, 200)));
    restart(before, w);
    CHECK(w.split == config::Split{0, 100});                                       // kept
    CHECK(w.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight == 200); // replaced
}

TEST_CASE("Runtime-added backends come back; removed config backends stay removed", "[control][state]") {
    const auto cfg = load(kYaml);
    ServiceEntry web = serviceOf(cfg);
    BackendEntry added = makeBackendEntry(web, config::Colour::Green, {ep("127.0.0.1:9010"), 50});
    added.addedAtRuntime = true;
    web.pool(config::Colour::Green).backends.push_back(added);
    auto& blue = web.pool(config::Colour::Blue).backends;
    blue.erase(blue.begin() + 1);
    web.pool(config::Colour::Blue).removed.push_back({ep("127.0.0.1:9002"), 100});

    ServiceEntry w = serviceOf(cfg);
    restart(web, w);
    REQUIRE(w.pool(config::Colour::Green).find(ep("127.0.0.1:9010")) != nullptr);
    CHECK(w.pool(config::Colour::Green).find(ep("127.0.0.1:9010"))->weight == 50);
    CHECK(w.pool(config::Colour::Green).find(ep("127.0.0.1:9010"))->addedAtRuntime);
    CHECK(w.pool(config::Colour::Blue).find(ep("127.0.0.1:9002")) == nullptr);
    CHECK(w.pool(config::Colour::Blue).backends.size() == 1);
    CHECK(w.pool(config::Colour::Blue).removed.size() == 1);
}

TEST_CASE("A malformed record is refused whole, naming the field", "[control][state]") {
    ServiceEntry before = serviceOf(load(kYaml));
    before.pool(config::Colour::Blue).find(ep("127.0.0.1:9001"))->weight = 30;
    nlohmann::json record = overridesToJson(overridesOf(before));
    SECTION("an unknown admin state") {
        record["pools"]["blue"]["backends"][0]["admin_state"] = "bogus";
        CHECK_THROWS_WITH(overridesFromJson(record), "unknown admin_state 'bogus'");
    }
    SECTION("a weight over 1000") {
        record["pools"]["blue"]["backends"][0]["weight"] = 5000;
        CHECK_THROWS_WITH(overridesFromJson(record), "backend weight over 1000");
    }
    SECTION("a missing field") {
        record.erase("split");
        CHECK_THROWS(overridesFromJson(record));
    }
    SECTION("a float no field can hold") {
        record["generation"] = 1e300;
        CHECK_FALSE(floatsInRange(record));
    }
}
