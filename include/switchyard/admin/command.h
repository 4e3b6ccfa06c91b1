#pragma once

// One parsed admin command (docs/admin-protocol.md). The parser only checks
// syntax and value ranges; whether a service or backend exists, and the safety
// rules, are the control plane's business.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "switchyard/config/config.h"

namespace switchyard::admin {

enum class CommandKind {
    Status,          // status [SERVICE]
    Split,           // split SERVICE blue=W green=W
    Cutover,         // cutover SERVICE COLOUR
    Rollback,        // rollback SERVICE
    BackendWeight,   // backend SERVICE COLOUR ADDR weight=W
    BackendDrain,    // backend SERVICE COLOUR ADDR drain
    BackendDisable,  // backend SERVICE COLOUR ADDR disable
    BackendEnable,   // backend SERVICE COLOUR ADDR enable
    Add,             // add SERVICE COLOUR ADDR [weight=W]
    Remove,          // remove SERVICE COLOUR ADDR
    PoolOffline,     // pool SERVICE COLOUR offline
    PoolOnline,      // pool SERVICE COLOUR online
    Rollout,         // rollout SERVICE to=COLOUR steps=1,5,25,50,100 hold=60s [gates...]
    RolloutStatus,   // rollout-status SERVICE
    RolloutHistory,  // rollout-history SERVICE
    RolloutPause,    // rollout-pause SERVICE
    RolloutResume,   // rollout-resume SERVICE
    RolloutAbort,    // rollout-abort SERVICE
    Promote,         // promote SERVICE
    Reset,           // reset SERVICE
    Reload,          // reload
    ReloadCheck,     // reload-check: what a reload would change, applying nothing
    Upgrade,         // upgrade [timeout=D] [binary=PATH]: hand over to a new binary (daemon/upgrader.h)
    Help,            // help
};

// Changes operator intent (needs the admin level, takes if-generation=/force).
bool isChange(CommandKind kind);
const char* toString(CommandKind kind);   // the protocol word: "split", "backend", ...

struct RolloutRequest {
    config::Colour to = config::Colour::Green;
    std::vector<uint32_t> steps;                 // percent of traffic on `to`, rising, 1..100
    config::Duration hold{60000};
    std::optional<double> maxErrorRate;          // max_error_rate=0.01
    std::optional<config::Duration> maxConnectP99;   // max_connect_p99=50ms
    std::optional<config::Duration> maxTtfbP99;      // max_ttfb_p99=200ms
    std::optional<double> maxErrorRateVsBaseline;    // max_error_rate_vs_baseline=2.0
    uint32_t minConnections = 100;               // min_connections=100
    std::optional<config::Duration> maxHold;     // default 4 x hold
};

struct Command {
    CommandKind kind = CommandKind::Help;
    std::string service;                         // empty where the command takes none
    std::optional<config::Colour> colour;
    std::optional<config::Endpoint> backend;
    std::optional<uint32_t> weight;              // backend weight=, add weight=
    std::optional<config::Split> split;          // split blue= green=
    std::optional<RolloutRequest> rollout;
    std::optional<uint64_t> ifGeneration;        // if-generation=N
    bool force = false;                          // force
    std::optional<config::Duration> timeout;     // upgrade timeout=
    std::string binary;                          // upgrade binary= (absolute path)
};

struct ParseError {
    std::string code;      // "unknown_command" | "bad_argument"
    std::string message;   // what and why, e.g. "split: weight 'blue=abc' is not a number 0..1000"
};

} // namespace switchyard::admin
