#include "switchyard/config/duration.h"

#include <array>
#include <cstdint>
#include <limits>

namespace switchyard::config {

namespace {

struct Unit {
    std::string_view suffix;
    int64_t ms;
};

// Longest suffix first so "ms" is not read as "m" followed by junk.
constexpr std::array<Unit, 4> kUnits{{{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}}};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

} // namespace

std::optional<Duration> parseDuration(std::string_view text) {
    if (text == "0") return Duration{0};

    std::size_t i = 0;
    int64_t whole = 0;
    std::size_t wholeDigits = 0;
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    bool saturated = false;   // read on to check the syntax, then answer max()
    while (i < text.size() && isDigit(text[i])) {
        int d = text[i] - '0';
        if (saturated || whole > (kMax - d) / 10)
            saturated = true;
        else
            whole = whole * 10 + d;
        ++i;
        ++wholeDigits;
    }
    if (wholeDigits == 0) return std::nullopt;

    // An optional decimal fraction ("1.5s"), accepted only when it is a whole number of ms.
    int64_t frac = 0;
    int64_t fracScale = 1;
    if (i < text.size() && text[i] == '.') {
        ++i;
        std::size_t fracDigits = 0;
        while (i < text.size() && isDigit(text[i])) {
            if (fracDigits == 9) return std::nullopt;   // finer than any unit can make exact
            frac = frac * 10 + (text[i] - '0');
            fracScale *= 10;
            ++i;
            ++fracDigits;
        }
        if (fracDigits == 0) return std::nullopt;
    }

    std::string_view suffix = text.substr(i);
    for (const auto& unit : kUnits) {
        if (suffix != unit.suffix) continue;
        if (saturated || whole > kMax / unit.ms) return Duration::max();
        int64_t ms = whole * unit.ms;
        // frac < fracScale <= 1e9 and unit.ms <= 3.6e6, so this product fits in int64.
        int64_t fracMsScaled = frac * unit.ms;
        if (fracMsScaled % fracScale != 0) return std::nullopt;
        int64_t fracMs = fracMsScaled / fracScale;
        if (ms > kMax - fracMs) return Duration::max();
        return Duration{ms + fracMs};
    }
    return std::nullopt;
}

std::string maxDurationText() { return "365 days (8760h)"; }

Duration saturatingMultiply(Duration d, int64_t factor) {
    if (factor != 0 && d.count() > std::numeric_limits<int64_t>::max() / factor) return Duration::max();
    return d * factor;
}

std::string formatDuration(Duration d) {
    int64_t ms = d.count();
    if (ms == 0) return "0s";
    std::string sign;
    uint64_t mag = 0;
    if (ms < 0) {
        sign = "-";
        mag = static_cast<uint64_t>(-(ms + 1)) + 1;   // no overflow on INT64_MIN
    } else {
        mag = static_cast<uint64_t>(ms);
    }
    for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
        auto unitMs = static_cast<uint64_t>(it->ms);
        if (mag % unitMs == 0) return sign + std::to_string(mag / unitMs) + std::string(it->suffix);
    }
    return sign + std::to_string(mag) + "ms";   // not reached: every value is a whole number of ms
}

} // namespace switchyard::config
