#pragma once

// YAML -> validated Config. Every error names file, line, column and key path:
//   "switchyard.yaml:12:14: services[0].pools.blue[1].weight: 1200 is out of range 0..1000"
// Unknown keys are errors. A config that fails never replaces a running one.

#include <string>
#include <string_view>

#include "switchyard/config/config.h"
#include "switchyard/util/result.h"

namespace switchyard::config {

Result<Config> loadConfigFile(const std::string& path);

// `sourceName` stands for the file name in error messages.
Result<Config> loadConfigString(std::string_view yaml, const std::string& sourceName);

} // namespace switchyard::config
