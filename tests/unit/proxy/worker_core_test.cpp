#include "switchyard/proxy/worker_core.h"

#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "../routing/snapshot_builder.h"

using namespace switchyard;
using namespace std::chrono_literals;

namespace {

struct FakeSession : proxy::DrainHook {
    uint64_t id_ = 0;
    routing::BackendHandle backend_;
    routing::TimePoint scheduled_ = routing::kNoDeadline;
    uint64_t id() const { return id_; }
    const routing::BackendHandle& backend() const { return backend_; }
    routing::TimePoint scheduledDrain() const { return scheduled_; }
    void setScheduledDrain(routing::TimePoint t) { scheduled_ = t; }
};

struct FakeListener {
    std::string service;
    std::size_t serviceIndex = routing::RoutingSnapshot::kNoService;
};

} // namespace

TEST_CASE("worker core: session ids carry the worker, sessions come and go", "[proxy][worker_core]") {
    proxy::WorkerCore<FakeSession> core(3);
    const uint64_t a = core.nextSessionId();
    const uint64_t b = core.nextSessionId();
    CHECK(a == ((uint64_t{3} << 48) | 1));
    CHECK(b == a + 1);
    auto s = std::make_unique<FakeSession>();
    s->id_ = a;
    core.add(std::move(s));
    CHECK(core.sessionCount() == 1);
    CHECK(core.find(a) != nullptr);
    CHECK(core.find(b) == nullptr);
    core.remove(a);
    CHECK(core.sessionCount() == 0);
    CHECK(core.find(a) == nullptr);
}

TEST_CASE("worker core: a snapshot routes listeners, a draining backend's sessions close on time",
          "[proxy][worker_core]") {
    proxy::WorkerCore<FakeSession> core(0);
    routing::ServiceRoute web = routing::testing::ServiceBuilder("web").backends(config::Colour::Blue, {1}).build();
    web.drainSpread = 0ms;
    std::vector<std::unique_ptr<FakeListener>> listeners;
    listeners.push_back(std::make_unique<FakeListener>(FakeListener{"web"}));
    listeners.push_back(std::make_unique<FakeListener>(FakeListener{"other"}));
    std::vector<std::string> started;
    const auto start = [&](auto& l) { started.push_back(l->service); };
    core.applySnapshot(std::make_shared<routing::RoutingSnapshot>(routing::testing::snapshotOf({web})), listeners,
                       start);
    CHECK(started == std::vector<std::string>{"web"});
    CHECK(listeners[0]->serviceIndex == 0);
    CHECK(listeners[1]->serviceIndex == routing::RoutingSnapshot::kNoService);
    CHECK_FALSE(core.drainTimerDue().arm);

    auto s = std::make_unique<FakeSession>();
    s->id_ = core.nextSessionId();
    s->backend_ = web.pool(config::Colour::Blue).backends[0].handle;
    core.connected(core.add(std::move(s)));

    routing::ServiceRoute drained = web;
    drained.pool(config::Colour::Blue).backends[0].draining = true;
    drained.pool(config::Colour::Blue).backends[0].drainDeadline = routing::Clock::now() - 1s;
    core.applySnapshot(std::make_shared<routing::RoutingSnapshot>(routing::testing::snapshotOf({drained}, 2)),
                       listeners, start);
    const auto timer = core.drainTimerDue();
    CHECK(timer.arm);
    CHECK_FALSE(timer.replacing);
    CHECK_FALSE(core.drainTimerDue().arm);   // armed already for that time
    int closed = 0;
    core.runDrains([&](FakeSession&) { ++closed; });
    CHECK(closed == 1);
}
