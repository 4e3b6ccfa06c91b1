#pragma once

// The one-writer rule of a state file: the daemon that writes it holds an
// open-file-description lock (fcntl F_OFD_SETLK) on `<state_file>.lock`. A
// second daemon started on the same state file cannot take it and refuses to
// start, instead of both writing. At `upgrade` the old generation lets go of
// it as it hands over and the new one takes it (docs/upgrade.md). The lock
// belongs to the open file, not the process: it is never inherited by a
// spawned process, and it goes when the holder exits, however it exits.

#include <string>

#include "switchyard/util/result.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::control {

class WriterLock {
public:
    // The lock file of a state file.
    static std::string pathFor(const std::string& stateFile) { return stateFile + ".lock"; }

    // Takes the lock of `stateFile`, or says who is in the way.
    Result<bool> take(const std::string& stateFile);
    void release() { fd_.reset(); }
    bool held() const { return fd_.valid(); }

private:
    UniqueFd fd_;
};

} // namespace switchyard::control
