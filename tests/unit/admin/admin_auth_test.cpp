#include "switchyard/admin/admin_auth.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

using namespace switchyard;
using namespace switchyard::admin;

namespace {

PeerCredentials peer(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
    PeerCredentials p;
    p.pid = 42;
    p.uid = uid;
    p.gid = gid;
    p.groups = std::move(groups);
    p.known = true;
    return p;
}

std::string writeToken(const std::string& content, mode_t mode) {
    const auto path = std::filesystem::temp_directory_path() / ("sy-token-" + std::to_string(::getpid()));
    std::filesystem::remove(path);
    std::ofstream(path) << content;
    ::chmod(path.c_str(), mode);
    return path.string();
}

} // namespace

TEST_CASE("tokenMatches compares whole tokens", "[admin][auth]") {
    CHECK(tokenMatches("0123456789abcdef", "0123456789abcdef"));
    CHECK_FALSE(tokenMatches("0123456789abcdef", "0123456789abcdeX"));
    CHECK_FALSE(tokenMatches("0123456789abcdef", "0123456789abcde"));
    CHECK_FALSE(tokenMatches("0123456789abcdef", "0123456789abcdef0"));
    CHECK_FALSE(tokenMatches("0123456789abcdef", ""));
    CHECK_FALSE(tokenMatches("", ""));   // no token configured never authenticates
}

TEST_CASE("authLineToken takes only 'auth TOKEN'", "[admin][auth]") {
    CHECK(authLineToken("auth abc") == "abc");
    CHECK(authLineToken("auth   abc  ") == "abc");
    CHECK(authLineToken("auth").empty());
    CHECK(authLineToken("auth ").empty());
    CHECK(authLineToken("AUTH abc").empty());
    CHECK(authLineToken("status").empty());
}

TEST_CASE("access levels: no lists means the socket permissions decide", "[admin][auth]") {
    const AccessPolicy open;
    CHECK(open.levelFor(peer(1000, 1000)) == AccessLevel::Admin);
    CHECK(open.levelFor(PeerCredentials{}) == AccessLevel::Admin);
}

TEST_CASE("access levels with allow and read_only lists", "[admin][auth]") {
    config::AdminConfig c;
    c.allow.configured = true;
    c.allow.uids = {1001};
    c.allow.gids = {500};
    c.readOnly.configured = true;
    c.readOnly.uids = {1002, 1001};
    const AccessPolicy policy(c, 998);
    CHECK(policy.levelFor(peer(0, 0)) == AccessLevel::Admin);        // root
    CHECK(policy.levelFor(peer(998, 998)) == AccessLevel::Admin);    // the daemon's own uid
    CHECK(policy.levelFor(peer(1001, 1001)) == AccessLevel::Admin);  // allow wins over read_only
    CHECK(policy.levelFor(peer(1003, 500)) == AccessLevel::Admin);   // primary group
    CHECK(policy.levelFor(peer(1003, 1003, {7, 500})) == AccessLevel::Admin);   // supplementary group
    CHECK(policy.levelFor(peer(1002, 1002)) == AccessLevel::ReadOnly);
    CHECK(policy.levelFor(peer(1003, 1003)) == AccessLevel::None);
    CHECK(policy.levelFor(PeerCredentials{}) == AccessLevel::None);  // unknown peers get nothing
}

TEST_CASE("an empty allow list leaves only root and the daemon's uid", "[admin][auth]") {
    config::AdminConfig c;
    c.allow.configured = true;
    const AccessPolicy policy(c, 998);
    CHECK(policy.levelFor(peer(0, 0)) == AccessLevel::Admin);
    CHECK(policy.levelFor(peer(1000, 0)) == AccessLevel::None);
}

TEST_CASE("permits: read-only may look, not change", "[admin][auth]") {
    CHECK(permits(AccessLevel::ReadOnly, CommandKind::Status));
    CHECK(permits(AccessLevel::ReadOnly, CommandKind::RolloutStatus));
    CHECK(permits(AccessLevel::ReadOnly, CommandKind::Help));
    CHECK_FALSE(permits(AccessLevel::ReadOnly, CommandKind::Split));
    CHECK_FALSE(permits(AccessLevel::ReadOnly, CommandKind::Reload));
    CHECK_FALSE(permits(AccessLevel::None, CommandKind::Status));
    CHECK(permits(AccessLevel::Admin, CommandKind::Cutover));
}

TEST_CASE("loadAdminToken checks the file before trusting it", "[admin][auth]") {
    const std::string good = "0123456789abcdef0123";
    {
        const auto path = writeToken(good + "\n", 0600);
        auto t = loadAdminToken(path);
        REQUIRE(t.ok());
        CHECK(*t == good);
        std::filesystem::remove(path);
    }
    for (mode_t mode : {0640, 0604, 0620, 0660}) {
        const auto path = writeToken(good, mode);
        auto t = loadAdminToken(path);
        REQUIRE_FALSE(t.ok());
        CHECK(t.errorText().find("chmod 600") != std::string::npos);
        CHECK(t.errorText().find(good) == std::string::npos);
        std::filesystem::remove(path);
    }
    {
        const auto path = writeToken(" \n", 0600);
        CHECK(loadAdminToken(path).errorText().find("empty") != std::string::npos);
        std::filesystem::remove(path);
    }
    {
        const auto path = writeToken("short", 0600);
        auto t = loadAdminToken(path);
        CHECK(t.errorText().find("16 to 1024") != std::string::npos);
        CHECK(t.errorText().find("short") == std::string::npos);
        std::filesystem::remove(path);
    }
    {
        const auto path = writeToken("two words here in the token", 0600);
        CHECK_FALSE(loadAdminToken(path).ok());
        std::filesystem::remove(path);
    }
    CHECK(loadAdminToken("/nonexistent/switchyard.token").errorText().find("cannot open") != std::string::npos);
}
