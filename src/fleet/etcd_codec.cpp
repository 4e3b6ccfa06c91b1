#include "switchyard/fleet/etcd_codec.h"

#include <array>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace switchyard::fleet {
namespace {

using nlohmann::json;

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// int64s arrive as strings ("5"); a missing field is its default, 0.
int64_t int64Field(const json& object, const char* name) {
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) return 0;
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_string()) {
        const std::string& s = it->get_ref<const std::string&>();
        std::size_t used = 0;
        const int64_t v = std::stoll(s, &used);
        if (used != s.size()) throw std::runtime_error(fmt::format("\"{}\" is not an integer: {}", name, s));
        return v;
    }
    throw std::runtime_error(fmt::format("\"{}\" is not an integer", name));
}

std::string bytesField(const json& object, const char* name) {
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) return {};
    if (!it->is_string()) throw std::runtime_error(fmt::format("\"{}\" is not a string", name));
    auto decoded = base64Decode(it->get_ref<const std::string&>());
    if (!decoded) throw std::runtime_error(fmt::format("\"{}\" is not base64", name));
    return *decoded;
}

KeyValue keyValueOf(const json& kv) {
    return {bytesField(kv, "key"), bytesField(kv, "value"), int64Field(kv, "mod_revision"), int64Field(kv, "lease")};
}

json parseObject(std::string_view body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        throw std::runtime_error(fmt::format("not a JSON object: {}", body.substr(0, 200)));
    if (const auto e = j.find("error"); e != j.end()) {
        if (e->is_object()) throw std::runtime_error(e->value("message", std::string("stream error")));
        throw std::runtime_error(j.value("message", e->is_string() ? e->get<std::string>() : std::string("error")));
    }
    return j;
}

int64_t headerRevision(const json& j) {
    const auto h = j.find("header");
    return h != j.end() && h->is_object() ? int64Field(*h, "revision") : 0;
}

} // namespace

std::string base64Encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const uint32_t n = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                           uint8_t(bytes[i + 2]);
        for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
    }
    if (const std::size_t rest = bytes.size() - i; rest > 0) {
        uint32_t n = uint32_t(uint8_t(bytes[i])) << 16;
        if (rest == 2) n |= uint32_t(uint8_t(bytes[i + 1])) << 8;
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::array<int, 256> value{};
    value.fill(-1);
    for (std::size_t i = 0; i < kAlphabet.size(); ++i) value[uint8_t(kAlphabet[i])] = int(i);
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        const int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
        if (pad == 1 && text[i + 2] == '=') return std::nullopt;   // "x=y=" style
        uint32_t n = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = text[i + k];
            if (k >= 4 - pad) {
                n <<= 6;
                continue;
            }
            const int v = value[uint8_t(c)];
            if (v < 0) return std::nullopt;
            n = (n << 6) | uint32_t(v);
        }
        out += char((n >> 16) & 0xff);
        if (pad < 2) out += char((n >> 8) & 0xff);
        if (pad < 1) out += char(n & 0xff);
    }
    return out;
}

std::string prefixRangeEnd(std::string_view prefix) {
    std::string end(prefix);
    while (!end.empty() && uint8_t(end.back()) == 0xff) end.pop_back();
    if (end.empty()) return std::string(1, '\0');
    end.back() = char(uint8_t(end.back()) + 1);
    return end;
}

std::string servicesPrefix(std::string_view prefix) { return fmt::format("{}services/", prefix); }
std::string membersPrefix(std::string_view prefix) { return fmt::format("{}members/", prefix); }
std::string serviceKey(std::string_view prefix, std::string_view service) {
    return servicesPrefix(prefix) + std::string(service);
}
std::string memberKey(std::string_view prefix, std::string_view instance) {
    return membersPrefix(prefix) + std::string(instance);
}

namespace {
std::optional<std::string> nameUnder(const std::string& under, std::string_view key) {
    if (!key.starts_with(under) || key.size() == under.size()) return std::nullopt;
    std::string name(key.substr(under.size()));
    if (name.find('/') != std::string::npos) return std::nullopt;
    return name;
}
} // namespace

std::optional<std::string> serviceOfKey(std::string_view prefix, std::string_view key) {
    return nameUnder(servicesPrefix(prefix), key);
}
std::optional<std::string> memberOfKey(std::string_view prefix, std::string_view key) {
    return nameUnder(membersPrefix(prefix), key);
}

std::string driverKey(std::string_view prefix) { return fmt::format("{}rollout-driver", prefix); }

std::string rangePrefixRequest(std::string_view prefix) {
    return json{{"key", base64Encode(prefix)}, {"range_end", base64Encode(prefixRangeEnd(prefix))}}.dump();
}

std::string casTxnRequest(std::string_view key, std::string_view value, int64_t expectedModRevision) {
    const std::string k = base64Encode(key);
    // "target" always: without it etcd compares the version (and the CAS silently fails).
    // mod_revision 0 matches a key that does not exist.
    json compare = {{"key", k}, {"target", "MOD"}, {"result", "EQUAL"},
                    {"mod_revision", std::to_string(expectedModRevision)}};
    json body = {{"compare", json::array({compare})},
                 {"success", json::array({{{"request_put", {{"key", k}, {"value", base64Encode(value)}}}}})},
                 {"failure", json::array({{{"request_range", {{"key", k}}}}})}};
    return body.dump();
}

namespace {
json putOf(std::string_view key, std::string_view value, int64_t lease) {
    json body = {{"key", base64Encode(key)}, {"value", base64Encode(value)}};
    if (lease != 0) body["lease"] = std::to_string(lease);
    return body;
}
} // namespace

std::string campaignTxnRequest(std::string_view key, std::string_view value, int64_t lease) {
    const std::string k = base64Encode(key);
    json compare = {{"key", k}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}};
    json body = {{"compare", json::array({compare})},
                 {"success", json::array({{{"request_put", putOf(key, value, lease)}}})},
                 {"failure", json::array({{{"request_range", {{"key", k}}}}})}};
    return body.dump();
}

std::string putRequest(std::string_view key, std::string_view value, int64_t lease) {
    return putOf(key, value, lease).dump();
}

std::string watchRequest(std::string_view prefix, int64_t startRevision) {
    json create = {{"key", base64Encode(prefix)}, {"range_end", base64Encode(prefixRangeEnd(prefix))},
                   {"progress_notify", true}};
    if (startRevision > 0) create["start_revision"] = std::to_string(startRevision);
    return json{{"create_request", create}}.dump();
}

// "TTL" and "ID" in capitals: a lowercase "ttl" is ignored and grants a 2 s lease.
std::string leaseGrantRequest(int64_t ttlSeconds) { return json{{"TTL", std::to_string(ttlSeconds)}}.dump(); }
std::string leaseKeepAliveRequest(int64_t lease) { return json{{"ID", std::to_string(lease)}}.dump(); }
std::string leaseRevokeRequest(int64_t lease) { return json{{"ID", std::to_string(lease)}}.dump(); }

RangeAnswer parseRange(std::string_view body) {
    const json j = parseObject(body);
    RangeAnswer a;
    a.revision = headerRevision(j);
    if (const auto kvs = j.find("kvs"); kvs != j.end() && kvs->is_array())
        for (const json& kv : *kvs) a.kvs.push_back(keyValueOf(kv));
    return a;
}

TxnAnswer parseTxn(std::string_view body) {
    const json j = parseObject(body);
    TxnAnswer a;
    a.revision = headerRevision(j);
    a.succeeded = j.value("succeeded", false);   // absent when false
    if (!a.succeeded)
        if (const auto responses = j.find("responses"); responses != j.end() && responses->is_array())
            for (const json& r : *responses)
                if (const auto range = r.find("response_range"); range != r.end())
                    if (const auto kvs = range->find("kvs"); kvs != range->end() && kvs->is_array() && !kvs->empty())
                        a.current = keyValueOf(kvs->front());
    return a;
}

WatchMessage parseWatchMessage(std::string_view line) {
    const json j = parseObject(line);
    const auto result = j.find("result");
    if (result == j.end() || !result->is_object()) throw std::runtime_error("a watch message without \"result\"");
    WatchMessage m;
    m.created = result->value("created", false);
    m.canceled = result->value("canceled", false);
    m.compactRevision = int64Field(*result, "compact_revision");
    m.revision = headerRevision(*result);
    m.error = result->value("cancel_reason", std::string());
    if (const auto events = result->find("events"); events != result->end() && events->is_array())
        for (const json& e : *events) {
            WatchEvent event;
            event.deleted = e.value("type", std::string()) == "DELETE";   // PUT events carry no type
            if (const auto kv = e.find("kv"); kv != e.end()) event.kv = keyValueOf(*kv);
            m.events.push_back(std::move(event));
        }
    return m;
}

LeaseAnswer parseLease(std::string_view body) {
    const json j = parseObject(body);
    const json& r = j.contains("result") ? j.at("result") : j;   // keepalive answers as a stream message
    return {int64Field(r, "ID"), int64Field(r, "TTL")};
}

std::string errorText(std::string_view body) {
    const json j = json::parse(body, nullptr, false);
    if (j.is_object()) {
        if (const auto e = j.find("error"); e != j.end()) {
            // Any field may be of another type than documented: never throw on a reply.
            const auto text = [](const json& in, const char* key) -> std::optional<std::string> {
                const auto f = in.find(key);
                if (f == in.end() || !f->is_string()) return std::nullopt;
                return f->get<std::string>();
            };
            if (e->is_object()) return text(*e, "message").value_or("error");
            return text(j, "message").value_or(e->is_string() ? e->get<std::string>() : std::string("error"));
        }
    }
    return std::string(body.substr(0, 200));
}

} // namespace switchyard::fleet
