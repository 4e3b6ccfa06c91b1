#include "switchyard/fleet/fleet_store.h"

#include <algorithm>
#include <future>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "switchyard/fleet/etcd_client.h"
#include "switchyard/fleet/etcd_codec.h"
#include "switchyard/fleet/etcd_tls.h"
#include "switchyard/telemetry/logging.h"
#include "switchyard/util/secret_file.h"

namespace switchyard::fleet {
namespace {

namespace net = boost::asio;
using std::chrono::milliseconds;

constexpr milliseconds kBackoffFirst{100};
constexpr milliseconds kBackoffMax{5000};

int64_t appliedOf(const nlohmann::json& j) {
    if (!j.is_object()) return 0;
    const auto it = j.find("applied");
    return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

} // namespace

FleetStore::FleetStore(net::io_context& control, config::FleetConfig config, Callbacks callbacks)
    : control_(control), config_(std::move(config)), callbacks_(std::move(callbacks)), work_(io_.get_executor()),
      client_(std::make_unique<EtcdClient>(io_, config_.etcd, config_.dialTimeout)), memberWake_(io_) {}

FleetStore::~FleetStore() {
    // A clean stop gives the lease back: the member leaves the list, and the rollout driver's
    // key goes with it, at once rather than after lease_ttl (bounded: etcd may be away).
    if (const int64_t lease = lease_.load(); thread_.joinable() && lease != 0) {
        std::promise<void> revoked;
        auto done = revoked.get_future();
        net::co_spawn(
            io_,
            [this, lease, &revoked]() -> net::awaitable<void> {
                co_await client_->call("/v3/lease/revoke", leaseRevokeRequest(lease), milliseconds(500));
                revoked.set_value();
            },
            net::detached);
        done.wait_for(std::chrono::seconds(1));
    }
    io_.stop();   // thread-safe; the coroutines are dropped with the io_context
    if (thread_.joinable()) thread_.join();
}

Result<bool> FleetStore::loadCredentials() {
    if (config_.tls()) {
        auto tls = makeEtcdTlsContext(config_);
        if (!tls) return Result<bool>(tls.errors());
        client_->setTls(std::move(tls).value());
    }
    if (config_.user.empty()) return true;
    auto password = readSecretFile(config_.passwordFile, "fleet.password_file", 4096);
    if (!password) return Result<bool>(password.errors());
    client_->setCredentials(config_.user, std::move(password).value());
    return true;
}

void FleetStore::start() {
    net::co_spawn(io_, watchLoop(), net::detached);
    net::co_spawn(io_, memberLoop(), net::detached);
    thread_ = std::thread([this] { io_.run(); });
}

int64_t FleetStore::modRevisionOf(const std::string& service) const {
    const auto it = modRevisions_.find(service);
    return it == modRevisions_.end() ? 0 : it->second;
}

net::awaitable<void> FleetStore::sleep(milliseconds d) {
    net::steady_timer timer(io_);
    timer.expires_after(d);
    boost::system::error_code ec;
    co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
}

void FleetStore::linkChanged(bool* part, bool up, std::string why) {
    *part = up;
    const bool available = watchUp_ && leaseUp_;
    if (available) why = "watching " + config_.prefix + " and keeping the member lease";
    net::post(control_, [this, available, why = std::move(why)] {
        // Every change is logged, and the first failure too (a member that never reached etcd says why).
        if (available_ == available && announced_) return;
        announced_ = true;
        available_ = available;
        const auto log = telemetry::logger("fleet");
        if (available) log->info("etcd reachable: {}", why);
        else log->warn("etcd unavailable, serving the last applied intent, changes refused: {}", why);
        if (callbacks_.onAvailability) callbacks_.onAvailability(available, why);
    });
}

void FleetStore::deliver(std::vector<RemoteIntent> intents, MemberValues members, std::optional<std::string> driver,
                         bool full) {
    net::post(control_, [this, intents = std::move(intents), members = std::move(members), driver = std::move(driver),
                         full] {
        if (full)   // a member missing from a full read is gone
            for (auto it = members_.begin(); it != members_.end();) {
                if (members.contains(it->first)) {
                    ++it;
                    continue;
                }
                if (callbacks_.onMember) callbacks_.onMember(it->first, nullptr);
                it = members_.erase(it);
            }
        for (const auto& [instance, value] : members) {
            if (value) members_[instance] = appliedOf(*value);
            else members_.erase(instance);   // its lease ended: gone, not converged
            if (callbacks_.onMember) callbacks_.onMember(instance, value ? &*value : nullptr);
        }
        if (driver && *driver != driver_) {
            driver_ = *driver;
            const auto log = telemetry::logger("fleet");
            if (driver_ == config_.instance) log->info("this member drives the fleet's rollouts now");
            else if (driver_.empty()) log->info("no member drives the fleet's rollouts now (election open)");
            else log->info("{} drives the fleet's rollouts", driver_);
        }
        for (const auto& i : intents) {
            modRevisions_[i.service] = i.deleted ? 0 : i.modRevision;
            appliedRevision_ = std::max(appliedRevision_, i.modRevision);
        }
        if (full) synced_ = true;
        if ((!intents.empty() || full) && callbacks_.onIntents) callbacks_.onIntents(intents, full);
    });
}

net::awaitable<void> FleetStore::watchLoop() {
    const auto log = telemetry::logger("fleet");
    milliseconds backoff = kBackoffFirst;
    const std::string driverAt = driverKey(config_.prefix);
    const auto classify = [&](const KeyValue& kv, bool deleted, std::vector<RemoteIntent>& intents,
                              MemberValues& members, std::optional<std::string>& driver) {
        if (auto service = serviceOfKey(config_.prefix, kv.key))
            intents.push_back({*service, deleted ? std::string() : kv.value, kv.modRevision, deleted});
        else if (auto member = memberOfKey(config_.prefix, kv.key))
            members[*member] = deleted ? std::nullopt
                                       : std::optional<nlohmann::json>(nlohmann::json::parse(kv.value, nullptr, false));
        else if (kv.key == driverAt)
            driver = deleted ? std::string() : kv.value;
    };
    // The driver key changed hands: memberLoop campaigns when it is free.
    const auto noteDriver = [&](const std::optional<std::string>& driver) {
        if (!driver) return;
        driverHolder_ = *driver;
        if (driverHolder_.empty()) memberWake_.cancel();
    };
    for (;;) {
        // A full read, then a watch from just after it: nothing in between is missed.
        CallResult read =
            co_await client_->call("/v3/kv/range", rangePrefixRequest(config_.prefix), config_.dialTimeout);
        int64_t revision = 0;
        bool ok = read.ok;
        std::string why = read.ok ? std::string() : (read.reached ? errorText(read.body) : read.body);
        if (ok) {
            try {
                RangeAnswer range = parseRange(read.body);
                revision = range.revision;
                std::vector<RemoteIntent> intents;
                MemberValues members;
                std::optional<std::string> driver = std::string();   // absent from a full read: nobody
                for (const auto& kv : range.kvs) classify(kv, false, intents, members, driver);
                noteDriver(driver);
                deliver(std::move(intents), std::move(members), std::move(driver), true);
            } catch (const std::exception& e) {
                ok = false;
                why = e.what();
            }
        }
        if (ok) {
            bool announced = false;
            CallResult watched = co_await client_->stream(
                "/v3/watch", watchRequest(config_.prefix, revision + 1), [&](std::string_view line) {
                    try {
                        WatchMessage m = parseWatchMessage(line);
                        if (m.canceled) {
                            why = m.error.empty() ? "watch canceled (compacted history)" : m.error;
                            return false;   // re-read everything, watch again
                        }
                        if (m.created && !announced) {
                            announced = true;
                            backoff = kBackoffFirst;
                            linkChanged(&watchUp_, true, {});
                        }
                        std::vector<RemoteIntent> intents;
                        MemberValues members;
                        std::optional<std::string> driver;
                        for (const auto& e : m.events) classify(e.kv, e.deleted, intents, members, driver);
                        noteDriver(driver);
                        if (!intents.empty() || !members.empty() || driver)
                            deliver(std::move(intents), std::move(members), std::move(driver), false);
                        return true;
                    } catch (const std::exception& e) {
                        why = e.what();
                        return false;
                    }
                });
            if (why.empty()) why = watched.body;
        }
        linkChanged(&watchUp_, false, why);
        log->debug("etcd watch ended ({}); again in {} ms", why, backoff.count());
        co_await sleep(backoff);
        backoff = std::min(backoff * 2, kBackoffMax);
    }
}

net::awaitable<void> FleetStore::memberLoop() {
    const std::string key = memberKey(config_.prefix, config_.instance);
    const int64_t ttlSeconds =
        std::max<int64_t>(2, std::chrono::duration_cast<std::chrono::seconds>(config_.leaseTtl).count());
    const milliseconds every =
        std::max(milliseconds(200), std::chrono::duration_cast<milliseconds>(config_.leaseTtl) / 3);
    milliseconds backoff = kBackoffFirst;
    while (!leaving_) {
        CallResult granted =
            co_await client_->call("/v3/lease/grant", leaseGrantRequest(ttlSeconds), config_.dialTimeout);
        int64_t lease = 0;
        if (granted.ok) try {
                lease = parseLease(granted.body).id;
            } catch (const std::exception&) {
            }
        lease_.store(lease);
        int64_t published = -1;
        uint64_t countersPublished = 0;
        auto lastKeepAlive = std::chrono::steady_clock::now();
        if (lease != 0) linkChanged(&leaseUp_, true, {});
        while (lease != 0) {
            if (leaving_) {   // leave(): no member record, no driver key, from now on
                co_await client_->call("/v3/lease/revoke", leaseRevokeRequest(lease), config_.dialTimeout);
                lease_.store(0);
                co_return;
            }
            const int64_t want = toPublish_.load();
            const uint64_t counters = countersVersion_;
            if (want != published || counters != countersPublished) {
                nlohmann::json value{{"applied", want}};
                if (!counters_.empty()) value["pools"] = counters_;
                CallResult put =
                    co_await client_->call("/v3/kv/put", putRequest(key, value.dump(), lease), config_.dialTimeout);
                if (!put.ok) break;
                published = want;
                countersPublished = counters;
                continue;   // another publish may have come meanwhile
            }
            // One driver for the fleet's rollouts: the member whose campaign creates the key.
            if (driverHolder_.empty() && watchUp_) {
                if (!co_await campaign(lease)) break;
                continue;
            }
            if (std::chrono::steady_clock::now() - lastKeepAlive >= every) {
                CallResult kept = co_await client_->call("/v3/lease/keepalive", leaseKeepAliveRequest(lease),
                                                         config_.dialTimeout);
                int64_t ttl = 0;
                if (kept.ok) try {
                        ttl = parseLease(kept.body).ttl;
                    } catch (const std::exception&) {
                    }
                if (ttl <= 0) break;   // expired (200 without TTL) or unreachable: a new lease
                lastKeepAlive = std::chrono::steady_clock::now();
                backoff = kBackoffFirst;
            }
            // Until the next keepalive is due, or publishApplied() wakes it.
            memberWake_.expires_at(lastKeepAlive + every);
            boost::system::error_code ec;
            co_await memberWake_.async_wait(net::redirect_error(net::use_awaitable, ec));
        }
        linkChanged(&leaseUp_, false, lease == 0 ? "cannot get a lease: " + granted.body : "the member lease was lost");
        co_await sleep(backoff);
        backoff = std::min(backoff * 2, kBackoffMax);
    }
}

void FleetStore::propose(const std::string& service, std::string value, int64_t expected,
                         std::function<void(ProposeResult)> done) {
    const std::string key = serviceKey(config_.prefix, service);
    auto finish = [this, service, done = std::move(done)](ProposeResult r) mutable {
        net::post(control_, [this, service, r = std::move(r), done = std::move(done)]() mutable {
            if (r.kind == ProposeResult::Kind::Committed) {
                modRevisions_[service] = std::max(modRevisionOf(service), r.revision);
                appliedRevision_ = std::max(appliedRevision_, r.revision);
            }
            if (r.kind == ProposeResult::Kind::Conflict && r.current)
                modRevisions_[service] = std::max(modRevisionOf(service), r.current->modRevision);
            done(std::move(r));
        });
    };
    net::co_spawn(
        io_,
        [this, key, service, value = std::move(value), expected, finish = std::move(finish)]() mutable
        -> net::awaitable<void> {
            ProposeResult r;
            CallResult answer = co_await client_->call("/v3/kv/txn", casTxnRequest(key, value, expected),
                                                       config_.dialTimeout);
            if (!answer.ok) {
                r.why = answer.reached ? errorText(answer.body) : answer.body;
            } else {
                try {
                    TxnAnswer txn = parseTxn(answer.body);
                    r.kind = txn.succeeded ? ProposeResult::Kind::Committed : ProposeResult::Kind::Conflict;
                    r.revision = txn.revision;
                    if (txn.current)
                        r.current = RemoteIntent{service, txn.current->value, txn.current->modRevision, false};
                } catch (const std::exception& e) {
                    r.kind = ProposeResult::Kind::Unavailable;
                    r.why = e.what();
                }
            }
            finish(std::move(r));
        },
        net::detached);
}

net::awaitable<bool> FleetStore::campaign(int64_t lease) {
    const std::string key = driverKey(config_.prefix);
    CallResult answer =
        co_await client_->call("/v3/kv/txn", campaignTxnRequest(key, config_.instance, lease), config_.dialTimeout);
    if (!answer.ok) co_return false;
    try {
        const TxnAnswer txn = parseTxn(answer.body);
        // Won: the key is ours while the lease lives. Lost: it names the winner.
        // (The watch tells the control thread either way.)
        driverHolder_ = txn.succeeded ? config_.instance : txn.current ? txn.current->value : std::string();
    } catch (const std::exception&) {
        co_return false;
    }
    co_return true;
}

void FleetStore::leave() {
    net::post(io_, [this] {
        leaving_ = true;
        memberWake_.cancel();
    });
}

void FleetStore::publishCounters(nlohmann::json pools) {
    net::post(io_, [this, pools = std::move(pools)]() mutable {
        counters_ = std::move(pools);
        ++countersVersion_;
        memberWake_.cancel();
    });
}

void FleetStore::publishApplied(int64_t revision) {
    if (toPublish_.exchange(revision) == revision) return;
    net::post(io_, [this] { memberWake_.cancel(); });
}

} // namespace switchyard::fleet
