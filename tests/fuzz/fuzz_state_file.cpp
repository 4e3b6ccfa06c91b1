// The state store's reader: one service's record (FileStateStore::parseRecord)
// merged into a service built from a fixed config. Records live on disk
// across restarts and upgrades; a corrupt one must be refused whole (and set
// aside by the store), never crash the daemon at start or half-apply.

#include "fuzz_target.h"

#include <string>

#include <nlohmann/json.hpp>

#include "switchyard/config/config_loader.h"
#include "switchyard/control/master_state.h"
#include "switchyard/control/file_state_store.h"
#include "switchyard/control/overrides.h"
#include "switchyard/rollout/rollout_controller.h"
#include "switchyard/rollout/rollout_json.h"

using namespace switchyard;

namespace {

// Two services, so a file can name one, both, or neither; green of `api` is
// empty, so added backends have somewhere new to go.
constexpr const char* kConfig = R"(
services:
  - name: web
    listen: 127.0.0.1:18080
    split: { blue: 100, green: 0 }
    pools:
      blue:
        - { address: 127.0.0.1:19001, weight: 100 }
        - { address: 127.0.0.1:19002, weight: 50 }
      green:
        - { address: 127.0.0.1:19003 }
  - name: api
    listen: "[::1]:18081"
    split: { blue: 0, green: 100 }
    pools:
      blue:
        - { address: "[::1]:19011" }
      green: []
)";

const config::Config& fixedConfig() {
    static const config::Config cfg = [] {
        auto loaded = config::loadConfigString(kConfig, "fuzz-fixed.yaml");
        if (!loaded.ok()) {
            std::fprintf(stderr, "fuzz_state_file: fixed config invalid: %s\n", loaded.errorText().c_str());
            std::abort();
        }
        return std::move(loaded).value();
    }();
    return cfg;
}

control::ServiceEntry freshWeb() { return control::makeServiceEntry(fixedConfig().services[0]); }

} // namespace

SWITCHYARD_FUZZ_TARGET(state_file)(const uint8_t* data, std::size_t size) {
    fuzz::quietLogs();
    const std::string text(reinterpret_cast<const char*>(data), size);
    auto parsed = control::FileStateStore::parseRecord(text, "web");
    if (!parsed.ok()) {
        FUZZ_CHECK(!parsed.errorText().empty());
        return 0;
    }
    control::ServiceEntry s = freshWeb();
    control::MergeReport report;
    const auto now = routing::Clock::now();
    control::mergeOverrides(*parsed, s, report, now);
    // What was accepted keeps the invariants the rest of the daemon assumes.
    FUZZ_CHECK(s.split.blue <= config::kMaxWeight && s.split.green <= config::kMaxWeight);
    for (const auto& pool : s.pools)
        for (const auto& b : pool.backends) FUZZ_CHECK(b.weight <= config::kMaxWeight);
    // What the daemon does next at start: restart a rollout's window and
    // answer rollout-status.
    rollout::Now at;
    at.steady = now;
    at.unixMs = 1'700'000'000'000;
    if (s.rollout) {
        (void)rollout::onRestart(*s.rollout, at);
        (void)rollout::statusJson(*s.rollout, at).dump();
        (void)rollout::persistJson(*s.rollout).dump();
    }
    // What we save we must load again, to the same intent.
    nlohmann::json record = {{"format", "switchyard-state"}, {"version", 2}, {"service", "web"}};
    record.update(control::overridesToJson(control::overridesOf(s)));
    auto again = control::FileStateStore::parseRecord(record.dump(), "web");
    FUZZ_CHECK(again.ok());
    control::ServiceEntry reloaded = freshWeb();
    control::mergeOverrides(*again, reloaded, report, now);
    FUZZ_CHECK(reloaded.split == s.split);
    FUZZ_CHECK(reloaded.generation == s.generation);
    return 0;
}
