#include "ctl_options.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include "switchyard/admin/admin_auth.h"
#include "switchyard/admin/command_parser.h"
#include "switchyard/config/admin_socket_lookup.h"
#include "switchyard/config/endpoint.h"
#include "switchyard/config/duration.h"

namespace switchyard::ctl {

std::optional<CtlOptions> parseCtlOptions(int argc, char** argv, UsageError& error) {
    CtlOptions options;
    bool flagsDone = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        // Command words never start with '-' (no negative numbers, IPv6 is bracketed),
        // so a dash always means a flag of ours.
        if (flagsDone || arg.empty() || arg.front() != '-') {
            options.words.emplace_back(arg);
            continue;
        }
        if (arg == "--") {
            flagsDone = true;
            continue;
        }

        // A flag with a value: "-s X", "--socket X", "--socket=X", "-sX".
        auto takeValue = [&](std::string_view longName, std::string_view shortName,
                             std::optional<std::string>& out) -> std::optional<bool> {
            std::string prefix = std::string(longName) + "=";
            if (arg.starts_with(prefix)) {
                out = std::string(arg.substr(prefix.size()));
                return true;
            }
            if (!shortName.empty() && arg.size() > shortName.size() && arg.starts_with(shortName)) {
                out = std::string(arg.substr(shortName.size()));
                return true;
            }
            if (arg != longName && (shortName.empty() || arg != shortName)) return std::nullopt;
            if (i + 1 >= argc) {
                error.message = fmt::format("option '{}' needs a value", arg);
                return false;
            }
            out = std::string(argv[++i]);
            return true;
        };

        if (arg == "--json") {
            options.json = true;
        } else if (arg == "--wait") {
            options.wait = true;
        } else if (arg == "--check") {
            options.check = true;
        } else if (arg == "-h" || arg == "--help") {
            options.help = true;
        } else if (arg == "-V" || arg == "--version") {
            options.version = true;
        } else if (auto took = takeValue("--socket", "-s", options.socket)) {
            if (!*took) return std::nullopt;
            if (options.socket->empty()) {
                error.message = "option '-s' needs a socket path";
                return std::nullopt;
            }
        } else if (auto tookConfig = takeValue("--config", "-c", options.config)) {
            if (!*tookConfig) return std::nullopt;
            if (options.config->empty()) {
                error.message = "option '-c' needs a configuration file";
                return std::nullopt;
            }
        } else if (auto tookTcp = takeValue("--tcp", "", options.tcp)) {
            if (!*tookTcp) return std::nullopt;
        } else if (auto tookToken = takeValue("--token-file", "", options.tokenFile)) {
            if (!*tookToken) return std::nullopt;
        } else if (auto tookBinary = takeValue("--binary", "", options.binary)) {
            if (!*tookBinary) return std::nullopt;
        } else {
            std::optional<std::string> timeout;
            auto tookTimeout = takeValue("--timeout", "", timeout);
            if (!tookTimeout) {
                error.message = fmt::format("unknown option '{}' (see --help)", arg);
                return std::nullopt;
            }
            if (!*tookTimeout) return std::nullopt;
            auto d = config::parseDuration(*timeout);
            if (!d || d->count() <= 0 || *d > config::kMaxDuration) {
                error.message = fmt::format("--timeout '{}' is not a positive duration (e.g. 500ms, 30s, 5m)", *timeout);
                return std::nullopt;
            }
            options.timeout = *d;
        }
    }
    if (!options.help && !options.version && options.words.empty()) {
        error.message = "no command given (try 'switchyardctl --help')";
        return std::nullopt;
    }
    return options;
}

namespace {

// Where the daemon puts its socket when the config names none.
std::string daemonDefaultSocket() {
    if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime && *runtime) {
        std::string path = std::string(runtime) + "/switchyard/admin.sock";
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) return path;
    }
    return "/run/switchyard/admin.sock";
}

} // namespace

std::string resolveSocketPath(const CtlOptions& options) {
    if (options.socket) return *options.socket;
    if (const char* env = std::getenv("SWITCHYARD_SOCKET"); env && *env) return env;
    return daemonDefaultSocket();
}

void applyConfigSocket(CtlOptions& options) {
    if (!options.config || options.socket) return;
    auto named = config::lookupAdminSocket(*options.config);
    if (!named) {
        std::fprintf(stderr, "switchyardctl: %s; using the default socket\n", named.errorText().c_str());
        return;
    }
    options.socket = named->empty() ? daemonDefaultSocket() : *named;
}

std::string AdminTarget::describe() const {
    if (!tcp()) return "socket " + socketPath;
    return tcpHost.find(':') != std::string::npos ? fmt::format("tcp [{}]:{}", tcpHost, tcpPort)
                                                  : fmt::format("tcp {}:{}", tcpHost, tcpPort);
}

std::optional<AdminTarget> resolveTarget(const CtlOptions& options, UsageError& error) {
    AdminTarget target;
    std::optional<std::string> tcp = options.tcp;
    std::optional<std::string> tokenFile = options.tokenFile;
    // -s names the socket: the environment's TCP settings do not override it.
    if (!tcp && !options.socket && !options.config)
        if (const char* env = std::getenv("SWITCHYARD_ADMIN_TCP"); env && *env) tcp = env;
    if (!tokenFile)
        if (const char* env = std::getenv("SWITCHYARD_ADMIN_TOKEN_FILE"); env && *env) tokenFile = env;
    if (!tcp) {
        target.socketPath = resolveSocketPath(options);
        return target;
    }
    if ((options.socket || options.config) && options.tcp) {
        error.message = options.socket && !options.config ? "-s and --tcp name two different daemons; give one"
                                                          : "-c and --tcp name two different daemons; give one";
        return std::nullopt;
    }
    std::string why;
    auto endpoint = config::parseEndpoint(*tcp, &why);
    if (!endpoint) {
        error.message = fmt::format("--tcp '{}': {}", *tcp, why);
        return std::nullopt;
    }
    if (!tokenFile) {
        error.message = "--tcp needs --token-file FILE (or SWITCHYARD_ADMIN_TOKEN_FILE)";
        return std::nullopt;
    }
    auto token = admin::loadAdminToken(*tokenFile);
    if (!token) {
        error.message = token.errorText();
        return std::nullopt;
    }
    target.tcpHost = endpoint->host;
    target.tcpPort = endpoint->port;
    target.token = std::move(token).value();
    return target;
}

std::string usageText() {
    std::string text =
        "Usage: switchyardctl [-s SOCKET | -c CONFIG | --tcp HOST:PORT --token-file FILE] [--json] [--wait]\n"
        "                     [--timeout DURATION] COMMAND [ARGS...]\n"
        "       switchyardctl --help | --version\n"
        "\n"
        "Sends one admin command to the switchyard daemon and prints its reply.\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH    admin socket (default: $SWITCHYARD_SOCKET, else\n"
        "                       $XDG_RUNTIME_DIR/switchyard/admin.sock if it exists,\n"
        "                       else /run/switchyard/admin.sock)\n"
        "  -c, --config FILE    the socket FILE's admin.socket names (the daemon's\n"
        "                       default if it names none); -s wins over it\n"
        "      --tcp HOST:PORT  use the daemon's TCP admin listener (admin.tcp) instead\n"
        "                       (default: $SWITCHYARD_ADMIN_TCP when -s is not given)\n"
        "      --token-file F   the token for --tcp: a file only its owner can read,\n"
        "                       holding the daemon's admin.token_file token\n"
        "                       (default: $SWITCHYARD_ADMIN_TOKEN_FILE)\n"
        "      --json           print the daemon's JSON reply line as is\n"
        "      --check          reload --check: show what a reload would change, apply nothing\n"
        "                       (the same as the command reload-check, or diff)\n"
        "      --wait           cutover: wait until the old pool has no connections left;\n"
        "                       backend ... drain: wait until that backend has none left;\n"
        "                       rollout: show its progress until it ends (exit 0 promoted,\n"
        "                       4 rolled back or aborted; Ctrl-C stops waiting, not the rollout);\n"
        "                       rollout-status: the same for the rollout already running\n"
        "      --timeout D      give up after D in total (e.g. 30s, 5m); default: no total\n"
        "                       limit; each request waits at most 10s for its reply;\n"
        "                       upgrade: how long the new process may take to be ready (60s)\n"
        "      --binary PATH    upgrade: start this binary (default: the daemon's own path)\n"
        "  -h, --help           this text\n"
        "  -V, --version        version and build details (for bug reports)\n"
        "\n"
        "Commands:\n";
    std::string_view help = admin::helpText();
    std::size_t pos = 0;
    while (pos < help.size()) {
        auto nl = help.find('\n', pos);
        if (nl == std::string_view::npos) nl = help.size();
        text += "  ";
        text += help.substr(pos, nl - pos);
        text += '\n';
        pos = nl + 1;
    }
    text +=
        "\n"
        "Exit status: 0 ok, 1 command refused or failed, 2 usage error, 3 daemon unreachable,\n"
        "4 a rollout waited on ended without promotion, 5 an if-generation condition lost\n"
        "its race, 130 interrupted while waiting.\n"
        "See docs/admin-protocol.md.\n";
    return text;
}

} // namespace switchyard::ctl
