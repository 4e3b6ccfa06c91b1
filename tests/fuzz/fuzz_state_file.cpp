// The state-file loader: control::mergeOverrides over a MasterState built from
// a fixed config. The file lives on disk across restarts and upgrades; a
// corrupt one must be refused whole (and set aside by StateStore::load), never
// crash the daemon at start or leave it half-applied.

#include "fuzz_target.h"

#include <string>

#include "switchyard/config/config_loader.h"
#include "switchyard/control/master_state.h"
#include "switchyard/control/state_store.h"
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

control::MasterState freshState() {
    control::MasterState state;
    for (const auto& service : fixedConfig().services) state.services.push_back(control::makeServiceEntry(service));
    return state;
}

} // namespace

SWITCHYARD_FUZZ_TARGET(state_file)(const uint8_t* data, std::size_t size) {
    fuzz::quietLogs();
    const std::string text(reinterpret_cast<const char*>(data), size);
    control::MasterState state = freshState();
    auto merged = control::mergeOverrides(text, state);
    if (!merged.ok()) {
        // Refused whole: nothing of the file was applied.
        FUZZ_CHECK(state.services.size() == 2);
        FUZZ_CHECK(state.services[0].split == fixedConfig().services[0].split);
        FUZZ_CHECK(state.services[0].generation == 1);
        return 0;
    }
    // What was accepted keeps the invariants the rest of the daemon assumes.
    for (const auto& s : state.services) {
        FUZZ_CHECK(s.split.blue <= config::kMaxWeight && s.split.green <= config::kMaxWeight);
        for (const auto& pool : s.pools)
            for (const auto& b : pool.backends) FUZZ_CHECK(b.weight <= config::kMaxWeight);
    }
    // What the daemon does next at start: restart a rollout's window and
    // answer rollout-status.
    rollout::Now now;
    now.steady = routing::Clock::now();
    now.unixMs = 1'700'000'000'000;
    for (auto& s : state.services) {
        if (!s.rollout) continue;
        (void)rollout::onRestart(*s.rollout, now);
        (void)rollout::statusJson(*s.rollout, now).dump();
        (void)rollout::persistJson(*s.rollout).dump();
    }
    // What we save we must load again, to the same intent.
    const std::string saved = control::serializeState(state);
    control::MasterState reloaded = freshState();
    auto again = control::mergeOverrides(saved, reloaded);
    FUZZ_CHECK(again.ok());
    for (std::size_t i = 0; i < state.services.size(); ++i) {
        FUZZ_CHECK(reloaded.services[i].split == state.services[i].split);
        FUZZ_CHECK(reloaded.services[i].generation == state.services[i].generation);
    }
    return 0;
}
