#pragma once

// While descriptors are short, a listener's accept fails and pauses every
// 100 ms; one warning per listener every few seconds says so (with how many
// pauses went unlogged) instead of ten lines a second in the journal.

#include <chrono>
#include <cstdint>
#include <optional>

namespace switchyard::proxy {

class AcceptBackoffLog {
public:
    static constexpr std::chrono::seconds kInterval{5};

    // Pauses not logged since the last line, when a line is due now; nothing otherwise.
    std::optional<uint64_t> due(std::chrono::steady_clock::time_point now) {
        if (logged_ && now - last_ < kInterval) {
            ++quiet_;
            return std::nullopt;
        }
        logged_ = true;
        last_ = now;
        const uint64_t quiet = quiet_;
        quiet_ = 0;
        return quiet;
    }

private:
    std::chrono::steady_clock::time_point last_{};
    bool logged_ = false;
    uint64_t quiet_ = 0;
};

} // namespace switchyard::proxy
