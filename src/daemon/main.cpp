// switchyard: the daemon. See `switchyard --help` and man/switchyard.8.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "switchyard/admin/admin_auth.h"
#include "switchyard/config/config_loader.h"
#include "switchyard/daemon/build_info.h"
#include "switchyard/daemon/daemon.h"
#include "switchyard/fleet/etcd_tls.h"
#include "switchyard/util/secret_file.h"
#include "switchyard/daemon/handover.h"

namespace {

constexpr const char* kUsage = R"(Usage: switchyard -c FILE [--check]
       switchyard --demo
       switchyard -V | --version | --handover-version | --help

A Layer-4 (TCP) load balancer for blue/green and progressive delivery.

Options:
  -c, --config FILE   run with this YAML config (default /etc/switchyard/switchyard.yaml)
  --check             validate the config and exit (0 valid, 2 invalid)
  --demo              run the built-in demo: service `demo` on 127.0.0.1:8080,
                      built-in backends blue-1, blue-2, green-1, green-2
  -V, --version       print the version and build details (for bug reports)
  --handover-version  print the version of the upgrade hand-over protocol this
                      binary speaks (`switchyardctl upgrade` needs both sides equal)
  --handover-fd N     (started by `upgrade` only) take the listening sockets
                      from the running generation over descriptor N
  -h, --help          this text

Upgrade without cutting a connection: switchyardctl upgrade.
Signals: SIGHUP reloads the config; SIGTERM stops accepting and lets open
connections finish for up to shutdown_grace (a second SIGTERM exits at once).
Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
Admin: switchyardctl(1). Configuration keys: docs/configuration.md.
)";

int usageError(const std::string& message) {
    std::fprintf(stderr, "switchyard: %s\n%s", message.c_str(), kUsage);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::string configPath;
    bool check = false;
    bool demo = false;
    int handoverFd = -1;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-c" || arg == "--config") {
            if (i + 1 >= argc) return usageError(std::string(arg) + " needs a file");
            configPath = argv[++i];
        } else if (arg.starts_with("--config=")) {
            configPath = std::string(arg.substr(9));
        } else if (arg == "--check") {
            check = true;
        } else if (arg == "--demo") {
            demo = true;
        } else if (arg == "-V" || arg == "--version") {
            std::fputs(switchyard::daemon::versionReport("switchyard").c_str(), stdout);
            return 0;
        } else if (arg == "--handover-version") {
            std::printf("%d\n", switchyard::daemon::kHandoverVersion);
            return 0;
        } else if (arg == "--handover-fd") {
            if (i + 1 >= argc) return usageError("--handover-fd needs a descriptor number");
            char* end = nullptr;
            const long fd = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || fd < 3 || fd > 65535) return usageError("--handover-fd needs a descriptor number");
            handoverFd = static_cast<int>(fd);
        } else if (arg == "-h" || arg == "--help") {
            std::fputs(kUsage, stdout);
            return 0;
        } else {
            return usageError("unknown argument '" + std::string(arg) + "'");
        }
    }
    if (demo && (check || !configPath.empty())) return usageError("--demo takes no config");

    switchyard::daemon::DaemonOptions options;
    options.demo = demo;
    options.handoverFd = handoverFd;
    if (!demo) {
        if (configPath.empty()) configPath = "/etc/switchyard/switchyard.yaml";
        auto loaded = switchyard::config::loadConfigFile(configPath);
        if (!loaded) {
            std::fprintf(stderr, "%s\n", loaded.errorText().c_str());
            std::fprintf(stderr, "switchyard: %s: configuration is invalid\n", configPath.c_str());
            return 2;
        }
        if (check) {
            // The daemon refuses to start (exit 2) on a bad token file: --check says so first.
            if (loaded->admin.tcp) {
                if (auto token = switchyard::admin::loadAdminToken(loaded->admin.tokenFile); !token) {
                    std::fprintf(stderr, "%s: admin.token_file: %s\n", configPath.c_str(), token.errorText().c_str());
                    std::fprintf(stderr, "switchyard: %s: configuration is invalid\n", configPath.c_str());
                    return 2;
                }
            }
            if (loaded->fleet.tls()) {
                if (auto tls = switchyard::fleet::makeEtcdTlsContext(loaded->fleet); !tls) {
                    std::fprintf(stderr, "%s: %s\n", configPath.c_str(), tls.errorText().c_str());
                    std::fprintf(stderr, "switchyard: %s: configuration is invalid\n", configPath.c_str());
                    return 2;
                }
            }
            if (!loaded->fleet.user.empty()) {
                if (auto password = switchyard::readSecretFile(loaded->fleet.passwordFile, "fleet.password_file", 4096);
                    !password) {
                    std::fprintf(stderr, "%s: %s\n", configPath.c_str(), password.errorText().c_str());
                    std::fprintf(stderr, "switchyard: %s: configuration is invalid\n", configPath.c_str());
                    return 2;
                }
            }
            std::printf("%s: configuration OK (%zu service(s))\n", configPath.c_str(), loaded->services.size());
            return 0;
        }
        options.config = std::move(loaded).value();
    }
    return switchyard::daemon::runDaemon(std::move(options));
}
