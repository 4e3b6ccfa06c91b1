#pragma once

// A secret kept in a file (the admin token, the etcd password): the file must
// be a regular file (not a link), readable by its owner only, not empty and
// not longer than `maxLength` (+ some whitespace). Surrounding whitespace is
// dropped. Errors start with `what` and the path and never quote the content.

#include <cstddef>
#include <string>
#include <string_view>

#include "switchyard/util/result.h"

namespace switchyard {

Result<std::string> readSecretFile(const std::string& path, std::string_view what, std::size_t maxLength);

} // namespace switchyard
