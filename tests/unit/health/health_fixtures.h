#pragma once

// Service entries for health tests, built the way the control plane builds them
// from a config (makeServiceEntry), with a few knobs for pool sizes and policy.

#include <string>

#include "switchyard/config/endpoint.h"
#include "switchyard/control/master_state.h"

namespace switchyard::health::testing {

inline config::Endpoint local(uint16_t port) {
    config::Endpoint e;
    e.host = "127.0.0.1";
    e.port = port;
    return e;
}

// blue backends on ports 9001.., green on 9101..; split as given.
inline control::ServiceEntry makeService(std::size_t blue, std::size_t green, config::Split split = {100, 0}) {
    config::ServiceConfig c;
    c.name = "web";
    c.listen = local(8080);
    c.split = split;
    for (std::size_t i = 0; i < blue; ++i) c.pool(config::Colour::Blue).push_back({local(uint16_t(9001 + i)), 100});
    for (std::size_t i = 0; i < green; ++i) c.pool(config::Colour::Green).push_back({local(uint16_t(9101 + i)), 100});
    return control::makeServiceEntry(c);
}

// Every backend of `colour` gets one check result: `healthy` or not.
inline void checkAll(control::ServiceEntry& s, config::Colour colour, bool healthy) {
    for (auto& b : s.pool(colour).backends) {
        b.checked = true;
        b.healthy = healthy;
    }
}

inline control::BackendEntry& backendAt(control::ServiceEntry& s, config::Colour colour, std::size_t i) {
    return s.pool(colour).backends.at(i);
}

} // namespace switchyard::health::testing
