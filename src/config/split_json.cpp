#include "switchyard/config/split_json.h"

#include <stdexcept>

namespace switchyard::config {

nlohmann::json splitToJson(const Split& split) { return {{"blue", split.blue}, {"green", split.green}}; }

Split splitFromJson(const nlohmann::json& j) {
    Split s;
    s.blue = j.at("blue").get<uint32_t>();
    s.green = j.at("green").get<uint32_t>();
    if (s.blue > kMaxWeight || s.green > kMaxWeight) throw std::out_of_range("split weight over 1000");
    return s;
}

} // namespace switchyard::config
