#pragma once

// Builds RoutingSnapshot / ServiceRoute values by hand for routing tests, the way
// the control thread would (signatures computed), without a config file.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "switchyard/routing/routing_snapshot.h"

namespace switchyard::routing::testing {

inline config::Endpoint ipv4Endpoint(std::string host, uint16_t port) {
    config::Endpoint e;
    e.host = std::move(host);
    e.port = port;
    e.ipv6 = false;
    return e;
}

inline void computeSignatures(ServiceRoute& service) {
    for (PoolRoute& p : service.pools) p.computeSignature();
}

inline void computeSignatures(RoutingSnapshot& snapshot) {
    for (std::size_t i = 0; i < snapshot.services.size(); ++i) computeSignatures(snapshot.services.edit(i));
}

class ServiceBuilder {
public:
    explicit ServiceBuilder(std::string name) {
        service_.name = std::move(name);
        service_.listen = ipv4Endpoint("127.0.0.1", 8080);
        service_.state = std::make_shared<ServiceState>();
        service_.pool(config::Colour::Blue).colour = config::Colour::Blue;
        service_.pool(config::Colour::Green).colour = config::Colour::Green;
        service_.pool(config::Colour::Blue).weight = 100;
    }

    ServiceBuilder& balance(config::Balance b) {
        service_.balance = b;
        return *this;
    }
    ServiceBuilder& affinity(config::Affinity a) {
        service_.affinity = a;
        return *this;
    }
    ServiceBuilder& split(uint32_t blue, uint32_t green) {
        service_.pool(config::Colour::Blue).weight = blue;
        service_.pool(config::Colour::Green).weight = green;
        return *this;
    }
    ServiceBuilder& offline(config::Colour c) {
        service_.pool(c).offline = true;
        return *this;
    }
    // A backend 10.<pool>.0.<n>:8080 unless a host is given.
    ServiceBuilder& backend(config::Colour c, uint32_t weight, std::string host = {},
                            uint16_t port = 8080) {
        PoolRoute& p = service_.pool(c);
        if (host.empty())
            host = "10." + std::to_string(config::index(c) + 1) + ".0." +
                   std::to_string(p.backends.size() + 1);
        BackendRoute b;
        b.handle = std::make_shared<BackendState>(service_.name, c, ipv4Endpoint(host, port));
        b.weight = weight;
        p.backends.push_back(std::move(b));
        return *this;
    }
    ServiceBuilder& backends(config::Colour c, std::vector<uint32_t> weights) {
        for (uint32_t w : weights) backend(c, w);
        return *this;
    }

    ServiceRoute build() const {
        ServiceRoute s = service_;
        computeSignatures(s);
        return s;
    }

private:
    ServiceRoute service_;
};

inline RoutingSnapshot snapshotOf(std::vector<ServiceRoute> services, uint64_t revision = 1) {
    RoutingSnapshot snap;
    for (auto& s : services) snap.services.push_back(std::move(s));
    snap.revision = revision;
    computeSignatures(snap);
    return snap;
}

inline sockaddr_in ipv4Client(uint32_t hostOrderAddress, uint16_t port = 40000) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    in.sin_addr.s_addr = htonl(hostOrderAddress);
    return in;
}

// The i-th of many distinct clients: 10.x.y.z.
inline sockaddr_in nthClient(uint32_t i) {
    return ipv4Client((10u << 24) | (i + 1));
}

} // namespace switchyard::routing::testing
