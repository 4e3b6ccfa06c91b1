#include "switchyard/daemon/handover.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <thread>

#include <catch2/catch.hpp>

using namespace switchyard;
using namespace switchyard::daemon;

namespace {

struct Channel {
    UniqueFd old;
    UniqueFd fresh;
    Channel() {
        int pair[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0);
        old = UniqueFd(pair[0]);
        fresh = UniqueFd(pair[1]);
    }
};

// The same open file: a descriptor passed by SCM_RIGHTS is a new number for the same file.
bool sameFile(int a, int b) {
    struct stat sa {}, sb {};
    return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

} // namespace

TEST_CASE("hello hands over more descriptors than fit one message, each with what it is", "[daemon]") {
    Channel channel;
    // 600 listeners: three messages of descriptors (at most 250 each).
    std::vector<HandoverSocket> sent;
    for (unsigned i = 0; i < 600; ++i) {
        int pipeFds[2];
        REQUIRE(::pipe2(pipeFds, O_CLOEXEC) == 0);
        ::close(pipeFds[1]);
        sent.push_back({"listener", "svc" + std::to_string(i / 2), "127.0.0.1:" + std::to_string(10000 + i / 2), i % 2,
                        UniqueFd(pipeFds[0])});
    }
    sent.push_back({"admin", "", "", 0, UniqueFd(::dup(sent[0].fd.get()))});

    // The receiver reads while the sender writes: the socket buffer holds only so much.
    std::optional<Result<Hello>> received;
    const std::vector<nlohmann::json> health = {nlohmann::json::array({{{"service", "svc0"}, {"panic", true}}}),
                                                nlohmann::json::array()};
    std::thread reader([&] { received = receiveHello(channel.fresh.get(), std::chrono::seconds(5)); });
    REQUIRE(sendHello(channel.old.get(), sent, health));
    reader.join();
    REQUIRE(received);
    REQUIRE(*received);
    CHECK(received->value().health == health);
    const auto& got = received->value().sockets;
    REQUIRE(got.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        INFO(i);
        CHECK(got[i].role == sent[i].role);
        CHECK(got[i].service == sent[i].service);
        CHECK(got[i].address == sent[i].address);
        CHECK(got[i].worker == sent[i].worker);
        REQUIRE(got[i].fd.valid());
        CHECK(sameFile(got[i].fd.get(), sent[i].fd.get()));
    }

    AdoptedSockets adopted(std::move(received->value().sockets));
    UniqueFd worker1 = adopted.takeListener("svc7", "127.0.0.1:10007", 1);
    REQUIRE(worker1.valid());
    CHECK(sameFile(worker1.get(), sent[15].fd.get()));
    CHECK_FALSE(adopted.takeListener("svc7", "127.0.0.1:10007", 1).valid());   // taken once
    CHECK_FALSE(adopted.takeListener("svc7", "127.0.0.1:9999", 0).valid());    // another address: bound anew
    CHECK(adopted.take("admin").valid());
    CHECK_FALSE(adopted.take("metrics").valid());
}

TEST_CASE("a hello of another hand-over version is refused", "[daemon]") {
    Channel channel;
    REQUIRE(sendHandoverMessage(channel.old.get(),
                                {{"type", "hello"}, {"version", kHandoverVersion + 1}, {"sockets", nlohmann::json::array()},
                                 {"batches", 0}}));
    auto received = receiveHello(channel.fresh.get(), std::chrono::seconds(1));
    REQUIRE_FALSE(received);
    CHECK(received.errorText() == "the running daemon speaks hand-over version 3, this binary 2");
}

TEST_CASE("a broken or silent channel is an error, not a hang", "[daemon]") {
    {
        Channel channel;
        auto received = receiveHandoverMessage(channel.fresh.get(), std::chrono::milliseconds(10));
        REQUIRE_FALSE(received);
        CHECK(received.errorText() == "no hand-over message within 10 ms");
    }
    {
        Channel channel;
        channel.old.reset();
        auto received = receiveHandoverMessage(channel.fresh.get(), std::chrono::seconds(1));
        REQUIRE_FALSE(received);
        CHECK(received.errorText() == "the other generation closed the hand-over channel");
    }
    {
        Channel channel;
        REQUIRE(::send(channel.old.get(), "not json", 8, 0) == 8);
        auto received = receiveHandoverMessage(channel.fresh.get(), std::chrono::seconds(1));
        REQUIRE_FALSE(received);
        CHECK(received.errorText() == "malformed hand-over message");
    }
}

TEST_CASE("a hand-over message with a field of the wrong type is refused, not thrown on", "[daemon]") {
    const nlohmann::json malformed[] = {
        {{"type", 5}},
        {{"type", "ready"}, {"version", 1}},
        {{"type", "refused"}, {"error", nlohmann::json::array()}},
        {{"type", "draining"}, {"connections", "many"}},
        {{"type", "counters"}, {"seq", 1}, {"part", 0}, {"parts", 1}, {"series", "all"}},
        {{"type", "drains"}, {"reset", "web"}, {"spreads", nlohmann::json::object()}, {"backends", nlohmann::json::array()}},
        {{"type", "health"}, {"records", 1}},
        {{"type", "counters"}, {"seq", -1}, {"part", 0}, {"parts", 1}, {"series", nlohmann::json::array()}},
        {{"type", "hello"}, {"version", "1"}, {"sockets", nlohmann::json::array()}, {"batches", 0}},
        {{"type", "hello"}, {"version", 1}, {"sockets", nlohmann::json::array()}, {"batches", -1}},
    };
    for (const auto& body : malformed) {
        Channel channel;
        REQUIRE(sendHandoverMessage(channel.old.get(), body));
        auto received = receiveHandoverMessage(channel.fresh.get(), std::chrono::seconds(1));
        REQUIRE_FALSE(received);
        CHECK(received.errorText() == "malformed hand-over message");
    }
}
