#include "switchyard/admin/admin_auth.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "switchyard/util/secret_file.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::admin {
namespace {

bool contains(const std::vector<uint32_t>& ids, uint32_t id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

bool matches(const config::AdminAccessList& list, const PeerCredentials& peer) {
    if (contains(list.uids, peer.uid) || contains(list.gids, peer.gid)) return true;
    return std::any_of(peer.groups.begin(), peer.groups.end(), [&](gid_t g) { return contains(list.gids, g); });
}

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

} // namespace

const char* toString(AccessLevel level) {
    switch (level) {
    case AccessLevel::None: return "none";
    case AccessLevel::ReadOnly: return "read-only";
    case AccessLevel::Admin: return "admin";
    }
    return "none";
}

PeerCredentials peerCredentials(int fd) {
    PeerCredentials peer;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return peer;
    peer.pid = cred.pid;
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    peer.known = true;
#ifdef SO_PEERGROUPS
    // Group membership as the peer had it when it connected (Linux >= 4.13);
    // without it only the primary gid counts.
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 3; ++attempt) {
        socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
            groups.resize(size / sizeof(gid_t));
            peer.groups = std::move(groups);
            break;
        }
        if (errno != ERANGE || size / sizeof(gid_t) > 65536) break;
        groups.resize(size / sizeof(gid_t) + 1);
    }
#endif
    return peer;
}

std::string describe(const PeerCredentials& peer) {
    if (!peer.known) return "unknown peer";
    return fmt::format("pid {} uid {} gid {}", peer.pid, peer.uid, peer.gid);
}

AccessPolicy::AccessPolicy(const config::AdminConfig& config, uid_t selfUid)
    : allow_(config.allow), readOnly_(config.readOnly), selfUid_(selfUid) {}

AccessLevel AccessPolicy::levelFor(const PeerCredentials& peer) const {
    if (!peer.known) return restricted() ? AccessLevel::None : AccessLevel::Admin;
    if (peer.uid == 0 || peer.uid == selfUid_) return AccessLevel::Admin;
    if (allow_.configured && matches(allow_, peer)) return AccessLevel::Admin;
    if (readOnly_.configured && matches(readOnly_, peer)) return AccessLevel::ReadOnly;
    // Without an allow-list the socket's mode and group decide, as for any
    // Unix daemon socket; naming one makes it the whole list of admins.
    return allow_.configured ? AccessLevel::None : AccessLevel::Admin;
}

bool permits(AccessLevel level, CommandKind kind) {
    switch (level) {
    case AccessLevel::Admin: return true;
    case AccessLevel::ReadOnly: return !isChange(kind);
    case AccessLevel::None: return false;
    }
    return false;
}

Result<std::string> loadAdminToken(const std::string& path) {
    using R = Result<std::string>;
    auto read = readSecretFile(path, "token file", kMaxTokenLength);
    if (!read) return read;
    const std::string& token = *read;
    if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength)
        return R::failure(fmt::format("token file {}: the token must be {} to {} bytes, this one has {} "
                                      "(e.g. openssl rand -hex 32 > {})",
                                      path, kMinTokenLength, kMaxTokenLength, token.size(), path));
    for (unsigned char c : token)
        if (c < 0x21 || c == 0x7f)
            return R::failure(fmt::format(
                "token file {}: the token must be one word of printable characters (no spaces)", path));
    return token;
}

bool tokenMatches(std::string_view expected, std::string_view given) {
    // Runs over `expected` whatever `given` is; no early exit on a difference.
    volatile unsigned char diff = expected.size() == given.size() ? 0 : 1;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
        diff = diff | static_cast<unsigned char>(static_cast<unsigned char>(expected[i]) ^ g);
    }
    return !expected.empty() && diff == 0;
}

std::string_view authLineToken(std::string_view line) {
    constexpr std::string_view kWord = "auth ";
    if (!line.starts_with(kWord)) return {};
    std::string_view token = line.substr(kWord.size());
    while (!token.empty() && isSpace(token.front())) token.remove_prefix(1);
    while (!token.empty() && isSpace(token.back())) token.remove_suffix(1);
    return token;
}

} // namespace switchyard::admin
