#pragma once

// Fleet mode's link to etcd (docs/fleet.md). It runs its own thread and
// io_context, so neither the control thread nor a worker ever waits on etcd;
// everything it learns is posted to the control thread's io_context, and the
// control-thread side (available(), modRevisionOf(), members()) is read and
// written there only.
//
// Layout under the fleet's prefix:
//   <prefix>services/<name>   one service's operator intent (the Overrides record)
//   <prefix>members/<instance> {"applied": R, "pools": {...}} under this member's lease
//   <prefix>rollout-driver     the instance that drives rollouts, under its lease
// One watch on the whole prefix feeds all three.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "switchyard/config/config.h"
#include "switchyard/util/result.h"

namespace switchyard::fleet {

class EtcdClient;

// One service's record as etcd holds it.
struct RemoteIntent {
    std::string service;
    std::string value;          // JSON of its overrides; empty when deleted
    int64_t modRevision = 0;
    bool deleted = false;
};

struct ProposeResult {
    enum class Kind { Committed, Conflict, Unavailable };
    Kind kind = Kind::Unavailable;
    int64_t revision = 0;                   // Committed: the revision etcd wrote it at
    std::optional<RemoteIntent> current;    // Conflict: what the key holds now
    std::string why;                        // Unavailable: what failed
};

class FleetStore {
public:
    struct Callbacks {
        // Intents changed in etcd (full: the first read after a (re)connect,
        // which holds every service key). Called on the control thread.
        std::function<void(const std::vector<RemoteIntent>&, bool full)> onIntents;
        // The link went up or down. Called on the control thread.
        std::function<void(bool available, const std::string& why)> onAvailability;
        // A member's published value (its pool counters among it), or null
        // once it is gone (lease ended). Called on the control thread.
        std::function<void(const std::string& instance, const nlohmann::json* value)> onMember;
    };

    FleetStore(boost::asio::io_context& control, config::FleetConfig config, Callbacks callbacks);
    ~FleetStore();
    FleetStore(const FleetStore&) = delete;
    FleetStore& operator=(const FleetStore&) = delete;

    // Reads fleet.password_file (when fleet.user is set) and the TLS files (with
    // https:// endpoints); a bad file is a start-up error.
    Result<bool> loadCredentials();
    void start();

    // --- control thread ---
    const config::FleetConfig& config() const { return config_; }
    bool available() const { return available_; }
    bool synced() const { return synced_; }   // at least one full read since start
    int64_t modRevisionOf(const std::string& service) const;
    // The newest intent revision applied here (the highest service key mod_revision seen).
    int64_t appliedRevision() const { return appliedRevision_; }
    // Live members (their lease holds) and the intent revision each applied.
    const std::map<std::string, int64_t>& members() const { return members_; }
    // The member that drives the fleet's rollouts (empty: none elected now).
    const std::string& driver() const { return driver_; }
    // This member drives, and etcd is reachable (so its lease, and the election, hold).
    bool driving() const { return available_ && driver_ == config_.instance; }

    // Writes `value` as `service`'s intent if its key is still at `expected`
    // (a compare-and-swap); `done` runs on the control thread once etcd answered.
    void propose(const std::string& service, std::string value, int64_t expected,
                 std::function<void(ProposeResult)> done);
    // Publishes the revision this member applied (under its lease).
    void publishApplied(int64_t revision);
    // This process stops being a member (an upgrade's old generation): its lease is
    // revoked, so it leaves the list and, if it drove rollouts, another member drives.
    void leave();
    // Publishes this member's pool counters (service -> {blue, green}) with it.
    void publishCounters(nlohmann::json pools);

private:
    boost::asio::awaitable<void> watchLoop();
    boost::asio::awaitable<void> memberLoop();
    boost::asio::awaitable<void> sleep(std::chrono::milliseconds d);
    // Fleet thread: turns a key-value into what the control thread is told.
    using MemberValues = std::map<std::string, std::optional<nlohmann::json>>;   // nullopt: gone
    void deliver(std::vector<RemoteIntent> intents, MemberValues members, std::optional<std::string> driver,
                 bool full);
    // Fleet thread: runs for the driver key when no member holds it; true unless etcd failed.
    boost::asio::awaitable<bool> campaign(int64_t lease);
    // Fleet thread: the link is up when the watch runs and the lease is kept
    // (a partition that leaves the watch's connection open still fails keepalives).
    void linkChanged(bool* part, bool up, std::string why);

    boost::asio::io_context& control_;
    config::FleetConfig config_;
    Callbacks callbacks_;
    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    std::unique_ptr<EtcdClient> client_;
    std::thread thread_;
    std::atomic<int64_t> lease_{0};       // the member's lease now (0: none); revoked on a clean stop
    std::atomic<int64_t> toPublish_{0};   // the revision memberLoop should publish next
    boost::asio::steady_timer memberWake_;   // memberLoop sleeps on it; publishApplied() wakes it
    // fleet thread
    bool watchUp_ = false;
    bool leaseUp_ = false;
    bool leaving_ = false;
    std::string driverHolder_;          // as the watch (or a campaign) last saw it
    nlohmann::json counters_;           // what publishCounters() asked for
    uint64_t countersVersion_ = 0;

    // control thread
    bool available_ = false;
    bool announced_ = false;
    bool synced_ = false;
    int64_t appliedRevision_ = 0;
    std::map<std::string, int64_t> modRevisions_;
    std::map<std::string, int64_t> members_;
    std::string driver_;
};

} // namespace switchyard::fleet
