#include "switchyard/health/check_state.h"

namespace switchyard::health {

CheckState::Change CheckState::record(bool passed, uint32_t rise, uint32_t fall) {
    const bool first = !checked_;
    checked_ = true;
    if (passed) {
        failures_ = 0;
        ++passes_;
        if (!healthy_ && passes_ >= rise) {
            healthy_ = true;
            return Change::WentUp;
        }
        return Change::None;
    }
    passes_ = 0;
    ++failures_;
    if (healthy_ && (first || failures_ >= fall)) {
        healthy_ = false;
        return Change::WentDown;
    }
    return Change::None;
}

} // namespace switchyard::health
