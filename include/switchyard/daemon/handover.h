#pragma once

// The hand-over channel between two generations of the daemon (`upgrade`): a
// private SOCK_SEQPACKET socketpair, one JSON message per packet, descriptors
// riding along by SCM_RIGHTS (at most kMaxFdsPerMessage a packet).
//
//   old                                   new (switchyard --handover-fd N)
//   hello {version, sockets[], batches, health_parts} ->
//   fds {batch} x batches (descriptors) ->
//   health {records} x health_parts     ->   (control/health_seed.h)
//                                       <- ready {pid, version}  (or refused {error})
//   counters {seq, part, parts, series} ->   (what the old one counted; see below)
//   go                                  ->   (the new one is main PID, writer, acceptor)
//   draining {pid, connections, deadline_unix_ms} every second, until the old one exits
//   counters {seq, part, parts, series} every second and at its exit
//                                       <- drains {reset, spreads, backends} after a publish
//
// `drains`: the new generation's draining backends ([service, pool, address,
// deadline]) of the services named in `reset`, whose earlier entries they
// replace; deadlines in steady-clock milliseconds (CLOCK_MONOTONIC: one host).
// The old generation closes its connections to them as the new one does.
//
// `counters` are the counter and histogram series the old generation's scrape
// shows (telemetry/carried_counters.h), split in parts: the new one adds a
// complete set to its own series, so Prometheus counters never reset.
//
// A hello whose version differs from kHandoverVersion is refused: two
// binaries that disagree on this exchange never hand over.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "switchyard/util/result.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::daemon {

// `switchyard --handover-version` prints it.
// 2: the hello carries health, the old side sends counters before `go` and both
// stream counters and drains while the old one drains (a version-1 binary
// would take a health message for `go`).
inline constexpr int kHandoverVersion = 2;
inline constexpr std::size_t kMaxFdsPerMessage = 250;

// One descriptor handed over and what it is.
struct HandoverSocket {
    std::string role;      // "listener" | "admin" | "admin_tcp" | "metrics" | "stderr"
    std::string service;   // listeners: the service it accepts for
    std::string address;   // listeners and the metrics port: "127.0.0.1:8080"
    unsigned worker = 0;   // listeners: the worker that accepted on it
    UniqueFd fd;
    bool shared = false;   // listeners: every worker accepts on this one (socket activation)
};

struct HandoverMessage {
    nlohmann::json body;
    std::vector<UniqueFd> fds;
};

// Sends one message with `fds` attached (not taken over: the caller keeps them).
// `wait`: how long a full channel may hold the sender (forever when not given).
Result<bool> sendHandoverMessage(int channel, const nlohmann::json& body, const std::vector<int>& fds = {},
                                 std::optional<std::chrono::milliseconds> wait = std::nullopt);
// The next message, waiting up to `timeout`; a failure on timeout, end of
// channel or a packet that is not a JSON object.
Result<HandoverMessage> receiveHandoverMessage(int channel, std::chrono::milliseconds timeout);

// The new side's sockets, each taken once by what it is.
class AdoptedSockets {
public:
    explicit AdoptedSockets(std::vector<HandoverSocket> sockets) : sockets_(std::move(sockets)) {}
    // The first socket with this role (an invalid fd if none).
    UniqueFd take(std::string_view role);
    // A service's listener for one worker, if it was handed over for the same address.
    UniqueFd takeListener(std::string_view service, std::string_view address, unsigned worker);
    std::size_t size() const { return sockets_.size(); }
    // Listeners nobody took, as (service, worker).
    std::vector<std::pair<std::string, unsigned>> leftListeners() const;

private:
    std::vector<HandoverSocket> sockets_;
};

// What the new side takes from the old one before it starts.
struct Hello {
    std::vector<HandoverSocket> sockets;
    std::vector<nlohmann::json> health;   // parts of control::HealthSeed records
};

// The old side: hello, then the descriptors in batches, then the health parts.
Result<bool> sendHello(int channel, const std::vector<HandoverSocket>& sockets,
                       const std::vector<nlohmann::json>& health = {});
// The new side: the sockets with their descriptors and the health, or why
// they cannot be taken (another hand-over version, a broken channel).
Result<Hello> receiveHello(int channel, std::chrono::milliseconds timeout);

// The new side: the PID of the generation that made the channel (its
// SO_PEERCRED). Not getppid(): under systemd the new generation is the service
// manager's child, not its predecessor's (process_spawn.h).
int predecessorPid(int channel);

} // namespace switchyard::daemon
