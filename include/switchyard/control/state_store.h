#pragma once

// Where runtime overrides outlive the process (docs/semantics.md "State
// file, restarts and reloads"; docs/state.md). The control plane talks to this interface only: the file store
// (file_state_store.h) is the first implementation, written so that a fleet
// store on etcd can stand beside it.
//
// A store saves what a change changed: save() gets the services a change
// touched, and writes the records of those whose overrides differ from what
// it holds, so one change costs one service's record, whatever the number of
// services.

#include <memory>
#include <string>
#include <vector>

#include "switchyard/control/master_state.h"
#include "switchyard/control/overrides.h"
#include "switchyard/util/result.h"

namespace switchyard::control {

struct LoadReport {
    MergeReport merge;
    std::vector<std::string> warnings;   // records set aside, migrations: logged at start
};

class StateStore {
public:
    virtual ~StateStore() = default;

    // Where it keeps state, for logs and messages.
    virtual const std::string& where() const = 0;

    // Merges every saved service's overrides into `state` (built from the
    // config). A failure is a start-up error (docs/semantics.md "Bad state file"):
    // unreadable, not a regular file, too large. Records that were read and
    // failed to parse are set aside and reported as warnings instead.
    virtual Result<LoadReport> load(MasterState& state) = 0;

    // Durably saves the overrides of `services` (each one's record, or its
    // removal when it has none left). On failure nothing it had saved before is lost.
    virtual Result<bool> save(const std::vector<const ServiceEntry*>& services) = 0;

    // Drops the records of services no longer configured (reload).
    virtual Result<bool> forget(const std::vector<std::string>& services) = 0;
};

// The file store at `path`, or nullptr when `path` is empty (no state kept).
std::unique_ptr<StateStore> makeStateStore(const std::string& path);

} // namespace switchyard::control
