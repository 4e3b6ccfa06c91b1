#include "switchyard/telemetry/health_check_counters.h"

namespace switchyard::telemetry {

std::string_view toString(CheckFailure failure) {
    switch (failure) {
    case CheckFailure::Timeout: return "timeout";
    case CheckFailure::Refused: return "refused";
    case CheckFailure::ConnectError: return "connect_error";
    case CheckFailure::IoError: return "io_error";
    case CheckFailure::Closed: return "closed";
    case CheckFailure::BadResponse: return "bad_response";
    case CheckFailure::BadStatus: return "bad_status";
    }
    return "unknown";
}

void HealthCheckCounters::record(std::chrono::microseconds took, const CheckFailure* failure) {
    attempts_.add();
    if (failure) failures_[static_cast<std::size_t>(*failure)].add();
    const auto micros = static_cast<uint64_t>(took.count() < 0 ? 0 : took.count());
    std::size_t bucket = 0;
    while (bucket < kCheckDurationBounds.size() && static_cast<double>(micros) > kCheckDurationBounds[bucket] * 1e6)
        ++bucket;
    durations_[bucket].add();
    durationSumMicros_.add(micros);
}

std::array<uint64_t, kCheckDurationBounds.size() + 1> HealthCheckCounters::durationBuckets() const {
    std::array<uint64_t, kCheckDurationBounds.size() + 1> out{};
    uint64_t running = 0;
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = running += durations_[i].get();
    return out;
}

} // namespace switchyard::telemetry
