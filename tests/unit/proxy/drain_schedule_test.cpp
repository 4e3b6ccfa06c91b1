#include "switchyard/proxy/drain_schedule.h"

#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

#include <catch2/catch.hpp>

#include "../routing/snapshot_builder.h"

using namespace switchyard;
using namespace std::chrono_literals;
using proxy::DrainSchedule;
using routing::TimePoint;

namespace {

struct FakeSession : proxy::DrainHook {
    uint64_t id_ = 0;
    routing::BackendHandle backend_;
    TimePoint scheduled_ = routing::kNoDeadline;
    bool closed = false;
    uint64_t id() const { return id_; }
    const routing::BackendHandle& backend() const { return backend_; }
    TimePoint scheduledDrain() const { return scheduled_; }
    void setScheduledDrain(TimePoint t) { scheduled_ = t; }
};

} // namespace

TEST_CASE("Drain closes are spread evenly over the window that ends at the deadline", "[drain_schedule]") {
    const TimePoint deadline = TimePoint{} + 10s;
    CHECK(proxy::spreadCloseTime(deadline, 3000ms, 0, 3) == TimePoint{} + 8s);
    CHECK(proxy::spreadCloseTime(deadline, 3000ms, 1, 3) == TimePoint{} + 9s);
    CHECK(proxy::spreadCloseTime(deadline, 3000ms, 2, 3) == deadline);
}

TEST_CASE("A drain schedule closes a draining backend's sessions by their times and forgets a revived pool",
          "[drain_schedule]") {
    auto backend = std::make_shared<routing::BackendState>("web", config::Colour::Blue,
                                                           routing::testing::ipv4Endpoint("127.0.0.1", 9001));
    std::unordered_map<uint64_t, std::unique_ptr<FakeSession>> sessions;
    DrainSchedule<FakeSession> drains;
    for (uint64_t id = 1; id <= 2; ++id) {
        auto s = std::make_unique<FakeSession>();
        s->id_ = id;
        s->backend_ = backend;
        drains.add(*s);
        sessions.emplace(id, std::move(s));
    }
    CHECK(drains.nextAt() == routing::kNoDeadline);

    const TimePoint deadline = TimePoint{} + 10s;
    routing::RoutingSnapshot snapshot;
    routing::ServiceRoute service;
    service.drainSpread = 2000ms;
    routing::BackendRoute route;
    route.handle = backend;
    route.draining = true;
    route.drainDeadline = deadline;
    service.pools[0].backends.push_back(route);
    snapshot.services.push_back(std::move(service));
    drains.apply(snapshot);
    CHECK(drains.nextAt() == TimePoint{} + 9s);

    auto lookup = [&](uint64_t id) -> FakeSession* {
        auto it = sessions.find(id);
        return it == sessions.end() ? nullptr : it->second.get();
    };
    auto close = [](FakeSession& s) { s.closed = true; };
    CHECK(drains.runDue(TimePoint{} + 8s, lookup, close) == 0);
    CHECK(drains.runDue(TimePoint{} + 9s, lookup, close) == 1);

    // The pool came back before the deadline: the other session stays.
    snapshot.services.edit(0).pools[0].backends[0].draining = false;
    snapshot.services.edit(0).pools[0].backends[0].drainDeadline = routing::kNoDeadline;
    drains.apply(snapshot);
    CHECK(drains.runDue(deadline, lookup, close) == 0);
    CHECK(sessions[1]->closed + sessions[2]->closed == 1);
}
