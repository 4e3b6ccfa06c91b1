#pragma once

// Command-line flags of switchyardctl. Flags may appear before or after the
// command words (`switchyardctl backend web blue ADDR drain --wait`); "--" ends them.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // command rejected or runtime failure
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitNotPromoted = 4;   // a rollout waited on ended without promotion
inline constexpr int kExitGenerationMismatch = 5;
inline constexpr int kExitInterrupted = 130;  // Ctrl-C while waiting (128 + SIGINT)

struct CtlOptions {
    std::optional<std::string> socket;        // -s/--socket
    bool json = false;
    bool wait = false;
    std::optional<std::chrono::milliseconds> timeout;
    bool help = false;
    bool version = false;
    std::vector<std::string> words;           // COMMAND ARGS...
};

struct UsageError {
    std::string message;
};

// Parses argv[1..]; returns the options or a usage error to print before exiting 2.
std::optional<CtlOptions> parseCtlOptions(int argc, char** argv, UsageError& error);

// The socket to use: -s, else $SWITCHYARD_SOCKET, else $XDG_RUNTIME_DIR/switchyard/admin.sock
// if it exists, else /run/switchyard/admin.sock.
std::string resolveSocketPath(const CtlOptions& options);

// Full --help text.
std::string usageText();

} // namespace switchyard::ctl
