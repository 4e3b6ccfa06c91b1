#pragma once

// Command-line flags of switchyardctl. Flags may appear before or after the
// command words (`switchyardctl backend web blue ADDR drain --wait`); "--" ends them.

#include <chrono>
#include <cstdint>
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
    std::optional<std::string> config;        // -c/--config: the socket its admin.socket names
    std::optional<std::string> tcp;           // --tcp HOST:PORT (else $SWITCHYARD_ADMIN_TCP)
    std::optional<std::string> tokenFile;     // --token-file FILE (else $SWITCHYARD_ADMIN_TOKEN_FILE)
    bool json = false;
    bool wait = false;
    bool check = false;                       // --check: `reload --check` is `reload-check`
    std::optional<std::chrono::milliseconds> timeout;
    std::optional<std::string> binary;        // upgrade --binary PATH
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

// With -c FILE and no -s: sets options.socket to the socket FILE's admin.socket
// names, or to the daemon's default when it names none. A file that cannot be
// read is reported on stderr and the usual resolution applies.
void applyConfigSocket(CtlOptions& options);

// Where to send commands: the Unix socket, or the TCP listener with its token.
struct AdminTarget {
    std::string socketPath;        // when tcpHost is empty
    std::string tcpHost;           // numeric, without brackets
    uint16_t tcpPort = 0;
    std::string token;
    bool tcp() const { return !tcpHost.empty(); }
    std::string describe() const;  // "socket /run/..." or "tcp 127.0.0.1:9901"
};

// --tcp/--token-file (or their environment variables) else the socket. On a
// usage or token-file problem returns nullopt with `error` set.
std::optional<AdminTarget> resolveTarget(const CtlOptions& options, UsageError& error);

// Full --help text.
std::string usageText();

} // namespace switchyard::ctl
