// Replays every committed input through its fuzz target: the seed corpus
// (tests/fuzz/corpus/<target>/) and the inputs that once crashed a target
// (tests/fuzz/regressions/<target>/). Runs in every build, so a fixed crash
// stays fixed even where clang and libFuzzer are not installed.

#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "fuzz_target.h"

namespace fs = std::filesystem;
using switchyard::fuzz::targets;

namespace {

const fs::path kFuzzDir = SWITCHYARD_FUZZ_DIR;
const std::set<std::string> kExpected = {"config", "admin_command", "state_file", "proxy_protocol", "health_reply"};

std::vector<fs::path> inputsOf(const std::string& target, const char* kind) {
    std::vector<fs::path> files;
    const fs::path dir = kFuzzDir / kind / target;
    if (!fs::is_directory(dir)) return files;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.is_regular_file()) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

std::size_t replay(const std::string& name, const char* kind) {
    const auto it = std::find_if(targets().begin(), targets().end(), [&](const auto& t) { return t.name == name; });
    REQUIRE(it != targets().end());
    std::size_t n = 0;
    for (const auto& file : inputsOf(name, kind)) {
        std::ifstream in(file, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        INFO(file.string());
        // A failure aborts inside the target (FUZZ_CHECK, a sanitizer); Catch2
        // reports the fatal signal with the INFO above, naming the input.
        CHECK(it->fn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == 0);
        ++n;
    }
    return n;
}

void replayTarget(const std::string& name) {
    const std::size_t seeds = replay(name, "corpus");
    CHECK(seeds > 0);   // every target has a committed seed corpus
    replay(name, "regressions");
}

} // namespace

TEST_CASE("Every fuzz target is registered and has a seed corpus", "[fuzz]") {
    std::set<std::string> registered;
    for (const auto& t : targets()) registered.insert(t.name);
    CHECK(registered == kExpected);
    for (const auto& name : kExpected) {
        INFO(name);
        CHECK_FALSE(inputsOf(name, "corpus").empty());
    }
}

TEST_CASE("Fuzz corpus and regressions replay clean: config", "[fuzz]") { replayTarget("config"); }
TEST_CASE("Fuzz corpus and regressions replay clean: admin_command", "[fuzz]") { replayTarget("admin_command"); }
TEST_CASE("Fuzz corpus and regressions replay clean: state_file", "[fuzz]") { replayTarget("state_file"); }
TEST_CASE("Fuzz corpus and regressions replay clean: proxy_protocol", "[fuzz]") { replayTarget("proxy_protocol"); }
TEST_CASE("Fuzz corpus and regressions replay clean: health_reply", "[fuzz]") { replayTarget("health_reply"); }
