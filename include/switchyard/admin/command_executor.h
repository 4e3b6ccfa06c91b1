#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

// Turns a parsed admin command into a control-plane call and its JSON reply.

#include <nlohmann/json.hpp>

#include "switchyard/admin/command.h"
#include "switchyard/admin/status_report.h"
#include "switchyard/control/control_plane.h"
#include "switchyard/rollout/rollout_history.h"

namespace switchyard::admin {

class CommandExecutor {
public:
    explicit CommandExecutor(control::ControlPlane& control) : control_(control) {}

    nlohmann::json execute(const Command& command);

    // A reply execute() wrote as text instead (a `status` can be megabytes:
    // it is streamed, not built as a tree); empty when the returned value is
    // the reply. Taken once.
    std::string takeReplyText() { return std::exchange(replyText_, {}); }
    // What `rollout-history` reads; without one it answers with the latest rollout only.
    void setRolloutHistory(const rollout::RolloutHistory* history) { history_ = history; }
    // What `status` says of an older generation still draining after `upgrade`.
    void setDrainingGeneration(std::function<std::optional<DrainingGeneration>()> provider) {
        draining_ = std::move(provider);
    }

    // Fleet mode: a change execute() left waiting for etcd (its reply was
    // {"pending": true}); the caller waits on change->done, then finishPending().
    struct Pending {
        std::shared_ptr<control::PendingChange> change;
        std::string service;
        bool rollout = false;
    };
    Pending takePending() { return std::exchange(pending_, {}); }
    nlohmann::json finishPending(const Pending& pending);

    static nlohmann::json errorReply(const std::string& code, const std::string& message);

private:
    nlohmann::json changeReply(const control::Outcome& outcome, const std::string& service);
    // changeReply plus the service's rollout (rollout-status and the rollout commands).
    nlohmann::json rolloutReply(const control::Outcome& outcome, const std::string& service);

    control::ControlPlane& control_;
    std::string replyText_;
    Pending pending_;
    const rollout::RolloutHistory* history_ = nullptr;
    std::function<std::optional<DrainingGeneration>()> draining_;
};

} // namespace switchyard::admin
