#include "switchyard/config/admin_socket_lookup.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include <unistd.h>

using namespace switchyard::config;

namespace {

// A YAML file in the temp directory, removed when the test ends.
struct TempYaml {
    std::string path;
    explicit TempYaml(const std::string& text) {
        char name[] = "/tmp/switchyard-socket-lookup-XXXXXX";
        int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = name;
        std::ofstream(path) << text;
    }
    ~TempYaml() { std::remove(path.c_str()); }
};

} // namespace

TEST_CASE("the admin socket a config names is found even when the rest is invalid", "[config][admin_socket]") {
    TempYaml yaml("admin: { socket: /srv/lb/admin.sock }\nservices: [ { name: web, bogus_key: 1 } ]\n");
    auto socket = lookupAdminSocket(yaml.path);
    REQUIRE(socket);
    CHECK(*socket == "/srv/lb/admin.sock");
}

TEST_CASE("a config without admin.socket gives the empty path (the default applies)", "[config][admin_socket]") {
    TempYaml none("services: []\n");
    CHECK(*lookupAdminSocket(none.path) == "");
    TempYaml noSocket("admin: { tcp: 127.0.0.1:9901 }\n");
    CHECK(*lookupAdminSocket(noSocket.path) == "");
    TempYaml empty("");
    CHECK(*lookupAdminSocket(empty.path) == "");
}

TEST_CASE("an unreadable or unparsable config is an error naming the file", "[config][admin_socket]") {
    auto missing = lookupAdminSocket("/nonexistent/switchyard.yaml");
    REQUIRE_FALSE(missing);
    CHECK(missing.errorText().find("/nonexistent/switchyard.yaml") != std::string::npos);
    TempYaml broken("admin: { socket: [unclosed\n");
    auto bad = lookupAdminSocket(broken.path);
    REQUIRE_FALSE(bad);
    CHECK(bad.errorText().find(broken.path) == 0);
    TempYaml notPath("admin: { socket: { a: 1 } }\n");
    auto wrong = lookupAdminSocket(notPath.path);
    REQUIRE_FALSE(wrong);
    CHECK(wrong.errorText() == notPath.path + ": admin.socket is not a path");
}
