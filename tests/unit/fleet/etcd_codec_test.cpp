#include "switchyard/fleet/etcd_codec.h"

#include <stdexcept>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace switchyard::fleet;
using nlohmann::json;

TEST_CASE("base64 is standard and padded, both ways", "[fleet][codec]") {
    CHECK(base64Encode("") == "");
    CHECK(base64Encode("f") == "Zg==");
    CHECK(base64Encode("fo") == "Zm8=");
    CHECK(base64Encode("foo") == "Zm9v");
    CHECK(base64Encode("lb/svc/web") == "bGIvc3ZjL3dlYg==");
    CHECK(base64Encode(std::string("\xff\xfe\x00", 3)) == "//4A");
    CHECK(base64Decode("bGIvc3ZjL3dlYg==") == std::optional<std::string>("lb/svc/web"));
    CHECK(base64Decode("Zm8=") == std::optional<std::string>("fo"));
    CHECK(base64Decode("//4A") == std::optional<std::string>(std::string("\xff\xfe\x00", 3)));
    CHECK_FALSE(base64Decode("YWI"));    // unpadded
    CHECK_FALSE(base64Decode("_-8="));   // URL-safe
    CHECK_FALSE(base64Decode("Zg=a"));
}

TEST_CASE("a prefix range ends at the prefix with its last byte incremented", "[fleet][codec]") {
    CHECK(prefixRangeEnd("lb/svc/") == "lb/svc0");
    CHECK(prefixRangeEnd(std::string("a\xff", 2)) == "b");
    CHECK(prefixRangeEnd(std::string("\xff", 1)) == std::string(1, '\0'));
}

TEST_CASE("keys: one per service and per member under the prefix", "[fleet][codec]") {
    CHECK(serviceKey("/sy/", "web") == "/sy/services/web");
    CHECK(memberKey("/sy/", "lb-1") == "/sy/members/lb-1");
    CHECK(serviceOfKey("/sy/", "/sy/services/web") == std::optional<std::string>("web"));
    CHECK_FALSE(serviceOfKey("/sy/", "/sy/members/lb-1"));
    CHECK_FALSE(serviceOfKey("/sy/", "/sy/services/"));
    CHECK_FALSE(serviceOfKey("/sy/", "/sy/services/a/b"));
    CHECK_FALSE(serviceOfKey("/sy/", "/other/services/web"));
    CHECK(memberOfKey("/sy/", "/sy/members/lb-1") == std::optional<std::string>("lb-1"));
}

TEST_CASE("the CAS txn always names its target and reads the key back on failure", "[fleet][codec]") {
    const json body = json::parse(casTxnRequest("/sy/services/web", "{\"generation\":2}", 7));
    const json& compare = body.at("compare").at(0);
    CHECK(compare.at("key") == base64Encode("/sy/services/web"));
    CHECK(compare.at("target") == "MOD");   // without it etcd compares the version
    CHECK(compare.at("result") == "EQUAL");
    CHECK(compare.at("mod_revision") == "7");
    CHECK(body.at("success").at(0).at("request_put").at("value") == base64Encode("{\"generation\":2}"));
    CHECK(body.at("failure").at(0).at("request_range").at("key") == base64Encode("/sy/services/web"));
    // Absent key: mod_revision 0.
    CHECK(json::parse(casTxnRequest("k", "v", 0)).at("compare").at(0).at("mod_revision") == "0");
}

TEST_CASE("a campaign creates the driver key under a lease only if it has never been created", "[fleet][codec]") {
    CHECK(driverKey("/sy/") == "/sy/rollout-driver");
    const json body = json::parse(campaignTxnRequest("/sy/rollout-driver", "lb-1", 4390625093291833662));
    const json& compare = body.at("compare").at(0);
    CHECK(compare.at("target") == "CREATE");
    CHECK(compare.at("create_revision") == "0");
    const json& put = body.at("success").at(0).at("request_put");
    CHECK(put.at("value") == base64Encode("lb-1"));
    CHECK(put.at("lease") == "4390625093291833662");
    CHECK(body.at("failure").at(0).at("request_range").at("key") == base64Encode("/sy/rollout-driver"));
}

TEST_CASE("lease requests use TTL and ID in capitals; watch a prefix with progress", "[fleet][codec]") {
    CHECK(json::parse(leaseGrantRequest(10)) == json{{"TTL", "10"}});
    CHECK(json::parse(leaseKeepAliveRequest(4390625093291833662)) == json{{"ID", "4390625093291833662"}});
    CHECK(json::parse(putRequest("k", "v", 0)).contains("lease") == false);
    CHECK(json::parse(putRequest("k", "v", 42)).at("lease") == "42");
    const json w = json::parse(watchRequest("/sy/", 11)).at("create_request");
    CHECK(w.at("key") == base64Encode("/sy/"));
    CHECK(w.at("range_end") == base64Encode("/sy0"));
    CHECK(w.at("start_revision") == "11");
}

TEST_CASE("range answers: int64 strings, omitted defaults", "[fleet][codec]") {
    const RangeAnswer a = parseRange(R"({"header":{"cluster_id":"1","revision":"5","raft_term":"2"},
        "kvs":[{"key":"bGIvc3ZjL3dlYg==","create_revision":"2","mod_revision":"3","version":"2","value":"djEx"}],
        "count":"1"})");
    CHECK(a.revision == 5);
    REQUIRE(a.kvs.size() == 1);
    CHECK(a.kvs[0].key == "lb/svc/web");
    CHECK(a.kvs[0].value == "v11");
    CHECK(a.kvs[0].modRevision == 3);
    const RangeAnswer empty = parseRange(R"({"header":{"revision":"5"}})");
    CHECK(empty.kvs.empty());
    CHECK_THROWS_WITH(parseRange(R"({"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14})"),
                      "etcdserver: request timed out");
    CHECK_THROWS(parseRange("not json"));
}

TEST_CASE("txn answers: succeeded is absent on failure, which hands back the current value", "[fleet][codec]") {
    const TxnAnswer won = parseTxn(
        R"({"header":{"revision":"7"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"7"}}}]})");
    CHECK(won.succeeded);
    CHECK(won.revision == 7);
    CHECK_FALSE(won.current);
    const TxnAnswer lost = parseTxn(R"({"header":{"revision":"7"},"responses":[{"response_range":{"header":{"revision":"7"},
        "kvs":[{"key":"aw==","mod_revision":"7","version":"3","value":"djc="}],"count":"1"}}]})");
    CHECK_FALSE(lost.succeeded);
    REQUIRE(lost.current);
    CHECK(lost.current->value == "v7");
    CHECK(lost.current->modRevision == 7);
    const TxnAnswer missing = parseTxn(R"({"header":{"revision":"7"},"responses":[{"response_range":{"header":{"revision":"7"}}}]})");
    CHECK_FALSE(missing.succeeded);
    CHECK_FALSE(missing.current);
}

TEST_CASE("watch messages: created, PUT without type, DELETE, cancel, stream errors", "[fleet][codec]") {
    const WatchMessage created = parseWatchMessage(R"({"result":{"header":{"revision":"10"},"created":true}})");
    CHECK(created.created);
    CHECK(created.revision == 10);
    const WatchMessage events = parseWatchMessage(R"({"result":{"header":{"revision":"13"},"events":[
        {"kv":{"key":"aw==","mod_revision":"11","value":"djEx"}},
        {"type":"DELETE","kv":{"key":"aw==","mod_revision":"13"}}]}})");
    REQUIRE(events.events.size() == 2);
    CHECK_FALSE(events.events[0].deleted);
    CHECK(events.events[0].kv.value == "v11");
    CHECK(events.events[1].deleted);
    CHECK(events.events[1].kv.modRevision == 13);
    const WatchMessage compacted =
        parseWatchMessage(R"({"result":{"header":{},"canceled":true,"compact_revision":"20"}})");
    CHECK(compacted.canceled);
    CHECK(compacted.compactRevision == 20);
    CHECK_THROWS_WITH(parseWatchMessage(R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}})"),
                      "etcdserver: no leader");
}

TEST_CASE("lease answers: an expired lease has no TTL", "[fleet][codec]") {
    const LeaseAnswer granted = parseLease(R"({"header":{},"ID":"4390625093291833677","TTL":"10"})");
    CHECK(granted.id == 4390625093291833677);   // above 2^53: never a double
    CHECK(granted.ttl == 10);
    CHECK(parseLease(R"({"result":{"header":{},"ID":"4390625093291833677","TTL":"10"}})").ttl == 10);
    CHECK(parseLease(R"({"result":{"header":{},"ID":"4390625093291833677"}})").ttl == 0);
    CHECK(errorText(R"({"error":"requested lease not found","message":"requested lease not found","code":5})") ==
          "requested lease not found");
}

TEST_CASE("an error reply with fields of unexpected types still gives a text, never throws", "[fleet][codec]") {
    CHECK(errorText(R"({"error":{"message":5}})") == "error");
    CHECK(errorText(R"({"error":"etcdserver: no leader","message":["x"]})") == "etcdserver: no leader");
    CHECK(errorText(R"({"error":7,"message":null})") == "error");
    CHECK(errorText(R"({"error":{"message":"permission denied"}})") == "permission denied");
}
