// The config loader (YAML text -> validated Config). A config file is operator
// input, but `reload` and `--check` read whatever is on disk: no text may crash
// the daemon or make it throw past the loader.

#include "fuzz_target.h"

#include <string_view>

#include <nlohmann/json.hpp>

#include "switchyard/config/config_loader.h"
#include "switchyard/control/master_state.h"
#include "switchyard/control/overrides.h"

using namespace switchyard;

SWITCHYARD_FUZZ_TARGET(config)(const uint8_t* data, std::size_t size) {
    fuzz::quietLogs();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto loaded = config::loadConfigString(text, "fuzz.yaml");
    if (!loaded.ok()) {
        FUZZ_CHECK(!loaded.errors().empty());
        // Every error names the file (docs/configuration.md: file, line, column and key path).
        for (const auto& e : loaded.errors()) FUZZ_CHECK(e.message.rfind("fuzz.yaml", 0) == 0);
        return 0;
    }
    // A config that validates must be one the control plane can take: build the
    // state from it and write the state file it would save.
    for (const auto& service : loaded->services) {
        FUZZ_CHECK(service.split.blue <= config::kMaxWeight && service.split.green <= config::kMaxWeight);
        const control::ServiceEntry entry = control::makeServiceEntry(service);
        const control::Overrides saved = control::overridesOf(entry);
        FUZZ_CHECK(saved.empty());   // straight from the config: nothing to keep
        control::ServiceEntry again = control::makeServiceEntry(service);
        control::MergeReport report;
        control::mergeOverrides(control::overridesFromJson(control::overridesToJson(saved)), again, report,
                                routing::Clock::now());
        FUZZ_CHECK(again.split == entry.split && report.kept.empty() && report.replaced.empty());
    }
    return 0;
}
