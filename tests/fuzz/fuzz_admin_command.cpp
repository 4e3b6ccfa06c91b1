// The admin command parser: one line from any client of the admin socket (or
// the token-protected TCP listener). It must refuse garbage with a code, never
// crash or throw.

#include "fuzz_target.h"

#include <string_view>
#include <variant>

#include "switchyard/admin/command_parser.h"

using namespace switchyard;

SWITCHYARD_FUZZ_TARGET(admin_command)(const uint8_t* data, std::size_t size) {
    fuzz::quietLogs();
    // The server splits on '\n' and refuses lines over kMaxCommandLine before
    // parsing, but the parser must not rely on either.
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    auto parsed = admin::parseCommand(line);
    if (const auto* error = std::get_if<admin::ParseError>(&parsed)) {
        FUZZ_CHECK(!error->code.empty());
        FUZZ_CHECK(!error->message.empty());
        return 0;
    }
    const auto& command = std::get<admin::Command>(parsed);
    FUZZ_CHECK(admin::toString(command.kind) != nullptr);
    if (command.split) FUZZ_CHECK(command.split->blue <= config::kMaxWeight && command.split->green <= config::kMaxWeight);
    if (command.weight) FUZZ_CHECK(*command.weight <= config::kMaxWeight);
    if (command.kind == admin::CommandKind::Rollout) {
        // Steps rise within 1..100 (what the rollout controller assumes).
        FUZZ_CHECK(command.rollout.has_value());
        const auto& steps = command.rollout->steps;
        FUZZ_CHECK(!steps.empty());
        for (std::size_t i = 0; i < steps.size(); ++i) {
            FUZZ_CHECK(steps[i] >= 1 && steps[i] <= 100);
            if (i > 0) FUZZ_CHECK(steps[i] > steps[i - 1]);
        }
    }
    return 0;
}
