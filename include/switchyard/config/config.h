#pragma once

// The validated configuration: plain values, no YAML types. config/ is the only
// area that sees yaml-cpp; everything else works from these structs.
// docs/configuration.md documents every key, its type, default and meaning.

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "switchyard/config/duration.h"
#include "switchyard/config/endpoint.h"

namespace switchyard::config {

enum class Colour { Blue = 0, Green = 1 };
inline constexpr std::array<Colour, 2> kColours{Colour::Blue, Colour::Green};
inline const char* toString(Colour c) { return c == Colour::Blue ? "blue" : "green"; }
inline Colour other(Colour c) { return c == Colour::Blue ? Colour::Green : Colour::Blue; }
inline std::size_t index(Colour c) { return static_cast<std::size_t>(c); }

enum class Balance { RoundRobin, LeastConn, Hash };
enum class Affinity { None, Client };
enum class ProxyProtocol { None, V1, V2 };
enum class HealthType { Tcp, SendExpect, Http };
enum class Restore { Manual, Auto };
enum class Engine { Auto, IoUring, Epoll };
enum class LogLevel { Trace, Debug, Info, Warn, Error, Critical, Off };

const char* toString(Balance b);
const char* toString(Affinity a);
const char* toString(ProxyProtocol p);
const char* toString(HealthType h);
const char* toString(Restore r);
const char* toString(Engine e);
const char* toString(LogLevel l);

inline constexpr uint32_t kMaxWeight = 1000;

struct Split {
    uint32_t blue = 100;
    uint32_t green = 0;
    uint32_t weight(Colour c) const { return c == Colour::Blue ? blue : green; }
    uint32_t& weight(Colour c) { return c == Colour::Blue ? blue : green; }
    bool operator==(const Split&) const = default;
};

struct BackendConfig {
    Endpoint address;
    uint32_t weight = 100;   // 0..1000; 0 takes no new connections
    uint32_t maxConnections = 0;   // open connections this backend takes at most; 0 = unlimited
    bool operator==(const BackendConfig&) const = default;
};

struct HttpCheck {
    std::string path = "/healthz";
    int expectStatus = 200;
    bool operator==(const HttpCheck&) const = default;
};

struct SendExpectCheck {
    std::string send;
    std::string expect;
    bool operator==(const SendExpectCheck&) const = default;
};

struct HealthConfig {
    HealthType type = HealthType::Tcp;
    Duration interval{2000};
    Duration timeout{1000};
    uint32_t rise = 2;
    uint32_t fall = 3;
    HttpCheck http;
    SendExpectCheck sendExpect;
    bool operator==(const HealthConfig&) const = default;
};

// fallback.min_healthy: a count of backends, or a percentage of the pool.
struct MinHealthy {
    uint32_t value = 1;
    bool percent = false;
    bool operator==(const MinHealthy&) const = default;
};

struct FallbackConfig {
    MinHealthy minHealthy;
    Restore restore = Restore::Manual;
    Duration hold{30000};
    bool operator==(const FallbackConfig&) const = default;
};

// Passive outlier detection: consecutive connect failures or resets before
// the first byte, seen on real traffic, eject a backend for a while.
struct OutlierDetectionConfig {
    bool enabled = true;
    uint32_t consecutiveFailures = 5;
    Duration baseEjection{10000};       // doubles on repeat
    Duration maxEjection{300000};       // the doubling stops here
    uint32_t maxEjectionPercent = 50;   // of a pool's backends at once
    bool operator==(const OutlierDetectionConfig&) const = default;
};

struct Timeouts {
    Duration connect{2000};
    Duration idle{300000};
    // Once one side has sent its FIN: the idle timeout of what is left of the
    // connection (HAProxy's client-fin/server-fin), so half-closed sessions
    // whose peer never finishes do not hold descriptors for `idle`.
    Duration halfClosed{30000};
    bool operator==(const Timeouts&) const = default;
};

struct ServiceConfig {
    std::string name;
    Endpoint listen;
    Balance balance = Balance::RoundRobin;
    Affinity affinity = Affinity::None;
    Split split;
    Duration drainTimeout{30000};
    Duration drainSpread{3000};   // default: a tenth of drainTimeout
    Timeouts timeouts;
    uint32_t retries = 2;
    uint32_t maxConnections = 20000;
    ProxyProtocol proxyProtocol = ProxyProtocol::None;
    bool acceptProxy = false;                // read a PROXY v1/v2 header from the client first
    Duration acceptProxyTimeout{3000};       // ... within this long, or close
    Duration slowStart{0};                   // ramp of a joining or returning backend; 0 = off
    HealthConfig health;
    FallbackConfig fallback;
    OutlierDetectionConfig outlierDetection;
    std::array<std::vector<BackendConfig>, 2> pools;   // indexed by Colour

    std::vector<BackendConfig>& pool(Colour c) { return pools[index(c)]; }
    const std::vector<BackendConfig>& pool(Colour c) const { return pools[index(c)]; }
    bool operator==(const ServiceConfig&) const = default;
};

// admin.allow / admin.read_only: Unix peers by uid or group (names resolved at load).
struct AdminAccessList {
    bool configured = false;            // the key was given (even as an empty list)
    std::vector<uint32_t> uids;
    std::vector<uint32_t> gids;
    bool operator==(const AdminAccessList&) const = default;
};

struct AdminConfig {
    std::string socket;                 // empty: the default path (docs/configuration.md, admin.socket)
    uint32_t socketMode = 0660;
    std::optional<Endpoint> tcp;
    std::string tokenFile;
    AdminAccessList allow;              // admin level (changes); see docs/configuration.md
    AdminAccessList readOnly;           // status, rollout-status, help only
    bool operator==(const AdminConfig&) const = default;
};

struct MetricsConfig {
    std::optional<Endpoint> listen;     // nullopt: metrics off
    bool operator==(const MetricsConfig&) const = default;
};

enum class AccessLogFormat { Text, Json };

struct LogConfig {
    LogLevel level = LogLevel::Info;
    bool accessLog = false;
    std::string accessLogPath;          // empty: stderr (the journal under systemd)
    AccessLogFormat accessLogFormat = AccessLogFormat::Text;   // logfmt, or one JSON object a line
    bool operator==(const LogConfig&) const = default;
};

// fleet: several instances sharing operator intent through etcd (docs/fleet.md).
// Absent (etcd empty): the state file is the store, as without a fleet.
struct EtcdEndpoint {
    std::string host;                   // a name or an address, as written
    uint16_t port = 2379;
    bool tls = false;                   // https://
    bool operator==(const EtcdEndpoint&) const = default;
};

struct FleetConfig {
    std::vector<EtcdEndpoint> etcd;     // empty: no fleet
    std::string prefix;                 // every key of this fleet starts with it; ends with '/'
    std::string instance;               // this member's name; default: the host name
    Duration leaseTtl{10000};
    Duration dialTimeout{2000};
    std::string user;                   // etcd authentication; empty: none
    std::string passwordFile;           // the user's password (owner-only file), with `user`
    // TLS to etcd (https:// endpoints): the CA that signed etcd's certificate
    // (empty: the system's), and a client certificate with its key (owner-only file).
    std::string caFile;
    std::string certFile;
    std::string keyFile;
    bool tls() const {
        return std::any_of(etcd.begin(), etcd.end(), [](const EtcdEndpoint& e) { return e.tls; });
    }
    bool enabled() const { return !etcd.empty(); }
    bool operator==(const FleetConfig&) const = default;
};

// `upgrade`: how the old generation drains once the new one took over.
struct UpgradeConfig {
    Duration drainTimeout{3600000};   // upgrade.drain_timeout: its connections end by then
    Duration closeSpread{60000};      // upgrade.close_spread: the last ones close spread over this
    bool operator==(const UpgradeConfig&) const = default;
};

struct Config {
    AdminConfig admin;
    MetricsConfig metrics;
    std::string stateFile = "/var/lib/switchyard/state.json";   // empty: no persistence
    uint32_t workers = 0;               // 0 = auto (one per core)
    Engine engine = Engine::Auto;
    bool splice = true;                 // splice: auto | off (bulk flows relayed by splice(2))
    Duration shutdownGrace{5000};
    UpgradeConfig upgrade;
    LogConfig log;
    FleetConfig fleet;
    std::vector<ServiceConfig> services;

    std::string sourcePath;             // the file it was loaded from ("" for built-ins)

    const ServiceConfig* findService(std::string_view name) const;
};

} // namespace switchyard::config
