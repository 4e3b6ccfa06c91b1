#include "switchyard/control/health_seed.h"

#include <algorithm>

namespace switchyard::control {
namespace {

using nlohmann::json;

std::string key(const std::string& service, std::string_view pool, const std::string& address) {
    return service + '\x1f' + std::string(pool) + '\x1f' + address;
}

} // namespace

std::vector<json> HealthSeed::records(const MasterState& state, std::size_t perPart) {
    std::vector<json> parts{json::array()};
    const auto push = [&](json record) {
        if (parts.back().size() >= std::max<std::size_t>(perPart, 1)) parts.push_back(json::array());
        parts.back().push_back(std::move(record));
    };
    for (const ServiceEntry& s : state.services) {
        if (s.panic) push({{"service", s.config.name}, {"panic", true}});
        for (const PoolEntry& pool : s.pools)
            for (const BackendEntry& b : pool.backends) {
                if (!b.checked) continue;   // never checked: assumed up, as in a new process
                push({{"service", s.config.name}, {"pool", config::toString(pool.colour)},
                      {"backend", b.address.toString()}, {"healthy", b.healthy}, {"failure", b.lastFailure}});
            }
    }
    return parts;
}

void HealthSeed::add(const json& part) {
    if (!part.is_array()) return;
    for (const json& r : part) {
        if (!r.is_object()) continue;
        const auto text = [&r](const char* field) -> const std::string* {
            const auto it = r.find(field);
            return it != r.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
        };
        const std::string* service = text("service");
        if (!service) continue;
        if (const auto panic = r.find("panic"); panic != r.end() && panic->is_boolean()) {
            panic_[*service] = panic->get<bool>();
            continue;
        }
        const std::string* pool = text("pool");
        const std::string* backend = text("backend");
        const std::string* failure = text("failure");
        const auto healthy = r.find("healthy");
        if (!pool || !backend || healthy == r.end() || !healthy->is_boolean()) continue;
        backends_[key(*service, *pool, *backend)] = {healthy->get<bool>(), failure ? *failure : std::string()};
    }
}

void HealthSeed::applyTo(ServiceEntry& service) const {
    const std::string& name = service.config.name;
    if (const auto it = panic_.find(name); it != panic_.end()) service.panic = it->second;
    if (backends_.empty()) return;
    for (PoolEntry& pool : service.pools)
        for (BackendEntry& b : pool.backends) {
            const auto it = backends_.find(key(name, config::toString(pool.colour), b.address.toString()));
            if (it == backends_.end()) continue;
            b.checked = true;
            b.healthy = it->second.healthy;
            b.lastFailure = it->second.failure;
        }
}

} // namespace switchyard::control
