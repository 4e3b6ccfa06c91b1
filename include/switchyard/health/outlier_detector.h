#pragma once

// The control thread's half of passive outlier detection (the data path's half
// is routing/outlier_trip.h). Polled every 100 ms: turns a worker-set `ejected` flag
// into a formal ejection — base_ejection, doubled for each repeat, capped at
// max_ejection — and ends it at expiry by clearing the flag and the failure run.
// Flags beyond max_ejection_percent of a pool (two workers racing) and flags of
// a service whose outlier detection is off are cleared at once.
// The doubling decays one step per base_ejection spent back in rotation.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "switchyard/control/master_state.h"
#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::health {

struct OutlierEvent {
    enum class Kind { Ejected, Returned, Refused };
    Kind kind = Kind::Ejected;
    routing::BackendHandle backend;
    config::Duration duration{0};   // Ejected: how long
    uint32_t ejections = 0;         // Ejected: the backend's ejections so far, this one included
};

class OutlierDetector {
public:
    // Looks at every backend of `service`; returns what changed.
    std::vector<OutlierEvent> poll(const control::ServiceEntry& service, routing::TimePoint now);

    // Whether the control thread holds `backend` as formally ejected.
    bool ejected(const routing::BackendState* backend) const;
    // Ejection end of a formally ejected backend.
    routing::TimePoint ejectedUntil(const routing::BackendState* backend) const;

    // Whether any backend of `service` is formally ejected now.
    bool anyEjected(const control::ServiceEntry& service) const;

    // Drops the records of backends nothing else holds any more (removed ones).
    void dropGone();

private:
    struct Record {
        routing::BackendHandle backend;
        bool ejected = false;
        routing::TimePoint until{};
        uint32_t level = 0;                 // doublings for the next ejection
        routing::TimePoint returnedAt{};    // when the last ejection ended
    };
    std::unordered_map<const routing::BackendState*, Record> records_;
};

} // namespace switchyard::health
