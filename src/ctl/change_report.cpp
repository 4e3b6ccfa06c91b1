#include "change_report.h"

#include <fmt/format.h>
#include "json_field.h"

namespace switchyard::ctl {
namespace {

using nlohmann::json;

constexpr const char* kArrow = "→";

std::string text(const json& j) { return scalarText(j, "none"); }

std::string splitText(const json& split) {
    if (!split.is_object()) return text(split);
    return fmt::format("blue={} green={}", text(field(split, "blue")), text(field(split, "green")));
}

// "running to green, step 2/5 (5%)" or "none".
std::string rolloutText(const json& rollout) {
    if (!rollout.is_object()) return "none";
    return fmt::format("{} to {}, step {}/{} ({}%)", text(field(rollout, "state")), text(field(rollout, "to")),
                       text(field(rollout, "step")), text(field(rollout, "steps_total")),
                       text(field(rollout, "percent")));
}

const json* findService(const json& status, const std::string& name) {
    const json& services = field(status, "services");
    if (!services.is_array()) return nullptr;
    for (const json& s : services)
        if (field(s, "name") == name) return &s;
    return nullptr;
}

const json* findBackend(const json& pool, const json& address) {
    const json& backends = field(pool, "backends");
    if (!backends.is_array()) return nullptr;
    for (const json& b : backends)
        if (field(b, "address") == address) return &b;
    return nullptr;
}

// The differences of one service, without its name.
std::vector<std::string> serviceChanges(const json& before, const json& after) {
    std::vector<std::string> out;
    auto scalar = [&](const char* key, const char* label) {
        const json& a = field(before, key);
        const json& b = field(after, key);
        if (a != b) out.push_back(fmt::format("{} {} {} {}", label, text(a), kArrow, text(b)));
    };
    // Settings only a reload changes.
    scalar("listen", "listen");
    scalar("balance", "balance");
    scalar("affinity", "affinity");
    scalar("max_connections", "max_connections");
    scalar("proxy_protocol", "proxy_protocol");
    scalar("accept_proxy", "accept_proxy");
    scalar("slow_start_ms", "slow_start_ms");

    if (field(before, "split") != field(after, "split"))
        out.push_back(fmt::format("split {} {} {}", splitText(field(before, "split")), kArrow,
                                  splitText(field(after, "split"))));

    for (const char* colour : {"blue", "green"}) {
        const json& poolBefore = field(field(before, "pools"), colour);
        const json& poolAfter = field(field(after, "pools"), colour);
        if (field(poolBefore, "state") != field(poolAfter, "state"))
            out.push_back(fmt::format("{} pool {} {} {}", colour, text(field(poolBefore, "state")), kArrow,
                                      text(field(poolAfter, "state"))));
        const json& backendsAfter = field(poolAfter, "backends");
        if (backendsAfter.is_array()) {
            for (const json& b : backendsAfter) {
                const json& address = field(b, "address");
                const json* old = findBackend(poolBefore, address);
                if (!old) {
                    out.push_back(fmt::format("{} {} added (weight {}, {})", colour, text(address),
                                              text(field(b, "weight")), text(field(b, "admin_state"))));
                    continue;
                }
                if (field(*old, "weight") != field(b, "weight"))
                    out.push_back(fmt::format("{} {} weight {} {} {}", colour, text(address),
                                              text(field(*old, "weight")), kArrow, text(field(b, "weight"))));
                if (field(*old, "admin_state") != field(b, "admin_state"))
                    out.push_back(fmt::format("{} {} {} {} {}", colour, text(address),
                                              text(field(*old, "admin_state")), kArrow,
                                              text(field(b, "admin_state"))));
            }
        }
        const json& backendsBefore = field(poolBefore, "backends");
        if (backendsBefore.is_array())
            for (const json& b : backendsBefore)
                if (!findBackend(poolAfter, field(b, "address")))
                    out.push_back(fmt::format("{} {} removed from the pool", colour, text(field(b, "address"))));
    }

    const json& rolloutBefore = field(before, "rollout");
    const json& rolloutAfter = field(after, "rollout");
    const std::string rb = rolloutText(rolloutBefore);
    const std::string ra = rolloutText(rolloutAfter);
    if (rb != ra || field(rolloutBefore, "id") != field(rolloutAfter, "id"))
        out.push_back(fmt::format("rollout {} {} {}", rb, kArrow, ra));
    return out;
}

} // namespace

std::vector<std::string> describeChanges(const json& before, const json& after, bool withGeneration) {
    std::vector<std::string> lines;
    const json& servicesAfter = field(after, "services");
    if (servicesAfter.is_array()) {
        for (const json& svc : servicesAfter) {
            const std::string name = text(field(svc, "name"));
            const std::string generation =
                withGeneration ? fmt::format(" (generation {})", text(field(svc, "generation"))) : "";
            const json* old = findService(before, name);
            if (!old) {
                lines.push_back(fmt::format("{}: added, listen {}, split {}{}", name, text(field(svc, "listen")),
                                            splitText(field(svc, "split")), generation));
                continue;
            }
            for (const std::string& change : serviceChanges(*old, svc))
                lines.push_back(fmt::format("{}: {}{}", name, change, generation));
        }
    }
    const json& servicesBefore = field(before, "services");
    if (servicesBefore.is_array())
        for (const json& svc : servicesBefore)
            if (!findService(after, text(field(svc, "name"))))
                lines.push_back(fmt::format("{}: removed", text(field(svc, "name"))));
    return lines;
}

} // namespace switchyard::ctl
