#pragma once

// Reading the daemon's JSON replies without exceptions: a missing key or a
// non-object reads as null, and any scalar prints as text.

#include <string>

#include <nlohmann/json.hpp>

namespace switchyard::ctl {

inline const nlohmann::json& field(const nlohmann::json& j, const char* key) {
    static const nlohmann::json kNull;
    if (!j.is_object()) return kNull;
    auto it = j.find(key);
    return it == j.end() ? kNull : *it;
}

// A scalar as text; null (and missing) as `ifNull`.
inline std::string scalarText(const nlohmann::json& j, const char* ifNull = "-") {
    if (j.is_null()) return ifNull;
    if (j.is_string()) return j.get<std::string>();
    return j.dump();
}

} // namespace switchyard::ctl
