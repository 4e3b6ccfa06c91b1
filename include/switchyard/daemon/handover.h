#pragma once

// The hand-over channel between two generations of the daemon (`upgrade`): a
// private SOCK_SEQPACKET socketpair, one JSON message per packet, descriptors
// riding along by SCM_RIGHTS (at most kMaxFdsPerMessage a packet).
//
//   old                                   new (switchyard --handover-fd N)
//   hello {version, sockets[], batches} ->
//   fds {batch} x batches (descriptors) ->
//                                       <- ready {pid, version}  (or refused {error})
//   go                                  ->   (the new one is main PID, writer, acceptor)
//   draining {pid, connections, deadline_unix_ms} every second, until the old one exits
//
// A hello whose version differs from kHandoverVersion is refused: two
// binaries that disagree on this exchange never hand over.

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "switchyard/util/result.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::daemon {

// `switchyard --handover-version` prints it.
inline constexpr int kHandoverVersion = 1;
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
Result<bool> sendHandoverMessage(int channel, const nlohmann::json& body, const std::vector<int>& fds = {});
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

private:
    std::vector<HandoverSocket> sockets_;
};

// The old side: hello, then the descriptors in batches.
Result<bool> sendHello(int channel, const std::vector<HandoverSocket>& sockets);
// The new side: the sockets with their descriptors, or why they cannot be
// taken (another hand-over version, a broken channel).
Result<std::vector<HandoverSocket>> receiveHello(int channel, std::chrono::milliseconds timeout);

// The new side: the PID of the generation that made the channel (its
// SO_PEERCRED). Not getppid(): under systemd the new generation is the service
// manager's child, not its predecessor's (process_spawn.h).
int predecessorPid(int channel);

} // namespace switchyard::daemon
