#pragma once

// What the active health checks of one backend did: attempts, failures by
// kind and how long each check took. The control thread (which runs every
// check) is the one writer; the metrics scrape reads.

#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "switchyard/telemetry/traffic_counters.h"

namespace switchyard::telemetry {

// Why a check failed, as a bounded metric label (HAProxy's L4TOUT, L4CON,
// L6RSP, L7RSP, L7STS).
enum class CheckFailure : uint8_t {
    Timeout,        // no verdict within health.timeout
    Refused,        // connect refused (RST)
    ConnectError,   // connect failed otherwise (unreachable, reset...)
    IoError,        // send or receive failed after connecting
    Closed,         // the backend closed before the expected reply
    BadResponse,    // a reply that is not what the check expects
    BadStatus,      // an HTTP status other than expect_status
};
inline constexpr std::size_t kCheckFailureKinds = 7;

std::string_view toString(CheckFailure failure);

// `le` bounds, in seconds, of the check duration histogram.
inline constexpr std::array<double, 12> kCheckDurationBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                            0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

class HealthCheckCounters {
public:
    // A check that ran to a verdict; `failure` null when it passed.
    void record(std::chrono::microseconds took, const CheckFailure* failure);

    uint64_t attempts() const { return attempts_.get(); }
    uint64_t failures(CheckFailure kind) const { return failures_[static_cast<std::size_t>(kind)].get(); }
    // Cumulative counts at each bound of kCheckDurationBounds (the last entry is +Inf).
    std::array<uint64_t, kCheckDurationBounds.size() + 1> durationBuckets() const;
    double durationSumSeconds() const { return static_cast<double>(durationSumMicros_.get()) / 1e6; }

private:
    Counter attempts_;
    std::array<Counter, kCheckFailureKinds> failures_;
    std::array<Counter, kCheckDurationBounds.size() + 1> durations_;   // not cumulative; last: above every bound
    Counter durationSumMicros_;
};

} // namespace switchyard::telemetry
