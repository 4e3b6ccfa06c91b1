#pragma once

// Starting the processes `upgrade` runs: the new binary's checks, and the new
// generation itself.
//
// Under systemd the new generation must be the service manager's own child.
// Given MAINPID= of a process that is not its child, systemd 252 cannot wait
// for it ("Supervising process N which is not our child"): `systemctl stop`
// then sends SIGTERM and at once SIGKILL to the whole unit, so no connection
// gets its shutdown_grace. A process cloned with CLONE_PARENT has our parent,
// systemd, as its parent from the start.

#include <string>
#include <sys/types.h>
#include <vector>

#include "switchyard/util/result.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::daemon {

struct SpawnedProcess {
    pid_t pid = -1;
    // Our child: waitpid() gives its exit status. Otherwise our parent's child
    // (a sibling): `exited` is how we learn it ended, and the parent reaps it.
    bool ownChild = true;
    UniqueFd exited;   // a pidfd, readable once the process has ended (siblings only)
};

// Starts argv (argv[0] a path) with stdout and stderr on `output` and, when
// `channel` >= 0, that descriptor at `channelAt`. Nothing else is inherited
// (a socket the engine accepted without close-on-exec must not stay open in
// the child: its client would never see it close); the signal mask is empty.
// `asSibling` clones with CLONE_PARENT (see above); a process that is PID 1 of
// its namespace has no parent to share and starts an own child instead.
Result<SpawnedProcess> spawnProcess(const std::vector<std::string>& argv, int output, int channel = -1,
                                    int channelAt = -1, bool asSibling = false);

// SIGKILL, through the pidfd for a sibling (its PID may be reaped and reused
// by the time we send); an own child is also reaped here.
void killSpawned(SpawnedProcess& process);

} // namespace switchyard::daemon
