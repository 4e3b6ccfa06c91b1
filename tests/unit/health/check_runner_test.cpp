#include "switchyard/health/check_runner.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>

using namespace switchyard;
using namespace switchyard::health;
using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

config::Endpoint loopback(uint16_t port) {
    config::Endpoint e;
    e.host = "127.0.0.1";
    e.port = port;
    return e;
}

// Collects what the runner reports, for the test thread to wait on.
struct Reports {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<CheckReport> all;
    CheckRunner* runner = nullptr;

    void take() {
        auto fresh = runner->takeResults();
        std::lock_guard lock(mutex);
        for (auto& r : fresh) all.push_back(std::move(r));
        changed.notify_all();
    }
    // Waits (at most 5 s) until `done(all)` holds.
    template <class Done>
    bool waitFor(Done done) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, 5s, [&] { return done(all); });
    }
    std::size_t countFor(const routing::BackendState* b) {
        std::lock_guard lock(mutex);
        return static_cast<std::size_t>(
            std::count_if(all.begin(), all.end(), [&](const CheckReport& r) { return r.backend.get() == b; }));
    }
};

} // namespace

TEST_CASE("The runner checks each backend every interval off the caller's thread, and stops on remove",
          "[health][runner]") {
    // A listening socket that never accepts still completes TCP connects (the kernel's backlog).
    net::io_context io;
    tcp::acceptor up(io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
    tcp::acceptor closed(io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
    const uint16_t downPort = closed.local_endpoint().port();
    closed.close();   // nothing listens there: connection refused

    auto good = std::make_shared<routing::BackendState>("web", config::Colour::Blue, loopback(up.local_endpoint().port()));
    auto bad = std::make_shared<routing::BackendState>("web", config::Colour::Blue, loopback(downPort));
    auto check = std::make_shared<config::HealthConfig>();
    check->interval = 50ms;
    check->timeout = 500ms;
    check->rise = 1;
    check->fall = 2;

    Reports reports;
    CheckRunner runner([&reports] { reports.take(); });
    reports.runner = &runner;
    runner.start();
    runner.add(good, check, 0ms);
    runner.add(bad, check, 0ms);

    // The bad backend goes down, the good one stays up.
    REQUIRE(reports.waitFor([&](const std::vector<CheckReport>& all) {
        return std::any_of(all.begin(), all.end(), [&](const CheckReport& r) {
            return r.backend == bad && r.change == CheckState::Change::WentDown;
        });
    }));
    {
        std::lock_guard lock(reports.mutex);
        const auto firstBad = std::find_if(reports.all.begin(), reports.all.end(),
                                           [&](const CheckReport& r) { return r.backend == bad; });
        REQUIRE(firstBad != reports.all.end());
        CHECK(firstBad->first);
        CHECK_FALSE(firstBad->result.passed);
        CHECK(firstBad->result.failure == "connect: Connection refused");
        // A first check that fails takes the backend down at once (fall counts from an up state).
        CHECK(firstBad->change == CheckState::Change::WentDown);
        for (const auto& r : reports.all)
            if (r.backend == good) CHECK(r.result.passed);
    }

    // Removed: the bad backend gets no report once the good one was checked three more times.
    runner.remove(bad.get());
    const std::size_t goodBefore = reports.countFor(good.get());
    REQUIRE(reports.waitFor([&](const std::vector<CheckReport>& all) {
        return static_cast<std::size_t>(std::count_if(all.begin(), all.end(), [&](const CheckReport& r) {
                   return r.backend == good;
               })) >= goodBefore + 3;
    }));
    const std::size_t badAfterRemove = reports.countFor(bad.get());
    REQUIRE(reports.waitFor([&](const std::vector<CheckReport>& all) {
        return static_cast<std::size_t>(std::count_if(all.begin(), all.end(), [&](const CheckReport& r) {
                   return r.backend == good;
               })) >= goodBefore + 6;
    }));
    // At most the one check in flight when remove arrived was still reported.
    CHECK(reports.countFor(bad.get()) <= badAfterRemove);
    runner.stop();
}
