#pragma once

// One active health check against one backend, as an Asio coroutine on the
// control thread's io_context: `tcp` connects, `send_expect` sends bytes and
// waits for a substring, `http` sends a GET and compares the status. The whole
// check (connect included) is bounded by health.timeout, so a backend that
// accepts and never answers fails it instead of stalling anything.

#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "switchyard/config/config.h"
#include "switchyard/telemetry/health_check_counters.h"

namespace switchyard::health {

struct CheckResult {
    bool passed = false;
    std::string failure;   // why it failed, for status' last_failure and the log
    // The check could not run for a reason of this host's (no fds, no ports):
    // it says nothing about the backend and is not counted.
    bool localError = false;
    // Why, as a bounded word for metrics; empty when it passed or on a local error.
    std::optional<telemetry::CheckFailure> kind;
};

// `hostHeader` is what an http check sends as Host (the backend's address).
boost::asio::awaitable<CheckResult> runCheck(boost::asio::ip::tcp::endpoint endpoint, config::HealthConfig check,
                                             std::string hostHeader);

// The status code of an HTTP/1.x status line ("HTTP/1.1 200 OK"), or -1.
int parseHttpStatus(const std::string& statusLine);

} // namespace switchyard::health
