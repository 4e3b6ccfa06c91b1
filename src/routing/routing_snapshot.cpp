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
    const std::size_t i = indexOf(name);
    return i == kNoService ? nullptr : &services[i];
}

std::size_t RoutingSnapshot::indexOf(std::string_view name) const {
    if (index && index->size() == services.size()) return index->find(name);
    for (std::size_t i = 0; i < services.size(); ++i)
        if (services[i].name == name) return i;
    return kNoService;
}

} // namespace switchyard::routing
