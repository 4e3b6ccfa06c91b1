#pragma once

// One backend's active-check state machine: rise/fall hysteresis over
// consecutive results (HAProxy's model).
//
//   (start: up, unchecked) --first result--> up (pass) | down (fail)
//   up   --fall failures in a row--> down
//   down --rise passes in a row----> up
//
// The first result decides alone (docs/semantics.md "Health at start": backends start
// assumed up and are checked at once), so a backend that is dead at start is
// out of rotation after one check, not after `fall` of them.

#include <cstdint>

namespace switchyard::health {

class CheckState {
public:
    enum class Change { None, WentDown, WentUp };

    // Records one check result under the current rise/fall.
    Change record(bool passed, uint32_t rise, uint32_t fall);

    // Starts from a verdict known before (the previous generation's, `upgrade`):
    // down needs `rise` passes to come up, up needs `fall` failures to go down.
    void assume(bool healthy) {
        healthy_ = healthy;
        checked_ = true;
    }

    bool healthy() const { return healthy_; }
    bool checked() const { return checked_; }
    // Failed checks in a row (0 after a pass).
    uint32_t failuresInARow() const { return failures_; }

private:
    bool healthy_ = true;
    bool checked_ = false;
    uint32_t passes_ = 0;
    uint32_t failures_ = 0;
};

} // namespace switchyard::health
