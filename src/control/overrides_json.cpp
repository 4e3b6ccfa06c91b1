// The JSON edge of Overrides: one service's record in the state store. The
// field names are those of the first state file format, so that format's
// per-service records read with the same code (state_store migration).
#include "switchyard/control/overrides.h"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "switchyard/config/split_json.h"
#include "switchyard/rollout/rollout_json.h"

namespace switchyard::control {
namespace {

using nlohmann::json;

AdminState adminStateFrom(const std::string& word) {
    if (word == "enabled") return AdminState::Enabled;
    if (word == "drain") return AdminState::Drain;
    if (word == "disabled") return AdminState::Disabled;
    throw std::invalid_argument("unknown admin_state '" + word + "'");
}

config::Endpoint endpointFrom(const json& j) {
    std::string why;
    auto ep = config::parseEndpoint(j.get<std::string>(), &why);
    if (!ep) throw std::invalid_argument("bad address: " + why);
    return *ep;
}

config::Colour colourFrom(const json& j) {
    const auto word = j.get<std::string>();
    if (word == "blue") return config::Colour::Blue;
    if (word == "green") return config::Colour::Green;
    throw std::invalid_argument("unknown pool '" + word + "'");
}

} // namespace

bool floatsInRange(const json& root) {
    std::vector<const json*> todo{&root};   // iterative: nesting depth is the file's choice
    while (!todo.empty()) {
        const json* j = todo.back();
        todo.pop_back();
        if (j->is_number_float()) {
            const double d = j->get<double>();
            if (!(d >= 0.0 && d < 2147483648.0)) return false;
        } else if (j->is_structured()) {
            for (const json& child : *j) todo.push_back(&child);
        }
    }
    return true;
}

json overridesToJson(const Overrides& o) {
    json pools = json::object();
    for (auto colour : config::kColours) {
        const PoolOverrides& pool = o.pools[config::index(colour)];
        json backends = json::array();
        for (const BackendOverride& b : pool.backends)
            backends.push_back({{"address", b.address.toString()},
                                {"weight", b.weight},
                                {"config_weight", b.configWeight},
                                {"admin_state", toString(b.adminState)},
                                {"added", b.added},
                                {"removing", b.removing}});
        json removed = json::array();
        for (const auto& r : pool.removed)
            removed.push_back({{"address", r.address.toString()}, {"config_weight", r.weight}});
        pools[config::toString(colour)] = {{"offline", pool.offline}, {"backends", backends}, {"removed", removed}};
    }
    json fallback = nullptr;
    if (o.fallback)
        fallback = {{"from", config::toString(o.fallback->from)},
                    {"reason", o.fallback->reason},
                    {"since_unix_ms", o.fallback->sinceUnixMs}};
    return {
        {"generation", o.generation},
        {"split", config::splitToJson(o.split)},
        {"config", {{"split", config::splitToJson(o.configSplit)}}},
        {"rollback_split", o.rollbackSplit ? config::splitToJson(*o.rollbackSplit) : json(nullptr)},
        {"fallback", fallback},
        {"pools", pools},
        {"rollout", o.rollout ? rollout::persistJson(*o.rollout) : json(nullptr)},
    };
}

Overrides overridesFromJson(const json& saved) {
    Overrides o;
    o.generation = saved.at("generation").get<uint64_t>();
    o.split = config::splitFromJson(saved.at("split"));
    o.configSplit = config::splitFromJson(saved.at("config").at("split"));
    if (const json& rb = saved.at("rollback_split"); !rb.is_null()) o.rollbackSplit = config::splitFromJson(rb);
    if (const json& fb = saved.at("fallback"); !fb.is_null()) {
        FallbackState f;
        f.active = true;
        f.from = colourFrom(fb.at("from"));
        f.reason = fb.at("reason").get<std::string>();
        f.sinceUnixMs = fb.at("since_unix_ms").get<int64_t>();
        o.fallback = f;
    }
    if (const auto r = saved.find("rollout"); r != saved.end() && !r->is_null()) o.rollout = rollout::restoreJson(*r);
    for (auto colour : config::kColours) {
        const json& pool = saved.at("pools").at(config::toString(colour));
        PoolOverrides& out = o.pools[config::index(colour)];
        out.offline = pool.at("offline").get<bool>();
        for (const json& r : pool.at("removed"))
            out.removed.push_back({endpointFrom(r.at("address")), r.at("config_weight").get<uint32_t>()});
        for (const json& b : pool.at("backends")) {
            BackendOverride bo;
            bo.address = endpointFrom(b.at("address"));
            bo.weight = b.at("weight").get<uint32_t>();
            bo.configWeight = b.at("config_weight").get<uint32_t>();
            if (bo.weight > config::kMaxWeight) throw std::out_of_range("backend weight over 1000");
            bo.adminState = adminStateFrom(b.at("admin_state").get<std::string>());
            bo.added = b.at("added").get<bool>();
            bo.removing = b.at("removing").get<bool>();
            out.backends.push_back(std::move(bo));
        }
    }
    return o;
}

} // namespace switchyard::control
