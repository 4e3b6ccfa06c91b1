#include "fuzz_target.h"

#include <spdlog/spdlog.h>

namespace switchyard::fuzz {

std::vector<Target>& targets() {
    static std::vector<Target> all;
    return all;
}

void quietLogs() {
    static const bool once = [] {
        spdlog::set_level(spdlog::level::off);
        return true;
    }();
    (void)once;
}

} // namespace switchyard::fuzz
