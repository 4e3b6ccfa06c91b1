#pragma once

// Who may use the admin interface, and at which level (docs/configuration.md
// "admin", README "Security model"). Unix clients are identified by the kernel
// (SO_PEERCRED, SO_PEERGROUPS), TCP clients by a shared token.

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "switchyard/admin/command.h"
#include "switchyard/config/config.h"
#include "switchyard/util/result.h"

namespace switchyard::admin {

enum class AccessLevel {
    None,       // every command refused with `forbidden`
    ReadOnly,   // status, rollout-status, help
    Admin,      // everything
};

const char* toString(AccessLevel level);

struct PeerCredentials {
    pid_t pid = -1;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> groups;   // supplementary groups (SO_PEERGROUPS), may be empty
    bool known = false;          // false: the kernel would not say (never granted anything)
};

// The credentials of the process at the other end of a connected Unix socket.
PeerCredentials peerCredentials(int fd);

// "pid 123 uid 1000 gid 1000" for logs.
std::string describe(const PeerCredentials& peer);

class AccessPolicy {
public:
    // Everyone who can open the socket is an admin (the file mode and group decide).
    AccessPolicy() = default;
    // `selfUid`: the daemon's own uid, always admin like root: both can read
    // the daemon's memory and state file anyway, and ExecReload runs as it.
    AccessPolicy(const config::AdminConfig& config, uid_t selfUid);

    AccessLevel levelFor(const PeerCredentials& peer) const;

    bool restricted() const { return allow_.configured || readOnly_.configured; }

private:
    config::AdminAccessList allow_;
    config::AdminAccessList readOnly_;
    uid_t selfUid_ = 0;
};

// Whether a client at `level` may run `kind`.
bool permits(AccessLevel level, CommandKind kind);

// Reads the TCP admin token: the file must be a regular file, not readable or
// writable by group or others, and hold a token of at least kMinTokenLength
// bytes (surrounding whitespace ignored). The error never quotes the content.
inline constexpr std::size_t kMinTokenLength = 16;
inline constexpr std::size_t kMaxTokenLength = 1024;
Result<std::string> loadAdminToken(const std::string& path);

// Compares in time that depends only on the length of `expected`, so a
// client learns nothing from how long a refusal takes.
bool tokenMatches(std::string_view expected, std::string_view given);

// The token of an `auth TOKEN` line; empty when the line is anything else.
std::string_view authLineToken(std::string_view line);

} // namespace switchyard::admin
