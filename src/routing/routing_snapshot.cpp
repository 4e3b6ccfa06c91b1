#include "switchyard/routing/routing_snapshot.h"

#include "switchyard/routing/consistent_hash.h"

namespace switchyard::routing {

namespace {

// FNV-1a over a byte stream: order matters, so equal signatures mean equal
// keys and weights in the same order (and the same count).
class Fnv {
public:
    void feed(const void* data, std::size_t n) {
        const auto* bytes = static_cast<const unsigned char*>(data);
        for (std::size_t i = 0; i < n; ++i) {
            h_ ^= bytes[i];
            h_ *= 0x100000001b3ULL;
        }
    }
    void feed(uint64_t v) { feed(&v, sizeof v); }
    uint64_t value() const { return h_; }

private:
    uint64_t h_ = 0xcbf29ce484222325ULL;
};

} // namespace

uint64_t PoolRoute::signatureOf(const std::vector<BackendRoute>& backends) {
    Fnv fnv;
    fnv.feed(static_cast<uint64_t>(backends.size()));
    for (const BackendRoute& b : backends) {
        std::string_view key = b.handle ? std::string_view(b.handle->key) : std::string_view();
        // The length keeps ("ab","c") and ("a","bc") apart.
        fnv.feed(static_cast<uint64_t>(key.size()));
        fnv.feed(key.data(), key.size());
        fnv.feed(static_cast<uint64_t>(b.weight));
    }
    const uint64_t h = mix64(fnv.value());
    return h == 0 ? 1 : h;
}

void PoolRoute::computeSignature() {
    pickSignature = signatureOf(backends);
}

const ServiceRoute* RoutingSnapshot::find(std::string_view name) const {
    // A handful of services: a linear scan beats hashing the name.
    for (const ServiceRoute& s : services)
        if (s.name == name) return &s;
    return nullptr;
}

std::size_t RoutingSnapshot::indexOf(std::string_view name) const {
    const ServiceRoute* s = find(name);
    return s ? static_cast<std::size_t>(s - services.data()) : kNoService;
}

} // namespace switchyard::routing
