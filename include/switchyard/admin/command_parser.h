#pragma once

#include <string_view>
#include <variant>

#include "switchyard/admin/command.h"

namespace switchyard::admin {

// The longest admin line accepted; longer lines are refused and the client closed.
inline constexpr std::size_t kMaxCommandLine = 4096;

// Parses one line (without its newline; a trailing '\r' is ignored).
std::variant<Command, ParseError> parseCommand(std::string_view line);

// The text of `help`: one line per command.
const char* helpText();

} // namespace switchyard::admin
