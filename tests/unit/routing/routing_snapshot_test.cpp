#include "switchyard/routing/routing_snapshot.h"

#include <catch2/catch.hpp>

#include "snapshot_builder.h"

using namespace switchyard;
using namespace switchyard::routing;
using namespace switchyard::routing::testing;
using config::Colour;

TEST_CASE("Pools with the same backend keys and weights have the same pick signature",
          "[routing]") {
    // Separately built: different BackendState objects, same addresses.
    auto a = ServiceBuilder("web").backends(Colour::Blue, {100, 50}).build();
    auto b = ServiceBuilder("web").backends(Colour::Blue, {100, 50}).build();
    CHECK(a.pool(Colour::Blue).pickSignature != 0);
    CHECK(a.pool(Colour::Blue).pickSignature == b.pool(Colour::Blue).pickSignature);
}

TEST_CASE("A pick signature changes with a weight, a key, the order or the count",
          "[routing]") {
    auto base = ServiceBuilder("web").backends(Colour::Blue, {100, 50}).build();
    const uint64_t sig = base.pool(Colour::Blue).pickSignature;

    auto weight = base;
    weight.pool(Colour::Blue).backends[1].weight = 51;
    weight.pool(Colour::Blue).computeSignature();
    CHECK(weight.pool(Colour::Blue).pickSignature != sig);

    auto key = ServiceBuilder("web")
                   .backend(Colour::Blue, 100)
                   .backend(Colour::Blue, 50, "10.1.0.9")
                   .build();
    CHECK(key.pool(Colour::Blue).pickSignature != sig);

    auto order = base;
    std::swap(order.pool(Colour::Blue).backends[0], order.pool(Colour::Blue).backends[1]);
    order.pool(Colour::Blue).computeSignature();
    CHECK(order.pool(Colour::Blue).pickSignature != sig);

    auto count = base;
    count.pool(Colour::Blue).backends.pop_back();
    count.pool(Colour::Blue).computeSignature();
    CHECK(count.pool(Colour::Blue).pickSignature != sig);
}

TEST_CASE("An empty pool has a nonzero signature", "[routing]") {
    PoolRoute p;
    p.computeSignature();
    CHECK(p.pickSignature != 0);
}

TEST_CASE("A snapshot finds its services by name", "[routing]") {
    auto snap = snapshotOf({ServiceBuilder("web").build(), ServiceBuilder("api").build()});
    REQUIRE(snap.find("api") != nullptr);
    CHECK(snap.find("api")->name == "api");
    CHECK(snap.find("web") == &snap.services[0]);
    CHECK(snap.find("nope") == nullptr);
}
