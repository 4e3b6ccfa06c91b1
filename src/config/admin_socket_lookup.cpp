#include "switchyard/config/admin_socket_lookup.h"

#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace switchyard::config {

Result<std::string> lookupAdminSocket(const std::string& path) {
    std::ifstream in(path);
    if (!in) return Result<std::string>::failure(path + ": cannot read the configuration file");
    std::stringstream text;
    text << in.rdbuf();
    try {
        const YAML::Node root = YAML::Load(text.str());
        if (!root.IsMap()) return std::string();
        const YAML::Node admin = root["admin"];
        if (!admin || !admin.IsMap()) return std::string();
        const YAML::Node socket = admin["socket"];
        if (!socket || socket.IsNull()) return std::string();
        if (!socket.IsScalar())
            return Result<std::string>::failure(path + ": admin.socket is not a path");
        return socket.as<std::string>();
    } catch (const YAML::Exception& e) {
        return Result<std::string>::failure(path + ": " + e.what());
    }
}

} // namespace switchyard::config
