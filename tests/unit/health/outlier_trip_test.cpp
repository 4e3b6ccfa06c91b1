#include "switchyard/health/outlier_trip.h"

#include <catch2/catch.hpp>

#include "health_fixtures.h"
#include "switchyard/control/snapshot_builder.h"

using namespace switchyard;
using namespace switchyard::health;
using namespace switchyard::health::testing;
using config::Colour;

namespace {

struct Fixture {
    control::MasterState state;
    routing::SnapshotPtr snapshot;

    explicit Fixture(std::size_t green, uint32_t percent = 50, bool enabled = true) {
        auto s = makeService(1, green, {0, 100});
        s.config.outlierDetection.enabled = enabled;
        s.config.outlierDetection.maxEjectionPercent = percent;
        state.services.push_back(std::move(s));
        snapshot = control::buildSnapshot(state);
    }
    const routing::ServiceRoute& route() const { return snapshot->services[0]; }
    routing::BackendState& green(std::size_t i) { return *state.services[0].pool(Colour::Green).backends.at(i).handle; }
};

} // namespace

TEST_CASE("the snapshot carries the outlier threshold; disabled detection carries 0", "[health][outlier]") {
    CHECK(Fixture(2).route().outlierConsecutiveFailures == 5);
    CHECK(Fixture(2).route().outlierMaxEjectionPercent == 50);
    CHECK(Fixture(2, 50, false).route().outlierConsecutiveFailures == 0);
}

TEST_CASE("a failure run reaching the threshold ejects the backend at once", "[health][outlier]") {
    Fixture f(2);
    for (uint32_t run = 1; run < 5; ++run) CHECK_FALSE(noteBackendFailure(f.route(), f.green(0), run));
    CHECK_FALSE(f.green(0).ejected.load());
    CHECK(noteBackendFailure(f.route(), f.green(0), 5));
    CHECK(f.green(0).ejected.load());
    // Already ejected: no second ejection.
    CHECK_FALSE(noteBackendFailure(f.route(), f.green(0), 6));
}

TEST_CASE("never more than max_ejection_percent of a pool at once", "[health][outlier]") {
    Fixture f(2);
    CHECK(noteBackendFailure(f.route(), f.green(0), 5));
    CHECK_FALSE(noteBackendFailure(f.route(), f.green(1), 5));
    CHECK_FALSE(f.green(1).ejected.load());
    // The first one back: now the second may go (its run keeps growing).
    f.green(0).ejected = false;
    CHECK(noteBackendFailure(f.route(), f.green(1), 9));
}

TEST_CASE("a pool of one backend is never ejected at 50%, at 100% it is", "[health][outlier]") {
    Fixture half(1);
    CHECK_FALSE(noteBackendFailure(half.route(), half.green(0), 5));
    Fixture all(1, 100);
    CHECK(noteBackendFailure(all.route(), all.green(0), 5));
}

TEST_CASE("disabled detection never ejects", "[health][outlier]") {
    Fixture f(4, 50, false);
    CHECK_FALSE(noteBackendFailure(f.route(), f.green(0), 500));
}

TEST_CASE("a backend that is not in the service's pool is left alone", "[health][outlier]") {
    Fixture f(2);
    routing::BackendState stranger("web", Colour::Green, local(9999));
    CHECK_FALSE(noteBackendFailure(f.route(), stranger, 5));
    CHECK_FALSE(stranger.ejected.load());
}
