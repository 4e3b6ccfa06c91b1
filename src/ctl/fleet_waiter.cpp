#include "fleet_waiter.h"

#include <chrono>
#include <cstdio>

#include "ctl_options.h"
#include "drain_waiter.h"
#include "poll_pause.h"

namespace switchyard::ctl {

using nlohmann::json;

bool fleetConverged(const json& status) {
    const auto fleet = status.find("fleet");
    if (fleet == status.end() || !fleet->is_object()) return false;
    return fleet->value("converged", false) && fleet->value("store", "") == "ok";
}

int waitForFleet(const AdminClient& client, const std::string& service, std::optional<Clock::time_point> deadline,
                 bool humanOutput) {
    const std::string request = service.empty() ? "status" : "status " + service;
    for (;;) {
        if (interruptRequested()) {
            std::fprintf(stderr, "switchyardctl: stopped waiting for the fleet (the change stays in effect)\n");
            return kExitInterrupted;
        }
        if (deadline && Clock::now() >= *deadline) {
            std::fprintf(stderr, "switchyardctl: timed out before every member of the fleet applied the change\n");
            return kExitFailure;
        }
        auto requestDeadline = Clock::now() + std::chrono::seconds(10);
        if (deadline && *deadline < requestDeadline) requestDeadline = *deadline;
        AdminReply reply = client.request(request, requestDeadline);
        if (reply.status == AdminReply::Status::Unreachable) {
            std::fprintf(stderr, "switchyardctl: cannot reach switchyard: %s (stopped waiting)\n", reply.error.c_str());
            return kExitUnreachable;
        }
        if (reply.status == AdminReply::Status::Ok) {
            const json parsed = json::parse(reply.line, nullptr, false);
            if (parsed.is_object() && fleetConverged(parsed)) {
                if (humanOutput) {
                    std::size_t members = parsed["fleet"].value("members", json::array()).size();
                    std::printf("fleet: applied on all %zu live member(s)\n", members);
                }
                return kExitOk;
            }
        }
        pauseUntilNextPoll(std::chrono::milliseconds(20), deadline);
    }
}

} // namespace switchyard::ctl
