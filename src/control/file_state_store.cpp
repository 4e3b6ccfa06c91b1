#include "switchyard/control/file_state_store.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <regex>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "switchyard/util/unique_fd.h"

namespace switchyard::control {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kFormat = "switchyard-state";
constexpr int kLegacyVersion = 1;   // every service in one file
constexpr int kVersion = 2;         // a manifest and one record per service
constexpr const char* kRecordSuffix = ".json";

int64_t unixNowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string errnoText(int e) { return std::strerror(e); }

// The whole of a state file, nullopt if there is none. A file that exists
// but cannot be read, is not a regular file or is too large is an error:
// never hang on a FIFO, never allocate for a runaway file, never take an
// unreadable file for an absent one (docs/semantics.md "Bad state file").
Result<std::optional<std::string>> readStateFile(const std::string& path) {
    using R = Result<std::optional<std::string>>;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd.valid()) {
        if (errno == ENOENT) return std::optional<std::string>();
        return R::failure(fmt::format("cannot read {}: {}", path, errnoText(errno)));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return R::failure(fmt::format("cannot read {}: {}", path, errnoText(errno)));
    if (!S_ISREG(st.st_mode)) return R::failure(fmt::format("{} is not a regular file", path));
    if (static_cast<std::size_t>(st.st_size) > FileStateStore::kMaxFileBytes)
        return R::failure(fmt::format("{} is {} bytes, more than a state file may hold ({} MiB)", path, st.st_size,
                                      FileStateStore::kMaxFileBytes >> 20));
    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::read(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return R::failure(fmt::format("cannot read {}: {}", path, errnoText(errno)));
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    text.resize(done);
    return std::optional<std::string>(std::move(text));
}

Result<bool> writeAll(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Result<bool>::failure(errnoText(errno));
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// Writes `text` to `path.tmp`, created exclusively and never through a
// symlink (one planted there is removed, not followed). `sync`: fsync it now
// (one file); a batch syncs the filesystem once instead.
Result<std::string> writeTemp(const std::string& path, const std::string& text, bool sync) {
    const std::string tmp = path + ".tmp";
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    UniqueFd fd(::open(tmp.c_str(), flags, 0640));
    if (!fd.valid() && errno == EEXIST) {
        ::unlink(tmp.c_str());   // a crash's leftover, or a link someone planted
        fd = UniqueFd(::open(tmp.c_str(), flags, 0640));
    }
    if (!fd.valid()) return Result<std::string>::failure(fmt::format("cannot write {}: {}", tmp, errnoText(errno)));
    auto fail = [&](const std::string& what) {
        ::unlink(tmp.c_str());
        return Result<std::string>::failure(fmt::format("cannot save {}: {}", path, what));
    };
    if (auto w = writeAll(fd.get(), text); !w) return fail(w.errorText());
    if (sync && ::fsync(fd.get()) != 0) return fail(errnoText(errno));
    if (::close(fd.release()) != 0) return fail(errnoText(errno));
    return tmp;
}

// `path` replaced by `text`: temp file, fsync, rename. The caller syncs the directory.
Result<bool> replaceFile(const std::string& path, const std::string& text) {
    auto tmp = writeTemp(path, text, true);
    if (!tmp) return Result<bool>(tmp.errors());
    if (::rename(tmp->c_str(), path.c_str()) != 0) {
        ::unlink(tmp->c_str());
        return Result<bool>::failure(fmt::format("cannot save {}: {}", path, errnoText(errno)));
    }
    return true;
}

Result<bool> syncDirectory(const std::string& dir) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || ::fsync(fd.get()) != 0)
        return Result<bool>::failure(fmt::format("cannot sync directory {}: {}", dir, errnoText(errno)));
    return true;
}

std::string parentOf(const std::string& path) {
    const fs::path p(path);
    return p.has_parent_path() ? p.parent_path().string() : ".";
}

// The highest generation a damaged file still shows: a service must never
// start again at a generation a pipeline's stale if-generation could match.
uint64_t generationIn(const std::string& text) {
    static const std::regex pattern(R"re("generation"\s*:\s*([0-9]{1,19}))re");
    uint64_t best = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), pattern); it != std::sregex_iterator(); ++it)
        best = std::max<uint64_t>(best, std::stoull((*it)[1].str()));
    return best;
}

// A parsed header: the JSON root and its version, or why it is not a state file.
struct Header {
    json root;
    int version = 0;
    std::string problem;
};

Header parseHeader(const std::string& text) {
    Header h;
    try {
        h.root = json::parse(text);
    } catch (const std::exception& e) {
        h.problem = fmt::format("not valid JSON: {}", e.what());
        return h;
    }
    // Not json::value(): it throws when the key is there with another type.
    const auto field = [&](const char* key) { return h.root.is_object() ? h.root.find(key) : h.root.end(); };
    if (const auto format = field("format"); format == h.root.end() || !format->is_string() || *format != kFormat) {
        h.problem = "not a switchyard state file (no \"format\": \"switchyard-state\")";
        return h;
    }
    const auto version = field("version");
    if (version == h.root.end() || !version->is_number_integer() ||
        (*version != kLegacyVersion && *version != kVersion)) {
        h.problem = fmt::format("unsupported state file version {}", version == h.root.end() ? "0" : version->dump());
        return h;
    }
    if (!floatsInRange(h.root)) {
        h.problem = "malformed state file: a number is out of range";
        return h;
    }
    h.version = version->get<int>();
    return h;
}

std::string stamp() {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

} // namespace

std::unique_ptr<StateStore> makeStateStore(const std::string& path) {
    if (path.empty()) return nullptr;
    return std::make_unique<FileStateStore>(path);
}

FileStateStore::FileStateStore(std::string path) : path_(std::move(path)), dir_(path_ + ".d") {}

std::string FileStateStore::recordPath(const std::string& service) const {
    // Service names are 1-64 of A-Z a-z 0-9 _ . - (config validation): safe as file names.
    return dir_ + "/" + service + kRecordSuffix;
}

void FileStateStore::setAside(const std::string& file, const std::string& why, LoadReport& report) const {
    // Never trust it silently, never lose it: keep it aside for a human.
    const std::string aside = fmt::format("{}.bad-{}", file, stamp());
    if (::rename(file.c_str(), aside.c_str()) == 0)
        report.warnings.push_back(fmt::format("{}: {}; moved aside to {}; starting from the config's values", file,
                                              why, aside));
    else
        report.warnings.push_back(fmt::format("{}: {}; could not move it aside ({}); starting from the config's values",
                                              file, why, errnoText(errno)));
}

Result<LoadReport> FileStateStore::load(MasterState& state) {
    LoadReport report;
    auto manifest = readStateFile(path_);
    if (!manifest) return Result<LoadReport>(manifest.errors());
    uint64_t generationFloor = 0;
    std::unordered_map<std::string, Overrides> found;
    bool readRecordsDir = true;
    if (*manifest) {
        const std::string& text = **manifest;
        Header h = parseHeader(text);
        if (h.problem.empty() && h.version == kLegacyVersion) {
            // The first format: parse every service before applying any (a
            // file that fails half-way must not half-apply).
            try {
                const json& services = h.root.at("services");
                for (const ServiceEntry& s : state.services)
                    if (const auto it = services.find(s.config.name); it != services.end())
                        found.emplace(s.config.name, overridesFromJson(*it));
                legacyPending_ = path_;
                readRecordsDir = false;
            } catch (const std::exception& e) {
                found.clear();
                h.problem = fmt::format("malformed state file: {}", e.what());
            }
        }
        if (!h.problem.empty()) {
            // Unusable: the config applies, the generation goes on above what
            // the file (and any records beside it) still show.
            generationFloor = generationIn(text);
            std::unordered_map<std::string, Overrides> ignored;
            LoadReport scratch;
            if (auto ok = loadRecords(state, scratch, ignored); !ok)
                return Result<LoadReport>(ok.errors());
            for (const auto& [_, o] : ignored) generationFloor = std::max(generationFloor, o.generation);
            setAside(path_, h.problem, report);
            if (fs::exists(dir_)) setAside(dir_, "its manifest was set aside", report);
            onDisk_.clear();
            readRecordsDir = false;
        }
    }
    if (readRecordsDir)
        if (auto ok = loadRecords(state, report, found); !ok) return Result<LoadReport>(ok.errors());
    const auto now = routing::Clock::now();
    for (std::size_t i = 0; i < state.services.size(); ++i) {
        const std::string& name = state.services[i].config.name;
        const auto it = found.find(name);
        if (it == found.end() && generationFloor == 0) continue;
        ServiceEntry& s = state.services.edit(i);
        if (generationFloor > 0) s.generation = std::max(s.generation, generationFloor + 1);
        if (it != found.end()) mergeOverrides(it->second, s, report.merge, now);
    }
    if (!legacyPending_.empty()) {
        // Migrate now, whole: a half-migrated store could lose an override.
        std::vector<const ServiceEntry*> all;
        for (const ServiceEntry& s : state.services) all.push_back(&s);
        if (auto ok = save(all); !ok)
            return Result<LoadReport>::failure(fmt::format("cannot migrate {} to one record per service in {} ({}); "
                                                           "the file is unchanged",
                                                           path_, dir_, ok.errorText()));
        report.warnings.push_back(fmt::format("{}: migrated the first-format state file to one record per service in "
                                              "{}; the old file is kept as {}.v1",
                                              path_, dir_, path_));
    }
    return report;
}

Result<bool> FileStateStore::loadRecords(MasterState& state, LoadReport& report,
                                         std::unordered_map<std::string, Overrides>& found) {
    std::error_code ec;
    if (!fs::exists(dir_, ec)) return true;
    if (!fs::is_directory(dir_, ec)) return Result<bool>::failure(fmt::format("{} is not a directory", dir_));
    std::vector<std::string> names;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string file = it->path().filename().string();
        if (file.size() > std::strlen(kRecordSuffix) && file.ends_with(kRecordSuffix)) names.push_back(file);
    }
    if (ec) return Result<bool>::failure(fmt::format("cannot read {}: {}", dir_, ec.message()));
    std::sort(names.begin(), names.end());
    for (const std::string& file : names) {
        const std::string service = file.substr(0, file.size() - std::strlen(kRecordSuffix));
        const std::string path = dir_ + "/" + file;
        auto text = readStateFile(path);
        if (!text) return text.errors().empty() ? Result<bool>::failure(path) : Result<bool>(text.errors());
        if (!*text) continue;   // gone meanwhile
        auto parsed = parseRecord(**text, service);
        const bool known = state.find(service) != nullptr;
        if (!parsed) {
            if (known) {
                // This service alone starts from its config, above what the record still shows.
                const uint64_t shown = generationIn(**text);
                if (shown > 0) {
                    Overrides floorOnly;
                    floorOnly.generation = shown + 1;
                    const ServiceEntry& s = *state.find(service);
                    floorOnly.split = floorOnly.configSplit = s.config.split;
                    found[service] = floorOnly;
                }
            }
            setAside(path, parsed.errorText(), report);
            continue;
        }
        if (!known) {
            report.warnings.push_back(fmt::format("{}: no service {} in the config; record left as it is", path, service));
            continue;
        }
        onDisk_[service] = overridesToJson(*parsed).dump();
        found[service] = std::move(parsed).value();
    }
    return true;
}

Result<Overrides> FileStateStore::parseRecord(const std::string& text, const std::string& service) {
    Header h = parseHeader(text);
    if (!h.problem.empty()) return Result<Overrides>::failure(h.problem);
    if (h.version != kVersion) return Result<Overrides>::failure("a first-format file among the records");
    try {
        const auto named = h.root.find("service");
        if (named == h.root.end() || !named->is_string() || *named != service)
            return Result<Overrides>::failure(fmt::format("its \"service\" is not \"{}\"", service));
        return overridesFromJson(h.root);
    } catch (const std::exception& e) {
        return Result<Overrides>::failure(fmt::format("malformed state record: {}", e.what()));
    }
}

Result<bool> FileStateStore::ensureLayout() {
    if (layoutReady_) return true;
    std::error_code ec;
    const std::string parent = parentOf(path_);
    fs::create_directories(parent, ec);
    if (::mkdir(dir_.c_str(), 0750) != 0 && errno != EEXIST)
        return Result<bool>::failure(fmt::format("cannot create {}: {}", dir_, errnoText(errno)));
    if (!legacyPending_.empty()) return true;   // the manifest replaces the old file once the records are in
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0) {
        const json manifest = {{"format", kFormat},
                               {"version", kVersion},
                               {"records", fs::path(dir_).filename().string()},
                               {"layout", "one JSON file per service with runtime overrides, in the records folder"}};
        if (auto ok = replaceFile(path_, manifest.dump(2) + "\n"); !ok) return ok;
        if (auto ok = syncDirectory(parent); !ok) return ok;
    }
    layoutReady_ = true;
    return true;
}

std::string FileStateStore::recordText(const std::string& service, const Overrides& overrides) const {
    json record = {{"format", kFormat}, {"version", kVersion}, {"service", service}, {"saved_unix_ms", unixNowMs()}};
    record.update(overridesToJson(overrides));
    return record.dump(2) + "\n";
}

Result<bool> FileStateStore::save(const std::vector<const ServiceEntry*>& services) {
    if (auto ok = ensureLayout(); !ok) return ok;
    // What to write: records whose overrides differ from what is on disk.
    struct Staged {
        std::string service;
        std::string canonical;
        std::string text;
        std::string tmp;
    };
    std::vector<Staged> staged;
    std::vector<std::string> gone;
    for (const ServiceEntry* s : services) {
        const std::string& name = s->config.name;
        const Overrides o = overridesOf(*s);
        const auto disk = onDisk_.find(name);
        if (o.empty()) {
            if (disk != onDisk_.end()) gone.push_back(name);
            continue;
        }
        std::string canonical = overridesToJson(o).dump();
        if (disk != onDisk_.end() && disk->second == canonical) continue;
        staged.push_back({name, std::move(canonical), recordText(name, o), {}});
    }
    // One record: fsync it. Several (a reload, a health batch): write them
    // all, then sync the filesystem once, so a storm costs one sync, not one
    // per service. Either way nothing is renamed before its data is durable.
    const bool one = staged.size() == 1;
    const auto dropTemps = [&] {
        for (const auto& st : staged)
            if (!st.tmp.empty()) ::unlink(st.tmp.c_str());
    };
    for (auto& st : staged) {
        auto tmp = writeTemp(recordPath(st.service), st.text, one);
        if (!tmp) {
            dropTemps();
            return Result<bool>(tmp.errors());
        }
        st.tmp = std::move(tmp).value();
    }
    if (staged.size() > 1) {
        UniqueFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir.valid() || ::syncfs(dir.get()) != 0) {
            const int e = errno;
            dropTemps();
            return Result<bool>::failure(fmt::format("cannot sync {}: {}", dir_, errnoText(e)));
        }
    }
    for (auto& st : staged) {
        if (::rename(st.tmp.c_str(), recordPath(st.service).c_str()) != 0) {
            const int e = errno;
            dropTemps();
            return Result<bool>::failure(fmt::format("cannot save {}: {}", recordPath(st.service), errnoText(e)));
        }
        st.tmp.clear();
        onDisk_[st.service] = std::move(st.canonical);
    }
    for (const auto& name : gone) {
        if (::unlink(recordPath(name).c_str()) != 0 && errno != ENOENT)
            return Result<bool>::failure(fmt::format("cannot remove {}: {}", recordPath(name), errnoText(errno)));
        onDisk_.erase(name);
    }
    if (!staged.empty() || !gone.empty())
        if (auto ok = syncDirectory(dir_); !ok) return ok;
    if (!legacyPending_.empty()) {
        // Every record of the first-format file is written: keep it beside, then the manifest takes its place.
        const std::string kept = path_ + ".v1";
        if (::rename(legacyPending_.c_str(), kept.c_str()) != 0)
            return Result<bool>::failure(fmt::format("cannot move {} to {}: {}", path_, kept, errnoText(errno)));
        legacyPending_.clear();
        if (auto ok = ensureLayout(); !ok) return ok;
    }
    return true;
}

Result<bool> FileStateStore::forget(const std::vector<std::string>& services) {
    bool removed = false;
    for (const std::string& name : services) {
        if (::unlink(recordPath(name).c_str()) == 0) removed = true;
        onDisk_.erase(name);
    }
    if (removed) return syncDirectory(dir_);
    return true;
}

} // namespace switchyard::control
