#include "switchyard/control/state_store.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "switchyard/config/split_json.h"
#include "switchyard/rollout/rollout_json.h"
#include "switchyard/util/unique_fd.h"

namespace switchyard::control {
namespace {

using nlohmann::json;
constexpr const char* kFormat = "switchyard-state";
constexpr int kVersion = 1;

AdminState adminStateFrom(const std::string& word) {
    if (word == "enabled") return AdminState::Enabled;
    if (word == "drain") return AdminState::Drain;
    if (word == "disabled") return AdminState::Disabled;
    throw std::invalid_argument("unknown admin_state '" + word + "'");
}

config::Endpoint endpointFrom(const json& j) {
    std::string why;
    auto ep = config::parseEndpoint(j.get<std::string>(), &why);
    if (!ep) throw std::invalid_argument("bad address: " + why);
    return *ep;
}

Result<bool> writeAll(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Result<bool>::failure(std::strerror(errno));
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// The loaders below read integers with get<uint32_t>(), get<int64_t>() and the
// like, which cast a JSON float straight to the integer type: undefined
// behaviour when it is out of range ({"blue": 1e300}; UBSan, found by
// tests/fuzz). Every float the daemon writes is a rate or a latency in ms:
// finite, non-negative and far below 2^31. Any other float is refused up front.
bool floatsInRange(const json& root) {
    std::vector<const json*> todo{&root};   // iterative: nesting depth is the file's choice
    while (!todo.empty()) {
        const json* j = todo.back();
        todo.pop_back();
        if (j->is_number_float()) {
            const double d = j->get<double>();
            if (!(d >= 0.0 && d < 2147483648.0)) return false;
        } else if (j->is_structured()) {
            for (const json& child : *j) todo.push_back(&child);
        }
    }
    return true;
}

} // namespace

std::string serializeState(const MasterState& state) {
    json services = json::object();
    for (const ServiceEntry& s : state.services) {
        json pools = json::object();
        for (auto colour : config::kColours) {
            const PoolEntry& pool = s.pool(colour);
            json backends = json::array();
            for (const BackendEntry& b : pool.backends)
                backends.push_back({{"address", b.address.toString()},
                                    {"weight", b.weight},
                                    {"config_weight", b.configWeight},
                                    {"admin_state", toString(b.adminState)},
                                    {"added", b.addedAtRuntime},
                                    {"removing", b.removing}});
            json removed = json::array();
            for (const auto& r : pool.removed)
                removed.push_back({{"address", r.address.toString()}, {"config_weight", r.weight}});
            pools[config::toString(colour)] = {{"offline", pool.offline}, {"backends", backends}, {"removed", removed}};
        }
        json fallback = nullptr;
        if (s.fallback.active)
            fallback = {{"from", config::toString(s.fallback.from)},
                        {"reason", s.fallback.reason},
                        {"since_unix_ms", s.fallback.sinceUnixMs}};
        services[s.config.name] = {
            {"generation", s.generation},
            {"split", config::splitToJson(s.split)},
            {"config", {{"split", config::splitToJson(s.config.split)}}},
            {"rollback_split", s.rollbackSplit ? config::splitToJson(*s.rollbackSplit) : json(nullptr)},
            {"fallback", fallback},
            {"pools", pools},
            {"rollout", s.rollout ? rollout::persistJson(*s.rollout) : json(nullptr)},
        };
    }
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    json root = {{"format", kFormat}, {"version", kVersion}, {"saved_unix_ms", now}, {"services", services}};
    return root.dump(2) + "\n";
}

Result<MergeReport> mergeOverrides(const std::string& savedJson, MasterState& state) {
    MergeReport report;
    json root;
    try {
        root = json::parse(savedJson);
    } catch (const std::exception& e) {
        return Result<MergeReport>::failure(fmt::format("not valid JSON: {}", e.what()));
    }
    // Not json::value(): it throws when the key is there with another type
    // ({"format": 1} aborted the daemon at start; found by tests/fuzz).
    const auto field = [&](const char* key) { return root.is_object() ? root.find(key) : root.end(); };
    if (const auto format = field("format"); format == root.end() || !format->is_string() || *format != kFormat)
        return Result<MergeReport>::failure("not a switchyard state file (no \"format\": \"switchyard-state\")");
    if (const auto version = field("version"); version == root.end() || !version->is_number() || *version != kVersion)
        return Result<MergeReport>::failure(fmt::format("unsupported state file version {}",
                                                        version == root.end() ? "0" : version->dump()));
    if (!floatsInRange(root))
        return Result<MergeReport>::failure("malformed state file: a number is out of range");
    // Parse everything first: a file that fails half-way must not half-apply.
    MasterState merged = state;
    try {
        const json& services = root.at("services");
        for (ServiceEntry& s : merged.services) {
            const std::string& name = s.config.name;
            if (!services.contains(name)) continue;
            const json& saved = services.at(name);
            s.generation = std::max<uint64_t>(s.generation, saved.at("generation").get<uint64_t>());
            const config::Split savedSplit = config::splitFromJson(saved.at("split"));
            const config::Split madeAgainst = config::splitFromJson(saved.at("config").at("split"));
            if (madeAgainst == s.config.split) {
                if (!(savedSplit == s.config.split))
                    report.kept.push_back(fmt::format("{}: split blue={} green={}", name, savedSplit.blue, savedSplit.green));
                s.split = savedSplit;
                if (!saved.at("rollback_split").is_null()) s.rollbackSplit = config::splitFromJson(saved.at("rollback_split"));
            } else if (!(savedSplit == madeAgainst)) {
                // Only an override can be replaced: a split that simply followed
                // the config is not one.
                report.replaced.push_back(fmt::format("{}: split (config changed to blue={} green={})", name,
                                                      s.config.split.blue, s.config.split.green));
            }
            // The rollout (plan, step, history) goes with the split it drives: if the
            // config's split changed, an active rollout is dropped with the override.
            if (saved.contains("rollout") && !saved.at("rollout").is_null()) {
                rollout::Rollout r = rollout::restoreJson(saved.at("rollout"));
                if (!r.active() || madeAgainst == s.config.split) {
                    if (r.active())
                        report.kept.push_back(fmt::format("{}: rollout to {} at step {}/{} ({}%, {})", name,
                                                          config::toString(r.target()), r.step + 1, r.plan.steps.size(),
                                                          r.percent(), rollout::toString(r.phase)));
                    s.rollout = std::move(r);
                } else {
                    report.replaced.push_back(fmt::format("{}: rollout to {} (config split changed; rollout dropped)",
                                                          name, config::toString(r.target())));
                }
            }
            if (const json& fb = saved.at("fallback"); !fb.is_null()) {
                s.fallback.active = true;
                s.fallback.from = fb.at("from").get<std::string>() == "green" ? config::Colour::Green : config::Colour::Blue;
                s.fallback.reason = fb.at("reason").get<std::string>();
                s.fallback.sinceUnixMs = fb.at("since_unix_ms").get<int64_t>();
            }
            for (auto colour : config::kColours) {
                const json& savedPool = saved.at("pools").at(config::toString(colour));
                PoolEntry& pool = s.pool(colour);
                const char* cname = config::toString(colour);
                if (savedPool.at("offline").get<bool>()) {
                    pool.offline = true;
                    report.kept.push_back(fmt::format("{}: pool {} offline", name, cname));
                }
                for (const json& r : savedPool.at("removed")) {
                    const config::Endpoint address = endpointFrom(r.at("address"));
                    const bool inConfig = std::erase_if(pool.backends, [&](const BackendEntry& b) {
                                              return b.address == address;
                                          }) > 0;
                    if (inConfig) {
                        pool.removed.push_back({address, r.at("config_weight").get<uint32_t>()});
                        report.kept.push_back(fmt::format("{}: {} backend {} removed", name, cname, address.toString()));
                    }
                }
                for (const json& b : savedPool.at("backends")) {
                    const config::Endpoint address = endpointFrom(b.at("address"));
                    const uint32_t weight = b.at("weight").get<uint32_t>();
                    const uint32_t configWeight = b.at("config_weight").get<uint32_t>();
                    if (weight > config::kMaxWeight) throw std::out_of_range("backend weight over 1000");
                    const AdminState admin = adminStateFrom(b.at("admin_state").get<std::string>());
                    const bool added = b.at("added").get<bool>();
                    if (b.at("removing").get<bool>()) {
                        // It was draining out when the daemon stopped: finish the removal.
                        if (!added) {
                            std::erase_if(pool.backends, [&](const BackendEntry& e) { return e.address == address; });
                            pool.removed.push_back({address, configWeight});
                        }
                        continue;
                    }
                    BackendEntry* entry = pool.find(address);
                    if (added) {
                        if (entry) {
                            report.replaced.push_back(fmt::format("{}: {} backend {} added at runtime is now in the config",
                                                                  name, cname, address.toString()));
                        } else {
                            BackendEntry e = makeBackendEntry(s, colour, config::BackendConfig{address, weight});
                            e.addedAtRuntime = true;
                            e.adminState = admin;
                            pool.backends.push_back(std::move(e));
                            report.kept.push_back(fmt::format("{}: {} backend {} added", name, cname, address.toString()));
                        }
                        continue;
                    }
                    if (!entry) {
                        report.replaced.push_back(
                            fmt::format("{}: {} backend {} (no longer in the config)", name, cname, address.toString()));
                        continue;
                    }
                    if (configWeight == entry->configWeight) {
                        if (weight != entry->weight)
                            report.kept.push_back(fmt::format("{}: {} backend {} weight {}", name, cname,
                                                              address.toString(), weight));
                        entry->weight = weight;
                    } else if (weight != configWeight) {
                        report.replaced.push_back(fmt::format("{}: {} backend {} weight (config changed to {})", name,
                                                              cname, address.toString(), entry->configWeight));
                    }
                    if (admin != AdminState::Enabled) {
                        entry->adminState = admin;
                        // Drained before the restart: its connections are gone, nothing left to wait for.
                        entry->drainDeadline = routing::Clock::now();
                        report.kept.push_back(fmt::format("{}: {} backend {} {}", name, cname, address.toString(),
                                                          toString(admin)));
                    }
                }
            }
        }
    } catch (const std::exception& e) {
        return Result<MergeReport>::failure(fmt::format("malformed state file: {}", e.what()));
    }
    state = std::move(merged);
    return report;
}

Result<bool> StateStore::save(const MasterState& state) const {
    namespace fs = std::filesystem;
    const fs::path path(path_);
    std::error_code fec;
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), fec);
    const std::string tmp = path_ + ".tmp";
    const std::string text = serializeState(state);
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (!fd.valid()) return Result<bool>::failure(fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
    auto fail = [&](const std::string& what) {
        ::unlink(tmp.c_str());
        return Result<bool>::failure(fmt::format("cannot save state to {}: {}", path_, what));
    };
    if (auto w = writeAll(fd.get(), text); !w) return fail(w.errorText());
    if (::fsync(fd.get()) != 0) return fail(std::strerror(errno));
    if (::close(fd.release()) != 0) return fail(std::strerror(errno));
    if (::rename(tmp.c_str(), path_.c_str()) != 0) return fail(std::strerror(errno));
    const std::string dir = path.has_parent_path() ? path.parent_path().string() : ".";
    UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dirFd.valid()) ::fsync(dirFd.get());
    return true;
}

Result<MergeReport> StateStore::load(MasterState& state) const {
    std::ifstream in(path_);
    if (!in) {
        if (errno == ENOENT) return MergeReport{};
        return Result<MergeReport>::failure(fmt::format("cannot read: {}", std::strerror(errno)));
    }
    std::stringstream text;
    text << in.rdbuf();
    auto merged = mergeOverrides(text.str(), state);
    if (!merged) {
        // Never trust it silently, never lose it: keep it aside for a human.
        const auto stamp = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
        const std::string aside = fmt::format("{}.bad-{}", path_, stamp);
        ::rename(path_.c_str(), aside.c_str());
        return Result<MergeReport>::failure(
            fmt::format("{}; moved aside to {}; starting from the config's values", merged.errorText(), aside));
    }
    return merged;
}

} // namespace switchyard::control
