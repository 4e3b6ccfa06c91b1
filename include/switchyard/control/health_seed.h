#pragma once

// What the previous generation knew of health (`upgrade`, docs/upgrade.md):
// which backends its checks found up or down, and which services were in
// panic mode. The new generation starts from it instead of assuming every
// backend up, so a backend that is down is never routed to while the new
// process waits for its first check round.

#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "switchyard/control/master_state.h"

namespace switchyard::control {

class HealthSeed {
public:
    // One record per checked backend and per service in panic, in parts of at
    // most `perPart` records (a hand-over message is bounded).
    static std::vector<nlohmann::json> records(const MasterState& state, std::size_t perPart);
    // Takes the records of one part; a record that is not of that form is skipped.
    void add(const nlohmann::json& part);
    // Sets the health of the backends it knows (same service, pool and
    // address) and the service's panic flag.
    void applyTo(ServiceEntry& service) const;
    bool empty() const { return backends_.empty() && panic_.empty(); }

private:
    struct Backend {
        bool healthy = true;
        std::string failure;
    };
    std::unordered_map<std::string, Backend> backends_;   // by service, pool and address
    std::unordered_map<std::string, bool> panic_;         // by service
};

} // namespace switchyard::control
