#pragma once

// Work other threads hand a worker (snapshots, listeners, the watchdog's
// heartbeat): queued under a mutex and announced on an eventfd that the
// worker's loop watches (a read in the io_uring engine's ring, an entry in the
// epoll engine's set). Only post() is called from other threads.

#include <functional>
#include <mutex>
#include <vector>

#include "switchyard/util/unique_fd.h"

namespace switchyard::proxy {

class PostedTasks {
public:
    // `nonBlocking`: for a loop that reads the eventfd itself (acknowledge()).
    explicit PostedTasks(bool nonBlocking);

    bool valid() const { return wakeFd_.valid(); }
    // errno of a failed eventfd(2), for the worker's log line.
    int error() const { return error_; }
    int fd() const { return wakeFd_.get(); }

    void post(std::function<void()> task);
    // Resets the eventfd's count (a loop that is told it is readable).
    void acknowledge();
    // Runs every task queued so far, in order; tasks posted meanwhile wait for the next wake-up.
    void runAll();

private:
    UniqueFd wakeFd_;
    int error_ = 0;
    std::mutex mutex_;
    std::vector<std::function<void()>> tasks_;
};

} // namespace switchyard::proxy
