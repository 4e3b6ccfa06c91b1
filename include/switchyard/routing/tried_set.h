#pragma once

// The backends one connection has already tried, per pool; no allocation.

#include <array>
#include <cstdint>

namespace switchyard::routing {

class TriedSet {
public:
    static constexpr std::size_t kCapacity = 64;
    bool contains(int index) const {
        for (std::size_t i = 0; i < count_; ++i)
            if (items_[i] == index) return true;
        return false;
    }
    void add(int index) {
        if (count_ < kCapacity && !contains(index)) items_[count_++] = index;
    }
    std::size_t size() const { return count_; }
    void clear() { count_ = 0; }

private:
    std::array<int, kCapacity> items_{};
    std::size_t count_ = 0;
};

} // namespace switchyard::routing
