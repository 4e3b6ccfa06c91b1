#include "switchyard/admin/command.h"

#include <cstdlib>

namespace switchyard::admin {

bool isChange(CommandKind kind) {
    switch (kind) {
    case CommandKind::Status:
    case CommandKind::RolloutStatus:
    case CommandKind::RolloutHistory:
    case CommandKind::ReloadCheck:
    case CommandKind::Help:
        return false;
    case CommandKind::Split:
    case CommandKind::Cutover:
    case CommandKind::Rollback:
    case CommandKind::BackendWeight:
    case CommandKind::BackendDrain:
    case CommandKind::BackendDisable:
    case CommandKind::BackendEnable:
    case CommandKind::Add:
    case CommandKind::Remove:
    case CommandKind::PoolOffline:
    case CommandKind::PoolOnline:
    case CommandKind::Rollout:
    case CommandKind::RolloutPause:
    case CommandKind::RolloutResume:
    case CommandKind::RolloutAbort:
    case CommandKind::Promote:
    case CommandKind::Reset:
    case CommandKind::Reload:
    case CommandKind::Upgrade:
        return true;
    }
    std::abort();   // a new CommandKind must be classified above
}

const char* toString(CommandKind kind) {
    switch (kind) {
    case CommandKind::Status: return "status";
    case CommandKind::Split: return "split";
    case CommandKind::Cutover: return "cutover";
    case CommandKind::Rollback: return "rollback";
    case CommandKind::BackendWeight:
    case CommandKind::BackendDrain:
    case CommandKind::BackendDisable:
    case CommandKind::BackendEnable: return "backend";
    case CommandKind::Add: return "add";
    case CommandKind::Remove: return "remove";
    case CommandKind::PoolOffline:
    case CommandKind::PoolOnline: return "pool";
    case CommandKind::Rollout: return "rollout";
    case CommandKind::RolloutStatus: return "rollout-status";
    case CommandKind::RolloutHistory: return "rollout-history";
    case CommandKind::RolloutPause: return "rollout-pause";
    case CommandKind::RolloutResume: return "rollout-resume";
    case CommandKind::RolloutAbort: return "rollout-abort";
    case CommandKind::Promote: return "promote";
    case CommandKind::Reset: return "reset";
    case CommandKind::Reload: return "reload";
    case CommandKind::ReloadCheck: return "reload-check";
    case CommandKind::Upgrade: return "upgrade";
    case CommandKind::Help: return "help";
    }
    std::abort();
}

} // namespace switchyard::admin
