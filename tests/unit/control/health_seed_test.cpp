#include "switchyard/control/health_seed.h"

#include <catch2/catch.hpp>

#include "switchyard/config/config_loader.h"

using namespace switchyard;
using namespace switchyard::control;
using config::Colour;

namespace {

ServiceEntry web() {
    auto c = config::loadConfigString(R"(
services:
  - name: web
    listen: 127.0.0.1:8080
    pools:
      blue: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 }, { address: 127.0.0.1:9004 } ]
      green: [ { address: 127.0.0.1:9003 } ]
)", "test.yaml");
    REQUIRE(c.ok());
    return makeServiceEntry(c->services.at(0));
}

} // namespace

TEST_CASE("The health seed carries checked backends and panic to the same entries of a new state", "[control]") {
    MasterState old;
    ServiceEntry before = web();
    BackendEntry& down = before.pool(Colour::Blue).backends[0];
    down.checked = true;
    down.healthy = false;
    down.lastFailure = "connect refused";
    before.pool(Colour::Blue).backends[1].checked = true;   // up
    before.panic = true;
    old.add(before);

    HealthSeed seed;
    const auto parts = HealthSeed::records(old, 1);
    CHECK(parts.size() == 3);   // panic and two checked backends; the unchecked one is not sent
    for (const auto& part : parts) seed.add(nlohmann::json::parse(part.dump()));

    ServiceEntry fresh = web();
    seed.applyTo(fresh);
    const auto& blue = fresh.pool(Colour::Blue).backends;
    CHECK(fresh.panic);
    CHECK((blue[0].checked && !blue[0].healthy && blue[0].lastFailure == "connect refused"));
    CHECK((blue[1].checked && blue[1].healthy));
    CHECK((!blue[2].checked && blue[2].healthy));   // never checked: assumed up
    CHECK(!fresh.pool(Colour::Green).backends[0].checked);
}

TEST_CASE("Malformed health seed records are skipped", "[control]") {
    HealthSeed seed;
    seed.add(nlohmann::json::parse(R"([5, {"service": 1}, {"service": "web", "pool": "blue",
        "backend": "127.0.0.1:9001", "healthy": "no"}, {"service": "web", "panic": "yes"}])"));
    seed.add(nlohmann::json::parse(R"({"service": "web"})"));
    CHECK(seed.empty());
}
