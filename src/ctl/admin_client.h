#pragma once

// One request, one reply over the Unix admin socket (or the TCP listener, after
// `auth TOKEN`): blocking I/O bounded by a deadline. Not a hot path, so each request opens its own connection.

#include <chrono>
#include <string>

#include "ctl_options.h"

namespace switchyard::ctl {

using Clock = std::chrono::steady_clock;

struct AdminReply {
    enum class Status {
        Ok,            // `line` holds the reply (without its newline)
        Unreachable,   // could not connect; `error` is strerror of the cause
        Failed,        // connected, but the exchange broke or timed out; `error` says why
        Interrupted,   // a signal arrived and `interrupted()` said stop
    };
    Status status = Status::Failed;
    std::string line;
    std::string error;
};

class AdminClient {
public:
    // `interrupted` is polled whenever a blocking call returns EINTR.
    AdminClient(std::string socketPath, bool (*interrupted)() = nullptr)
        : interrupted_(interrupted) {
        target_.socketPath = std::move(socketPath);
    }
    AdminClient(AdminTarget target, bool (*interrupted)() = nullptr)
        : target_(std::move(target)), interrupted_(interrupted) {}

    const std::string& socketPath() const { return target_.socketPath; }
    const AdminTarget& target() const { return target_; }

    // Sends `line` plus a newline and reads one reply line, all before `deadline`.
    AdminReply request(const std::string& line, Clock::time_point deadline) const;

private:
    AdminTarget target_;
    bool (*interrupted_)();
};

} // namespace switchyard::ctl
