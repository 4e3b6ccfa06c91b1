#pragma once

// The etcd v3 JSON gateway's wire format, as pure functions (docs/fleet.md):
// request bodies and the parsing of answers. No sockets here, so every trap of
// the gateway is unit-tested: keys and values are standard base64, int64s
// come as strings, default values (false, 0, empty) are left out, a compare
// without "target" compares the version.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::fleet {

std::string base64Encode(std::string_view bytes);
// nullopt on anything but standard, padded base64.
std::optional<std::string> base64Decode(std::string_view text);

// The end of a prefix range: the prefix with its last byte incremented
// (trailing 0xff bytes dropped first; "\0" for "every key").
std::string prefixRangeEnd(std::string_view prefix);

// Where a fleet keeps things, under its prefix.
std::string serviceKey(std::string_view prefix, std::string_view service);
std::string servicesPrefix(std::string_view prefix);
std::string memberKey(std::string_view prefix, std::string_view instance);
std::string membersPrefix(std::string_view prefix);
// The service a key under servicesPrefix() names, or nullopt.
std::optional<std::string> serviceOfKey(std::string_view prefix, std::string_view key);
std::optional<std::string> memberOfKey(std::string_view prefix, std::string_view key);
// The one key the member driving the fleet's rollouts holds, under its lease.
std::string driverKey(std::string_view prefix);

// --- requests (JSON bodies) ---
std::string rangePrefixRequest(std::string_view prefix);
// Put `value` at `key` if its mod_revision is `expectedModRevision` (0: the
// key does not exist); the failure branch reads the key back.
std::string casTxnRequest(std::string_view key, std::string_view value, int64_t expectedModRevision);
// Creates `key` holding `value` under `lease` if no such key exists (its
// create_revision is 0): an election's campaign. The failure branch reads the holder.
std::string campaignTxnRequest(std::string_view key, std::string_view value, int64_t lease);
std::string putRequest(std::string_view key, std::string_view value, int64_t lease);
std::string watchRequest(std::string_view prefix, int64_t startRevision);
std::string leaseGrantRequest(int64_t ttlSeconds);
std::string leaseKeepAliveRequest(int64_t lease);
std::string leaseRevokeRequest(int64_t lease);

// --- answers ---
struct KeyValue {
    std::string key;
    std::string value;
    int64_t modRevision = 0;
    int64_t lease = 0;
};

struct RangeAnswer {
    int64_t revision = 0;   // the store's revision when it answered
    std::vector<KeyValue> kvs;
};

struct TxnAnswer {
    bool succeeded = false;
    int64_t revision = 0;
    std::optional<KeyValue> current;   // failure: the key as it is now (nullopt: absent)
};

struct WatchEvent {
    bool deleted = false;
    KeyValue kv;
};

struct WatchMessage {
    bool created = false;
    bool canceled = false;
    int64_t compactRevision = 0;
    int64_t revision = 0;
    std::string error;      // a stream error ("etcdserver: no leader"), or why it was canceled
    std::vector<WatchEvent> events;
};

struct LeaseAnswer {
    int64_t id = 0;
    int64_t ttl = 0;        // 0: the lease is gone (keepalive on an expired lease)
};

// Each throws std::runtime_error naming what is wrong with the answer.
RangeAnswer parseRange(std::string_view body);
TxnAnswer parseTxn(std::string_view body);
WatchMessage parseWatchMessage(std::string_view line);
LeaseAnswer parseLease(std::string_view body);
// The "error"/"message" of a unary error answer, or the body itself.
std::string errorText(std::string_view body);

} // namespace switchyard::fleet
