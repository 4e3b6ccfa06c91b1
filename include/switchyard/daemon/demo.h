#pragma once

// `switchyard --demo`: a built-in config and built-in backends, so a newcomer
// sees traffic split and cut over without writing a file or starting servers.

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "switchyard/config/config.h"
#include "switchyard/util/result.h"

namespace switchyard::daemon {

// Tiny HTTP/1.1-friendly servers that answer every request with their name
// ("blue-1\n"), on ephemeral loopback ports, served on the given context.
class DemoBackends {
public:
    explicit DemoBackends(boost::asio::io_context& context);
    ~DemoBackends();
    // Starts `perPool` backends per colour; returns their endpoints by colour.
    Result<std::array<std::vector<config::Endpoint>, 2>> start(int perPool);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The demo config: service `demo` on 127.0.0.1:8080, admin socket at the
// default path, no state file (each demo starts fresh on blue).
config::Config demoConfig(const std::array<std::vector<config::Endpoint>, 2>& backends);

} // namespace switchyard::daemon
