#include "switchyard/routing/outlier_trip.h"

#include <catch2/catch.hpp>

#include "snapshot_builder.h"

using namespace switchyard;
using namespace switchyard::routing;
using namespace switchyard::routing::testing;
using config::Colour;

namespace {

struct Fixture {
    ServiceRoute service;

    explicit Fixture(std::size_t green, uint32_t percent = 50, uint32_t threshold = 5) {
        ServiceBuilder b("web");
        b.split(0, 100);
        for (std::size_t i = 0; i < green; ++i) b.backend(Colour::Green, 100);
        service = b.build();
        service.outlierConsecutiveFailures = threshold;
        service.outlierMaxEjectionPercent = percent;
    }
    const ServiceRoute& route() const { return service; }
    BackendState& green(std::size_t i) { return *service.pool(Colour::Green).backends.at(i).handle; }
};

} // namespace

TEST_CASE("a failure run reaching the threshold ejects the backend at once", "[routing][outlier]") {
    Fixture f(2);
    for (uint32_t run = 1; run < 5; ++run) CHECK_FALSE(noteBackendFailure(f.route(), f.green(0), run));
    CHECK_FALSE(f.green(0).ejected.load());
    CHECK(noteBackendFailure(f.route(), f.green(0), 5));
    CHECK(f.green(0).ejected.load());
    CHECK(f.route().state->outlierTrips.load() == 1);
    // Already ejected: no second ejection.
    CHECK_FALSE(noteBackendFailure(f.route(), f.green(0), 6));
}

TEST_CASE("never more than max_ejection_percent of a pool at once", "[routing][outlier]") {
    Fixture f(2);
    CHECK(noteBackendFailure(f.route(), f.green(0), 5));
    CHECK_FALSE(noteBackendFailure(f.route(), f.green(1), 5));
    CHECK_FALSE(f.green(1).ejected.load());
    // The first one back: now the second may go (its run keeps growing).
    f.green(0).ejected = false;
    CHECK(noteBackendFailure(f.route(), f.green(1), 9));
}

TEST_CASE("a pool of one backend is never ejected at 50%, at 100% it is", "[routing][outlier]") {
    Fixture half(1);
    CHECK_FALSE(noteBackendFailure(half.route(), half.green(0), 5));
    Fixture all(1, 100);
    CHECK(noteBackendFailure(all.route(), all.green(0), 5));
}

TEST_CASE("disabled detection never ejects", "[routing][outlier]") {
    Fixture f(4, 50, 0);
    CHECK_FALSE(noteBackendFailure(f.route(), f.green(0), 500));
}

TEST_CASE("a backend that is not in the service's pool is left alone", "[routing][outlier]") {
    Fixture f(2);
    BackendState stranger("web", Colour::Green, ipv4Endpoint("127.0.0.1", 9999));
    CHECK_FALSE(noteBackendFailure(f.route(), stranger, 5));
    CHECK_FALSE(stranger.ejected.load());
}
