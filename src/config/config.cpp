#include "switchyard/config/config.h"

namespace switchyard::config {

// The words are the ones docs/configuration.md uses in the config file; status output and the
// state file reuse them, so they must stay exactly these.

const char* toString(Balance b) {
    switch (b) {
    case Balance::RoundRobin: return "roundrobin";
    case Balance::LeastConn: return "leastconn";
    case Balance::Hash: return "hash";
    }
    return "?";
}

const char* toString(Affinity a) {
    switch (a) {
    case Affinity::None: return "none";
    case Affinity::Client: return "client";
    }
    return "?";
}

const char* toString(ProxyProtocol p) {
    switch (p) {
    case ProxyProtocol::None: return "none";
    case ProxyProtocol::V1: return "v1";
    case ProxyProtocol::V2: return "v2";
    }
    return "?";
}

const char* toString(HealthType h) {
    switch (h) {
    case HealthType::Tcp: return "tcp";
    case HealthType::SendExpect: return "send_expect";
    case HealthType::Http: return "http";
    }
    return "?";
}

const char* toString(Restore r) {
    switch (r) {
    case Restore::Manual: return "manual";
    case Restore::Auto: return "auto";
    }
    return "?";
}

const char* toString(Engine e) {
    switch (e) {
    case Engine::Auto: return "auto";
    case Engine::IoUring: return "io_uring";
    case Engine::Epoll: return "epoll";
    }
    return "?";
}

const char* toString(LogLevel l) {
    switch (l) {
    case LogLevel::Trace: return "trace";
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
    case LogLevel::Critical: return "critical";
    case LogLevel::Off: return "off";
    }
    return "?";
}

const ServiceConfig* Config::findService(std::string_view name) const {
    for (const auto& s : services) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

} // namespace switchyard::config
