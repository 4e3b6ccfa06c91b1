#pragma once

// Service name -> position, for the control plane's state and the routing
// snapshot. The set of services changes only at start and on reload, so one
// index is shared by every state and snapshot in between: a change of one
// service never rebuilds it, and a worker that sees the same index pointer
// knows its listeners' positions still hold.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace switchyard::routing {

class ServiceIndex {
public:
    static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

    std::size_t find(std::string_view name) const {
        const auto it = positions_.find(name);
        return it == positions_.end() ? kNone : it->second;
    }
    void add(std::string name, std::size_t position) { positions_.emplace(std::move(name), position); }
    std::size_t size() const { return positions_.size(); }

private:
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::size_t, Hash, std::equal_to<>> positions_;
};

using ServiceIndexPtr = std::shared_ptr<const ServiceIndex>;

} // namespace switchyard::routing
