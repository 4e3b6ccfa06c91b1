#include "switchyard/control/file_state_store.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "switchyard/config/config_loader.h"

using namespace switchyard;
using namespace switchyard::control;
namespace fs = std::filesystem;

namespace {

const char* kYaml = R"(
services:
  - name: web
    listen: 127.0.0.1:8080
    pools:
      blue: [ { address: 127.0.0.1:9001 } ]
      green: [ { address: 127.0.0.1:9002 } ]
  - name: api
    listen: 127.0.0.1:8081
    pools:
      blue: [ { address: 127.0.0.1:9011 } ]
      green: [ { address: 127.0.0.1:9012 } ]
)";

MasterState freshState() {
    auto c = config::loadConfigString(kYaml, "test.yaml");
    REQUIRE(c.ok());
    MasterState s;
    for (const auto& svc : c->services) s.add(makeServiceEntry(svc));
    return s;
}

std::string readAll(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

struct TempDir {
    TempDir() : path(fs::temp_directory_path() / ("sy-store-" + std::to_string(::getpid()) + "-" + std::to_string(++n))) {
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
    fs::path path;
    static inline int n = 0;
};

} // namespace

TEST_CASE("A change writes the changed service's record only; untouched services have none", "[control][state]") {
    TempDir dir;
    const std::string path = (dir.path / "sub" / "state.json").string();
    FileStateStore store(path);
    MasterState state = freshState();
    REQUIRE(store.load(state).ok());

    ServiceEntry& web = state.services.edit(0);
    web.split = {0, 100};
    web.generation = 2;
    REQUIRE(store.save({&state.services[0], &state.services[1]}).ok());
    CHECK(fs::exists(path));                               // the manifest
    CHECK(nlohmann::json::parse(readAll(path))["version"] == 2);
    CHECK(fs::exists(store.recordPath("web")));
    CHECK_FALSE(fs::exists(store.recordPath("api")));      // no overrides, no record
    CHECK_FALSE(fs::exists(store.recordPath("web") + ".tmp"));
    CHECK(fs::file_size(store.recordPath("web")) < 1024);

    // Saving the same overrides again writes nothing.
    const auto written = fs::last_write_time(store.recordPath("web"));
    REQUIRE(store.save({&state.services[0]}).ok());
    CHECK(fs::last_write_time(store.recordPath("web")) == written);

    FileStateStore again(path);
    MasterState restarted = freshState();
    auto loaded = again.load(restarted);
    REQUIRE(loaded.ok());
    CHECK(restarted.services[0].split == config::Split{0, 100});
    CHECK(restarted.services[0].generation == 2);
    CHECK(restarted.services[1].split == config::Split{100, 0});
    CHECK(loaded->warnings.empty());
}

TEST_CASE("A corrupt record is set aside; its service starts above the generation it still shows",
          "[control][state]") {
    TempDir dir;
    const std::string path = (dir.path / "state.json").string();
    {
        FileStateStore store(path);
        MasterState state = freshState();
        REQUIRE(store.load(state).ok());
        for (std::size_t i = 0; i < 2; ++i) {
            state.services.edit(i).split = {0, 100};
            state.services.edit(i).generation = 9;
        }
        REQUIRE(store.save({&state.services[0], &state.services[1]}).ok());
        std::string text = readAll(store.recordPath("web"));
        text.replace(text.find("\"split\""), 7, "\"spl!t\"");
        std::ofstream(store.recordPath("web")) << text;
    }
    FileStateStore store(path);
    MasterState state = freshState();
    auto loaded = store.load(state);
    REQUIRE(loaded.ok());
    REQUIRE(loaded->warnings.size() == 1);
    CHECK(loaded->warnings[0].find("moved aside to " + store.recordPath("web") + ".bad-") != std::string::npos);
    CHECK(state.services[0].split == config::Split{100, 0});   // the config's values
    CHECK(state.services[0].generation == 10);                 // above what the record showed
    CHECK(state.services[1].split == config::Split{0, 100});   // the other service keeps its record
}

TEST_CASE("A state file that cannot be read safely stops the start and is left untouched", "[control][state]") {
    TempDir dir;
    const std::string path = (dir.path / "state.json").string();
    MasterState state = freshState();
    SECTION("not a regular file (a FIFO would hang a plain read)") {
        REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
        auto r = FileStateStore(path).load(state);
        REQUIRE_FALSE(r.ok());
        CHECK(r.errorText() == path + " is not a regular file");
        CHECK(fs::is_fifo(path));
    }
    SECTION("larger than 64 MiB") {
        { std::ofstream(path) << "{}"; }
        fs::resize_file(path, FileStateStore::kMaxFileBytes + 1);
        auto r = FileStateStore(path).load(state);
        REQUIRE_FALSE(r.ok());
        CHECK(r.errorText().find("more than a state file may hold (64 MiB)") != std::string::npos);
        CHECK(fs::file_size(path) == FileStateStore::kMaxFileBytes + 1);
    }
    SECTION("a directory") {
        fs::create_directories(path);
        auto r = FileStateStore(path).load(state);
        REQUIRE_FALSE(r.ok());
        CHECK(r.errorText() == path + " is not a regular file");
    }
}

TEST_CASE("A symlink planted where the temp file goes is removed, not followed", "[control][state]") {
    TempDir dir;
    const std::string path = (dir.path / "state.json").string();
    const fs::path victim = dir.path / "victim";
    { std::ofstream(victim) << "precious"; }
    FileStateStore store(path);
    MasterState state = freshState();
    REQUIRE(store.load(state).ok());
    fs::create_directories(path + ".d");
    fs::create_symlink(victim, store.recordPath("web") + ".tmp");
    state.services.edit(0).split = {0, 100};
    REQUIRE(store.save({&state.services[0]}).ok());
    CHECK(readAll(victim) == "precious");
    CHECK(nlohmann::json::parse(readAll(store.recordPath("web")))["split"]["green"] == 100);
}

TEST_CASE("A first-format state file is migrated once and kept beside", "[control][state]") {
    TempDir dir;
    const std::string path = (dir.path / "state.json").string();
    const std::string legacy = R"({"format":"switchyard-state","version":1,"services":{"web":{
        "generation":5,"split":{"blue":0,"green":100},"config":{"split":{"blue":100,"green":0}},
        "rollback_split":{"blue":100,"green":0},"fallback":null,"rollout":null,
        "pools":{"blue":{"offline":false,"removed":[],"backends":[{"address":"127.0.0.1:9001","weight":100,
        "config_weight":100,"admin_state":"enabled","added":false,"removing":false}]},
        "green":{"offline":false,"removed":[],"backends":[]}}}}})";
    { std::ofstream(path) << legacy; }
    FileStateStore store(path);
    MasterState state = freshState();
    auto loaded = store.load(state);
    REQUIRE(loaded.ok());
    CHECK(state.services[0].split == config::Split{0, 100});
    CHECK(state.services[0].generation == 5);
    CHECK(readAll(path + ".v1") == legacy);
    CHECK(nlohmann::json::parse(readAll(path))["version"] == 2);
    CHECK(fs::exists(store.recordPath("web")));

    FileStateStore again(path);
    MasterState restarted = freshState();
    REQUIRE(again.load(restarted).ok());
    CHECK(restarted.services[0].split == config::Split{0, 100});
    CHECK(restarted.services[0].generation == 5);
}

TEST_CASE("A corrupt manifest is set aside with its records; generations go on above them", "[control][state]") {
    TempDir dir;
    const std::string path = (dir.path / "state.json").string();
    {
        FileStateStore store(path);
        MasterState state = freshState();
        REQUIRE(store.load(state).ok());
        state.services.edit(0).split = {0, 100};
        state.services.edit(0).generation = 12;
        REQUIRE(store.save({&state.services[0]}).ok());
    }
    { std::ofstream(path) << "garbage"; }
    FileStateStore store(path);
    MasterState state = freshState();
    auto loaded = store.load(state);
    REQUIRE(loaded.ok());
    CHECK(state.services[0].split == config::Split{100, 0});
    CHECK(state.services[0].generation == 13);
    CHECK(state.services[1].generation == 13);
    CHECK_FALSE(fs::exists(path));
    CHECK_FALSE(fs::exists(path + ".d"));
    REQUIRE(loaded->warnings.size() == 2);
    CHECK(loaded->warnings[0].find("moved aside to " + path + ".bad-") != std::string::npos);
}
