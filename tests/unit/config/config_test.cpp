#include "switchyard/config/config.h"

#include <string>

#include <catch2/catch.hpp>

using namespace switchyard::config;

TEST_CASE("enum names are the words of the config file", "[config]") {
    CHECK(std::string(toString(Balance::RoundRobin)) == "roundrobin");
    CHECK(std::string(toString(Balance::LeastConn)) == "leastconn");
    CHECK(std::string(toString(Balance::Hash)) == "hash");
    CHECK(std::string(toString(Affinity::None)) == "none");
    CHECK(std::string(toString(Affinity::Client)) == "client");
    CHECK(std::string(toString(ProxyProtocol::None)) == "none");
    CHECK(std::string(toString(ProxyProtocol::V1)) == "v1");
    CHECK(std::string(toString(ProxyProtocol::V2)) == "v2");
    CHECK(std::string(toString(HealthType::Tcp)) == "tcp");
    CHECK(std::string(toString(HealthType::SendExpect)) == "send_expect");
    CHECK(std::string(toString(HealthType::Http)) == "http");
    CHECK(std::string(toString(Restore::Manual)) == "manual");
    CHECK(std::string(toString(Restore::Auto)) == "auto");
    CHECK(std::string(toString(Engine::Auto)) == "auto");
    CHECK(std::string(toString(Engine::IoUring)) == "io_uring");
    CHECK(std::string(toString(Engine::Epoll)) == "epoll");
    CHECK(std::string(toString(LogLevel::Trace)) == "trace");
    CHECK(std::string(toString(LogLevel::Debug)) == "debug");
    CHECK(std::string(toString(LogLevel::Info)) == "info");
    CHECK(std::string(toString(LogLevel::Warn)) == "warn");
    CHECK(std::string(toString(LogLevel::Error)) == "error");
    CHECK(std::string(toString(LogLevel::Critical)) == "critical");
    CHECK(std::string(toString(LogLevel::Off)) == "off");
    CHECK(std::string(toString(Colour::Blue)) == "blue");
    CHECK(std::string(toString(Colour::Green)) == "green");
}

TEST_CASE("Config::findService finds by exact name", "[config]") {
    Config cfg;
    cfg.services.resize(2);
    cfg.services[0].name = "web";
    cfg.services[1].name = "api";
    REQUIRE(cfg.findService("api") == &cfg.services[1]);
    REQUIRE(cfg.findService("web") == &cfg.services[0]);
    CHECK(cfg.findService("WEB") == nullptr);
    CHECK(cfg.findService("") == nullptr);
    CHECK(Config{}.findService("web") == nullptr);
}

TEST_CASE("defaults of the config structs match docs/configuration.md", "[config]") {
    ServiceConfig s;
    CHECK(s.split == Split{100, 0});
    CHECK(s.drainTimeout == Duration{30000});
    CHECK(s.drainSpread == Duration{3000});
    CHECK(s.retries == 2);
    CHECK(s.maxConnections == 20000);
    CHECK(s.health.interval == Duration{2000});
    CHECK(s.health.timeout == Duration{1000});
    CHECK(s.fallback.hold == Duration{30000});
    Config c;
    CHECK(c.admin.socketMode == 0660u);
    CHECK(c.stateFile == "/var/lib/switchyard/state.json");
    CHECK(c.shutdownGrace == Duration{5000});
}
