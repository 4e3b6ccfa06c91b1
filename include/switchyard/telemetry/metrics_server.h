#pragma once

// The HTTP listener of `metrics.listen`: /metrics (Prometheus text), /ready,
// /status (the admin `status` reply as JSON) and / (the status page). It runs
// its own thread and io_context (Boost.Beast), never a worker's or the control
// thread's, and serves every client asynchronously: an idle or slow client
// costs a socket, never a scrape. Each client has a deadline for its request
// and for its response; at kMaxClients the client idle longest is closed to
// make room, so a crowd of silent connections cannot lock scrapers out.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "switchyard/config/endpoint.h"
#include "switchyard/telemetry/metrics_collector.h"
#include "switchyard/util/result.h"

namespace switchyard::telemetry {

struct MetricsServerLimits {
    std::size_t maxClients = 256;                          // open HTTP connections at once
    std::chrono::milliseconds requestTimeout{10000};       // to send a whole request (headers)
    std::chrono::milliseconds keepAliveTimeout{30000};     // idle between requests
    std::chrono::milliseconds responseTimeout{10000};      // to take the whole response
    std::chrono::milliseconds statusTimeout{5000};         // for the control thread to answer /status
};

class MetricsServer {
public:
    // Produces the /status body. Called on the server thread; `reply` may be
    // called once, from any thread (the daemon answers on the control thread).
    using StatusReply = std::function<void(std::string json)>;
    using StatusProvider = std::function<void(StatusReply reply)>;

    explicit MetricsServer(std::shared_ptr<MetricsCollector> collector, MetricsServerLimits limits = {});
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // Set before start().
    void setStatusProvider(StatusProvider provider) { statusProvider_ = std::move(provider); }

    // Binds and serves; fails with a message naming the address. With
    // `adoptedFd` (a listening socket a previous generation handed over,
    // taken over even on failure) it serves that socket instead of binding.
    Result<bool> start(const config::Endpoint& listen, int adoptedFd = -1);
    // The listening descriptor (for the hand-over), -1 when not started.
    int listenFd() const;
    // The bound port (useful when listen asked for port 0).
    int port() const { return port_; }
    void stop();

    // /ready answers 200 only while this is set: every listener bound and
    // the state loaded, not yet stopping.
    void setReady(bool ready) { ready_->store(ready, std::memory_order_relaxed); }

    class Impl;

private:
    std::shared_ptr<MetricsCollector> collector_;
    MetricsServerLimits limits_;
    StatusProvider statusProvider_;
    std::shared_ptr<std::atomic<bool>> ready_ = std::make_shared<std::atomic<bool>>(false);
    std::shared_ptr<Impl> impl_;
    std::thread thread_;
    int port_ = 0;
};

} // namespace switchyard::telemetry
