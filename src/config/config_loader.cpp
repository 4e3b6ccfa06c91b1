#include "switchyard/config/config_loader.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <utility>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "switchyard/config/proxy_loop.h"

// yaml-cpp may throw; it stays inside this file (ARCHITECTURE.md): everything
// below catches YAML::Exception and turns it into located errors.

namespace switchyard::config {

namespace {

constexpr std::size_t kMaxFileBytes = 16u << 20;
constexpr std::size_t kMaxUnixPath = sizeof(sockaddr_un::sun_path) - 1;

std::size_t editDistance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

// The closest candidate within two edits, for "did you mean" hints.
std::optional<std::string_view> closest(std::string_view word,
                                        const std::vector<std::string_view>& candidates) {
    std::optional<std::string_view> best;
    std::size_t bestDistance = 3;
    for (auto c : candidates) {
        std::size_t d = editDistance(word, c);
        if (d < bestDistance && d < word.size()) {
            best = c;
            bestDistance = d;
        }
    }
    return best;
}

std::string quoted(std::string_view text) {
    constexpr std::size_t kMaxShown = 60;
    std::string out = "'";
    if (text.size() > kMaxShown) {
        out += text.substr(0, kMaxShown);
        out += "...";
    } else {
        out += text;
    }
    out += "'";
    return out;
}

// What a node is, for "expected X, got Y".
std::string describe(const YAML::Node& node) {
    if (!node.IsDefined() || node.IsNull()) return "an empty value";
    if (node.IsSequence()) return "a list";
    if (node.IsMap()) return "a map";
    return quoted(node.Scalar());
}

std::string alternatives(const std::vector<std::string_view>& words) {
    std::string out;
    for (std::size_t i = 0; i < words.size(); ++i) {
        if (i > 0) out += (i + 1 == words.size()) ? " or " : ", ";
        out += words[i];
    }
    return out;
}

bool isNullMark(const YAML::Mark& m) { return m.line < 0 || m.column < 0; }

enum class IntParse { Ok, NotInteger, Overflow };

IntParse parseInteger(std::string_view text, int64_t& out) {
    bool negative = false;
    std::size_t i = 0;
    if (!text.empty() && text[0] == '-') {
        negative = true;
        i = 1;
    }
    if (i == text.size()) return IntParse::NotInteger;
    uint64_t value = 0;
    bool overflow = false;
    for (; i < text.size(); ++i) {
        char c = text[i];
        if (c < '0' || c > '9') return IntParse::NotInteger;
        if (value > (std::numeric_limits<uint64_t>::max() - 9) / 10) overflow = true;
        if (!overflow) value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    if (overflow || value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return IntParse::Overflow;
    }
    out = negative ? -static_cast<int64_t>(value) : static_cast<int64_t>(value);
    return IntParse::Ok;
}

// A value found in a map, with where it is and what it is called.
struct Val {
    YAML::Node node;
    YAML::Mark mark;
    std::string path;
    bool present = false;

    explicit operator bool() const { return present; }
    bool isNull() const { return !node.IsDefined() || node.IsNull(); }
};

// Entry `index` of the sequence `list`; one without a mark of its own points at the list.
Val itemOf(const Val& list, const YAML::Node& node, std::size_t index) {
    Val item;
    item.node = node;
    item.mark = isNullMark(node.Mark()) ? list.mark : node.Mark();
    item.path = list.path + "[" + std::to_string(index) + "]";
    item.present = true;
    return item;
}

struct Listener {
    Endpoint endpoint;
    std::string path;
    YAML::Mark mark;
};

struct Located {
    int line;
    int column;
    std::string text;
};

class Loader;

// A YAML map checked against the keys it may hold. Unknown and duplicate keys are
// reported when it is opened; a null node reads as an empty map (all defaults).
class MapView {
public:
    MapView(Loader& loader, const Val& at, std::vector<std::string_view> known,
            std::string_view unknownHint = {});

    bool valid() const { return valid_; }
    // False when an unknown or duplicate key was reported: checks of the map as a
    // whole would only repeat that error in other words.
    bool clean() const { return clean_; }
    const YAML::Mark& mark() const { return mark_; }
    const std::string& path() const { return path_; }
    Val get(std::string_view key) const;
    std::string childPath(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    }

private:
    struct Entry {
        std::string key;
        YAML::Mark keyMark;
        YAML::Node value;
    };
    std::vector<Entry> entries_;
    std::string path_;
    YAML::Mark mark_;
    bool valid_ = false;
    bool clean_ = true;
};

class Loader {
public:
    explicit Loader(std::string source) : source_(std::move(source)) {}

    void report(const YAML::Mark& mark, const std::string& path, const std::string& message) {
        int line = isNullMark(mark) ? 1 : mark.line + 1;
        int column = isNullMark(mark) ? 1 : mark.column + 1;
        std::string text = source_ + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
        if (!path.empty()) text += path + ": ";
        text += message;
        errors_.push_back({line, column, std::move(text)});
    }

    bool failed() const { return !errors_.empty(); }

    // In file order, so the first line an operator reads is the first problem in the file.
    std::vector<Error> takeErrors() {
        std::stable_sort(errors_.begin(), errors_.end(), [](const Located& a, const Located& b) {
            return std::pair(a.line, a.column) < std::pair(b.line, b.column);
        });
        std::vector<Error> out;
        out.reserve(errors_.size());
        for (auto& e : errors_) out.push_back(Error{std::move(e.text)});
        return out;
    }

    Config load(const YAML::Node& root);

private:
    // --- scalars ---------------------------------------------------------------------------
    bool scalar(const Val& v, const char* expected, std::string& out) {
        if (!v.node.IsScalar()) {
            report(v.mark, v.path, std::string("expected ") + expected + ", got " + describe(v.node));
            return false;
        }
        out = v.node.Scalar();
        return true;
    }

    template <typename T>
    bool integer(const Val& v, int64_t lo, int64_t hi, T& out) {
        std::string text;
        if (!scalar(v, "an integer", text)) return false;
        int64_t value = 0;
        switch (parseInteger(text, value)) {
        case IntParse::NotInteger:
            report(v.mark, v.path, "expected an integer, got " + quoted(text));
            return false;
        case IntParse::Overflow:
            report(v.mark, v.path, quoted(text) + " is out of range " + std::to_string(lo) + ".." +
                                       std::to_string(hi));
            return false;
        case IntParse::Ok:
            break;
        }
        if (value < lo || value > hi) {
            report(v.mark, v.path, std::to_string(value) + " is out of range " + std::to_string(lo) +
                                       ".." + std::to_string(hi));
            return false;
        }
        out = static_cast<T>(value);
        return true;
    }

    bool boolean(const Val& v, bool& out) {
        std::string text;
        if (!scalar(v, "true or false", text)) return false;
        if (text == "true" || text == "True" || text == "TRUE") {
            out = true;
            return true;
        }
        if (text == "false" || text == "False" || text == "FALSE") {
            out = false;
            return true;
        }
        report(v.mark, v.path, "expected true or false, got " + quoted(text));
        return false;
    }

    // A duration within [low, high]; `bounds` names them for the message ("2s and 60s").
    void durationBetween(const Val& v, Duration low, Duration high, std::string_view bounds, Duration& out) {
        Duration d{};
        if (!duration(v, d)) return;
        if (d < low || d > high)
            report(v.mark, v.path, "must be between " + std::string(bounds) + ", got " + quoted(v.node.Scalar()));
        else
            out = d;
    }

    bool duration(const Val& v, Duration& out) {
        std::string text;
        if (!scalar(v, "a duration", text)) return false;
        if (auto d = parseDuration(text)) {
            if (*d > kMaxDuration) {
                report(v.mark, v.path, quoted(text) + " is longer than the limit of " + maxDurationText());
                return false;
            }
            out = *d;
            return true;
        }
        int64_t plain = 0;
        if (!text.empty() && text[0] == '-') {
            report(v.mark, v.path, "durations cannot be negative, got " + quoted(text));
        } else if (parseInteger(text, plain) == IntParse::Ok) {
            report(v.mark, v.path, quoted(text) + " has no unit; write " + text + "s or " + text +
                                       "ms (units: ms, s, m, h)");
        } else {
            report(v.mark, v.path,
                   "expected a duration like 250ms, 2s, 5m or 1h, got " + quoted(text));
        }
        return false;
    }

    bool positiveDuration(const Val& v, Duration& out) {
        Duration d{};
        if (!duration(v, d)) return false;
        if (d.count() <= 0) {
            report(v.mark, v.path, "must be greater than 0, got " + quoted(v.node.Scalar()));
            return false;
        }
        out = d;
        return true;
    }

    template <typename E>
    bool word(const Val& v, std::initializer_list<std::pair<std::string_view, E>> table, E& out) {
        std::vector<std::string_view> words;
        for (const auto& [w, e] : table) words.push_back(w);
        std::string text;
        if (!scalar(v, ("one of " + alternatives(words)).c_str(), text)) return false;
        for (const auto& [w, e] : table) {
            if (text == w) {
                out = e;
                return true;
            }
        }
        std::string message = "expected " + alternatives(words) + ", got " + quoted(text);
        if (auto hint = closest(text, words)) message += " (did you mean '" + std::string(*hint) + "'?)";
        report(v.mark, v.path, message);
        return false;
    }

    bool endpoint(const Val& v, Endpoint& out) {
        if (v.node.IsSequence()) {
            // `listen: [::1]:80` parses as a YAML list; the fix is quoting.
            report(v.mark, v.path,
                   "expected an address like 127.0.0.1:8080, got a list (quote IPv6 addresses: "
                   "\"[::1]:8080\")");
            return false;
        }
        std::string text;
        if (!scalar(v, "an address like 127.0.0.1:8080", text)) return false;
        std::string why;
        auto ep = parseEndpoint(text, &why);
        if (!ep) {
            report(v.mark, v.path, why);
            return false;
        }
        out = *ep;
        return true;
    }

    // "" (or null) and, where allowed, `none` mean "no file".
    bool absolutePath(const Val& v, bool allowNone, std::string& out) {
        if (v.isNull()) {
            out.clear();
            return true;
        }
        std::string text;
        if (!scalar(v, "a path", text)) return false;
        if (text.empty() || (allowNone && text == "none")) {
            out.clear();
            return true;
        }
        if (text[0] != '/') {
            report(v.mark, v.path,
                   std::string("must be an absolute path") + (allowNone ? ", \"\" or none" : "") +
                       ", got " + quoted(text));
            return false;
        }
        out = text;
        return true;
    }

    void listener(const Endpoint& ep, const Val& v) {
        for (const auto& other : listeners_) {
            if (other.endpoint.port != ep.port || other.endpoint.ipv6 != ep.ipv6) continue;
            std::string where = other.path + ", line " + std::to_string(other.mark.line + 1);
            if (other.endpoint == ep) {
                report(v.mark, v.path, "address " + ep.toString() + " is already used by " + where);
                return;
            }
            bool wildcard = ep.host == "0.0.0.0" || ep.host == "::" || other.endpoint.host == "0.0.0.0" ||
                            other.endpoint.host == "::";
            if (wildcard) {
                report(v.mark, v.path,
                       "address " + ep.toString() + " overlaps " + other.endpoint.toString() + " (" +
                           where + ")");
                return;
            }
        }
        listeners_.push_back({ep, v.path, v.mark});
    }

    // --- sections --------------------------------------------------------------------------
    void loadAdmin(const Val& v, AdminConfig& out);
    void loadAccessList(const Val& v, AdminAccessList& out);
    bool principal(const Val& v, bool group, uint32_t& out);
    void loadMetrics(const Val& v, MetricsConfig& out);
    void loadLog(const Val& v, LogConfig& out);
    void loadFleet(const Val& v, FleetConfig& out);
    bool etcdEndpoint(const Val& v, EtcdEndpoint& out);
    void loadUpgrade(const Val& v, UpgradeConfig& out);
    void loadService(const Val& v, ServiceConfig& out);
    void loadSplit(const Val& v, Split& out);
    void loadTimeouts(const Val& v, Timeouts& out);
    void loadHealth(const Val& v, HealthConfig& out);
    void loadFallback(const Val& v, FallbackConfig& out);
    void loadOutlierDetection(const Val& v, OutlierDetectionConfig& out);
    void loadPools(const Val& v, ServiceConfig& out);

    std::string source_;
    std::vector<Located> errors_;
    std::vector<Listener> listeners_;
    std::vector<std::pair<std::string, Val>> serviceNames_;
    // Checked against every service's listener once all are known.
    std::vector<std::pair<Endpoint, Val>> backendAddresses_;
};

MapView::MapView(Loader& loader, const Val& at, std::vector<std::string_view> known,
                 std::string_view unknownHint)
    : path_(at.path), mark_(at.mark) {
    if (at.isNull()) {
        valid_ = true;
        return;
    }
    if (!at.node.IsMap()) {
        loader.report(at.mark, at.path, "expected a map, got " + describe(at.node));
        return;
    }
    valid_ = true;
    for (auto it = at.node.begin(); it != at.node.end(); ++it) {
        // A copy: it->first lives in the proxy operator-> returns, which dies with
        // this statement (ASan: stack-use-after-scope).
        const YAML::Node key = it->first;
        if (!key.IsScalar()) {
            loader.report(key.Mark(), path_, "keys must be plain words, got " + describe(key));
            clean_ = false;
            continue;
        }
        std::string name = key.Scalar();
        auto seen = std::find_if(entries_.begin(), entries_.end(),
                                 [&](const Entry& e) { return e.key == name; });
        if (seen != entries_.end()) {
            loader.report(key.Mark(), childPath(name),
                          "duplicate key '" + name + "' (first at line " +
                              std::to_string(seen->keyMark.line + 1) + ")");
            clean_ = false;
            continue;
        }
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            std::string message = "unknown key '" + name + "'";
            if (auto hint = closest(name, known)) {
                message += "; did you mean '" + std::string(*hint) + "'?";
            } else if (!unknownHint.empty()) {
                message += " (" + std::string(unknownHint) + ")";
            }
            loader.report(key.Mark(), childPath(name), message);
            clean_ = false;
            continue;
        }
        entries_.push_back({std::move(name), key.Mark(), it->second});
    }
}

Val MapView::get(std::string_view key) const {
    for (const auto& e : entries_) {
        if (e.key != key) continue;
        Val v;
        v.node = e.value;
        // A key with no value has no useful mark of its own; point at the key.
        YAML::Mark m = v.isNull() ? e.keyMark : e.value.Mark();
        v.mark = isNullMark(m) ? e.keyMark : m;
        v.path = childPath(key);
        v.present = true;
        return v;
    }
    Val missing;
    missing.mark = mark_;
    missing.path = childPath(key);
    return missing;
}

Config Loader::load(const YAML::Node& root) {
    Config cfg;
    Val rootVal;
    rootVal.node = root;
    rootVal.mark = root.Mark();
    rootVal.present = true;
    MapView top(*this, rootVal,
                 {"admin", "metrics", "state_file", "workers", "engine", "splice", "shutdown_grace", "upgrade",
                  "log", "fleet", "services"});
    if (!top.valid()) return cfg;

    // Services first so their listeners are what admin/metrics conflicts are reported against.
    if (auto v = top.get("services"); v && !v.isNull()) {
        if (!v.node.IsSequence()) {
            report(v.mark, v.path, "expected a list of services, got " + describe(v.node));
        } else {
            std::size_t i = 0;
            for (const auto& it : v.node) {
                const YAML::Node& item = it;
                const Val s = itemOf(v, item, i++);
                ServiceConfig svc;
                loadService(s, svc);
                cfg.services.push_back(std::move(svc));
            }
        }
    }
    for (const auto& [address, at] : backendAddresses_)
        if (auto loop = proxyLoopReason(address, cfg.services)) report(at.mark, at.path, *loop);

    loadAdmin(top.get("admin"), cfg.admin);
    loadMetrics(top.get("metrics"), cfg.metrics);
    if (auto v = top.get("state_file")) absolutePath(v, true, cfg.stateFile);
    if (auto v = top.get("workers")) {
        if (v.node.IsScalar() && v.node.Scalar() == "auto") {
            cfg.workers = 0;
        } else if (int64_t n = 0; !v.node.IsScalar() || parseInteger(v.node.Scalar(), n) == IntParse::NotInteger) {
            report(v.mark, v.path, "expected auto or an integer 1..256, got " + describe(v.node));
        } else {
            integer(v, 1, 256, cfg.workers);
        }
    }
    if (auto v = top.get("engine")) {
        word(v, {{"auto", Engine::Auto}, {"io_uring", Engine::IoUring}, {"epoll", Engine::Epoll}},
             cfg.engine);
    }
    if (auto v = top.get("splice")) word(v, {{"auto", true}, {"off", false}}, cfg.splice);
    if (auto v = top.get("shutdown_grace")) duration(v, cfg.shutdownGrace);
    loadUpgrade(top.get("upgrade"), cfg.upgrade);
    loadLog(top.get("log"), cfg.log);
    if (auto f = top.get("fleet"); f && !f.isNull()) loadFleet(f, cfg.fleet);
    return cfg;
}

void Loader::loadAdmin(const Val& v, AdminConfig& out) {
    MapView m(*this, v, {"socket", "socket_mode", "tcp", "token_file", "allow", "read_only"});
    if (!m.valid()) return;
    if (auto s = m.get("socket")) {
        if (absolutePath(s, false, out.socket) && out.socket.size() > kMaxUnixPath) {
            report(s.mark, s.path,
                   "unix socket paths are limited to " + std::to_string(kMaxUnixPath) +
                       " bytes, this one has " + std::to_string(out.socket.size()));
        }
    }
    if (auto s = m.get("socket_mode")) {
        std::string text;
        if (scalar(s, "an octal mode like \"0660\"", text)) {
            bool octal = !text.empty() && text.size() <= 4 &&
                         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; });
            uint32_t mode = 0;
            for (char c : text) mode = mode * 8 + static_cast<uint32_t>(c - '0');
            if (!octal || mode > 0777) {
                report(s.mark, s.path, "expected an octal mode like \"0660\", got " + quoted(text));
            } else if (mode & 0002) {
                report(s.mark, s.path,
                       quoted(text) + " lets every local user send admin commands (world-writable); "
                                      "use 0660 and the socket's group");
            } else {
                out.socketMode = mode;
            }
        }
    }
    Val tcp = m.get("tcp");
    if (tcp && !tcp.isNull()) {
        Endpoint ep;
        if (endpoint(tcp, ep)) {
            out.tcp = ep;
            listener(ep, tcp);
        }
    }
    if (auto a = m.get("allow")) loadAccessList(a, out.allow);
    if (auto r = m.get("read_only")) loadAccessList(r, out.readOnly);
    Val token = m.get("token_file");
    if (token) absolutePath(token, false, out.tokenFile);
    if (out.tcp && out.tokenFile.empty() && !(token && !token.isNull() && token.node.IsScalar() &&
                                              !token.node.Scalar().empty())) {
        report(tcp.mark, tcp.path, "the admin TCP listener needs admin.token_file");
    }
}

// A user or group: a number, or a name looked up now (a name that does not
// exist is an error, not a silent "nobody").
bool Loader::principal(const Val& v, bool group, uint32_t& out) {
    std::string text;
    if (!scalar(v, group ? "a group name or gid" : "a user name or uid", text)) return false;
    int64_t n = 0;
    if (parseInteger(text, n) == IntParse::Ok) return integer(v, 0, 4294967294LL, out);
    if (text.empty()) {
        report(v.mark, v.path, std::string("expected ") + (group ? "a group name or gid" : "a user name or uid"));
        return false;
    }
    std::vector<char> buf(16384);
    if (group) {
        ::group g{};
        ::group* found = nullptr;
        ::getgrnam_r(text.c_str(), &g, buf.data(), buf.size(), &found);
        if (!found) {
            report(v.mark, v.path, "no group named " + quoted(text) + " on this host");
            return false;
        }
        out = found->gr_gid;
    } else {
        ::passwd pw{};
        ::passwd* found = nullptr;
        ::getpwnam_r(text.c_str(), &pw, buf.data(), buf.size(), &found);
        if (!found) {
            report(v.mark, v.path, "no user named " + quoted(text) + " on this host");
            return false;
        }
        out = found->pw_uid;
    }
    return true;
}

void Loader::loadAccessList(const Val& v, AdminAccessList& out) {
    MapView m(*this, v, {"uids", "gids"});
    if (!m.valid()) return;
    out.configured = true;
    for (const bool group : {false, true}) {
        Val list = m.get(group ? "gids" : "uids");
        if (!list || list.isNull()) continue;
        if (!list.node.IsSequence()) {
            report(list.mark, list.path, "expected a list, got " + describe(list.node));
            continue;
        }
        std::size_t i = 0;
        for (const auto& it : list.node) {
            const YAML::Node& node = it;
            const Val item = itemOf(list, node, i++);
            uint32_t id = 0;
            if (principal(item, group, id)) (group ? out.gids : out.uids).push_back(id);
        }
    }
}

void Loader::loadMetrics(const Val& v, MetricsConfig& out) {
    MapView m(*this, v, {"listen"});
    if (!m.valid()) return;
    if (auto l = m.get("listen"); l && !l.isNull()) {
        Endpoint ep;
        if (endpoint(l, ep)) {
            out.listen = ep;
            listener(ep, l);
        }
    }
}

void Loader::loadUpgrade(const Val& v, UpgradeConfig& out) {
    MapView m(*this, v, {"drain_timeout", "close_spread"});
    if (!m.valid()) return;
    if (auto d = m.get("drain_timeout")) duration(d, out.drainTimeout);
    if (auto d = m.get("close_spread")) duration(d, out.closeSpread);
}

void Loader::loadLog(const Val& v, LogConfig& out) {
    MapView m(*this, v, {"level", "access_log", "access_log_path", "access_log_format"});
    if (!m.valid()) return;
    if (auto l = m.get("level")) {
        word(l,
             {{"trace", LogLevel::Trace},
              {"debug", LogLevel::Debug},
              {"info", LogLevel::Info},
              {"warn", LogLevel::Warn},
              {"error", LogLevel::Error},
              {"critical", LogLevel::Critical},
              {"off", LogLevel::Off}},
             out.level);
    }
    if (auto a = m.get("access_log")) boolean(a, out.accessLog);
    if (auto p = m.get("access_log_path")) absolutePath(p, true, out.accessLogPath);
    if (auto f = m.get("access_log_format"))
        word(f, {{"text", AccessLogFormat::Text}, {"json", AccessLogFormat::Json}}, out.accessLogFormat);
}

// http://host:port[/] or https://host:port[/]: the etcd v3 JSON gateway.
bool Loader::etcdEndpoint(const Val& v, EtcdEndpoint& out) {
    std::string text;
    if (!scalar(v, "an etcd URL like http://10.0.0.5:2379", text)) return false;
    out.tls = text.starts_with("https://");
    const std::string_view scheme = out.tls ? "https://" : "http://";
    if (!text.starts_with(scheme)) {
        report(v.mark, v.path, "expected an etcd URL like http://10.0.0.5:2379 or https://10.0.0.5:2379, got " +
                                   quoted(text));
        return false;
    }
    std::string rest = text.substr(scheme.size());
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    std::string host = rest;
    std::string port = "2379";
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string::npos || (close + 1 < rest.size() && rest[close + 1] != ':')) {
            report(v.mark, v.path, quoted(text) + ": an IPv6 address needs its closing ']' before the port");
            return false;
        }
        host = rest.substr(1, close - 1);
        if (close + 1 < rest.size()) port = rest.substr(close + 2);
    } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    const bool hostOk = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':';
    });
    int64_t portNumber = 0;
    if (!hostOk || parseInteger(port, portNumber) != IntParse::Ok || portNumber < 1 || portNumber > 65535) {
        report(v.mark, v.path, "expected an etcd URL like http://10.0.0.5:2379 (no path), got " + quoted(text));
        return false;
    }
    out.host = host;
    out.port = static_cast<uint16_t>(portNumber);
    return true;
}

void Loader::loadFleet(const Val& v, FleetConfig& out) {
    MapView m(*this, v, {"etcd", "prefix", "instance", "lease_ttl", "dial_timeout", "user", "password_file", "ca_file",
                         "cert_file", "key_file"});
    if (!m.valid()) return;
    for (auto required : {"etcd", "prefix"})
        if (!m.get(required)) report(m.mark(), m.path(), std::string("missing required key '") + required + "'");
    if (auto e = m.get("etcd")) {
        if (!e.node.IsSequence() || e.node.size() == 0) {
            report(e.mark, e.path, "expected a list of etcd URLs like [http://10.0.0.5:2379], got " + describe(e.node));
        } else {
            std::size_t i = 0;
            for (const auto& it : e.node) {
                const YAML::Node& node = it;
                const Val item = itemOf(e, node, i++);
                EtcdEndpoint ep;
                if (etcdEndpoint(item, ep)) out.etcd.push_back(ep);
            }
        }
    }
    if (auto p = m.get("prefix")) {
        std::string prefix;
        if (scalar(p, "a key prefix like /switchyard/web-tier/", prefix)) {
            const bool printable = std::all_of(prefix.begin(), prefix.end(),
                                               [](char c) { return c > ' ' && c < 127; });
            if (prefix.size() < 2 || prefix.size() > 200 || !printable || prefix.back() != '/')
                report(p.mark, p.path,
                       "expected a key prefix like /switchyard/web-tier/ (2 to 200 printable characters, no "
                       "spaces, ending in '/'), got " + quoted(prefix));
            else
                out.prefix = prefix;
        }
    }
    if (auto n = m.get("instance")) {
        std::string name;
        if (scalar(n, "a name", name)) {
            const bool okChars = std::all_of(name.begin(), name.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
            });
            if (name.empty() || name.size() > 64 || !okChars)
                report(n.mark, n.path, quoted(name) + " is not a valid instance name (1 to 64 of A-Z a-z 0-9 _ . -)");
            else
                out.instance = name;
        }
    }
    if (out.instance.empty()) {
        char host[256] = {};
        if (::gethostname(host, sizeof host - 1) == 0) out.instance = host;
        if (out.instance.empty()) out.instance = "switchyard";
    }
    // etcd grants at least 2 s; a TTL over a minute would keep a dead member "live" too long.
    if (auto t = m.get("lease_ttl"))
        durationBetween(t, std::chrono::seconds(2), std::chrono::seconds(60), "2s and 60s", out.leaseTtl);
    Val user = m.get("user");
    if (user) {
        std::string name;
        if (scalar(user, "an etcd user name", name)) {
            const bool printable = std::all_of(name.begin(), name.end(), [](char c) { return c > ' ' && c < 127; });
            if (name.empty() || name.size() > 128 || !printable)
                report(user.mark, user.path, "expected an etcd user name (1 to 128 printable characters, no spaces)");
            else
                out.user = name;
        }
    }
    Val password = m.get("password_file");
    if (password) absolutePath(password, false, out.passwordFile);
    if (user && !password) report(user.mark, user.path, "fleet.user needs fleet.password_file");
    if (password && !user) report(password.mark, password.path, "fleet.password_file needs fleet.user");
    if (auto t = m.get("dial_timeout"))
        durationBetween(t, std::chrono::milliseconds(100), std::chrono::seconds(30), "100ms and 30s", out.dialTimeout);
    // TLS files: their content is checked when the daemon starts (and by --check).
    Val ca = m.get("ca_file"), cert = m.get("cert_file"), key = m.get("key_file");
    if (ca) absolutePath(ca, false, out.caFile);
    if (cert) absolutePath(cert, false, out.certFile);
    if (key) absolutePath(key, false, out.keyFile);
    if (cert && !key) report(cert.mark, cert.path, "fleet.cert_file needs fleet.key_file");
    if (key && !cert) report(key.mark, key.path, "fleet.key_file needs fleet.cert_file");
    for (const Val* file : {&ca, &cert, &key})
        if (*file && !out.etcd.empty() && !out.tls())
            report(file->mark, file->path, "TLS files are used only with https:// etcd endpoints");
}

void Loader::loadService(const Val& v, ServiceConfig& out) {
    if (v.isNull()) {
        report(v.mark, v.path, "expected a service (a map with name, listen and pools), got an empty value");
        return;
    }
    MapView m(*this, v,
              {"name", "listen", "balance", "affinity", "split", "drain_timeout", "drain_spread",
               "timeouts", "retries", "max_connections", "proxy_protocol", "accept_proxy",
               "accept_proxy_timeout", "slow_start", "health", "fallback",
               "outlier_detection", "pools"});
    if (!m.valid()) return;

    for (auto required : {"name", "listen", "pools"}) {
        if (!m.get(required)) report(m.mark(), m.path(), std::string("missing required key '") + required + "'");
    }

    if (auto n = m.get("name")) {
        std::string name;
        if (scalar(n, "a name", name)) {
            bool okChars = std::all_of(name.begin(), name.end(), [](char c) {
                return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '.' || c == '-';
            });
            if (name.empty() || name.size() > 64 || !okChars) {
                report(n.mark, n.path,
                       quoted(name) + " is not a valid name (1 to 64 of A-Z a-z 0-9 _ . -)");
            } else {
                auto dup = std::find_if(serviceNames_.begin(), serviceNames_.end(),
                                        [&](const auto& p) { return p.first == name; });
                if (dup != serviceNames_.end()) {
                    report(n.mark, n.path,
                           "service name '" + name + "' is already used by " + dup->second.path +
                               ", line " + std::to_string(dup->second.mark.line + 1));
                } else {
                    serviceNames_.emplace_back(name, n);
                }
                out.name = name;
            }
        }
    }
    if (auto l = m.get("listen")) {
        if (endpoint(l, out.listen)) listener(out.listen, l);
    }
    if (auto b = m.get("balance")) {
        word(b, {{"roundrobin", Balance::RoundRobin}, {"leastconn", Balance::LeastConn}, {"hash", Balance::Hash}},
             out.balance);
    }
    if (auto a = m.get("affinity")) word(a, {{"none", Affinity::None}, {"client", Affinity::Client}}, out.affinity);
    if (auto s = m.get("split")) loadSplit(s, out.split);

    Val drainTimeout = m.get("drain_timeout");
    Val drainSpread = m.get("drain_spread");
    bool timeoutOk = true;
    if (drainTimeout) timeoutOk = duration(drainTimeout, out.drainTimeout);
    if (drainSpread) {
        if (duration(drainSpread, out.drainSpread) && timeoutOk && out.drainSpread > out.drainTimeout) {
            report(drainSpread.mark, drainSpread.path,
                   formatDuration(out.drainSpread) + " is longer than drain_timeout " +
                       formatDuration(out.drainTimeout));
        }
    } else {
        out.drainSpread = out.drainTimeout / 10;
    }

    if (auto t = m.get("timeouts")) loadTimeouts(t, out.timeouts);
    if (auto r = m.get("retries")) integer(r, 0, 20, out.retries);
    if (auto c = m.get("max_connections")) integer(c, 1, 1'000'000, out.maxConnections);
    if (auto p = m.get("proxy_protocol")) {
        word(p, {{"none", ProxyProtocol::None}, {"v1", ProxyProtocol::V1}, {"v2", ProxyProtocol::V2}},
             out.proxyProtocol);
    }
    if (auto a = m.get("accept_proxy")) boolean(a, out.acceptProxy);
    if (auto t = m.get("accept_proxy_timeout")) positiveDuration(t, out.acceptProxyTimeout);
    if (auto s = m.get("slow_start")) duration(s, out.slowStart);
    loadHealth(m.get("health"), out.health);
    loadFallback(m.get("fallback"), out.fallback);
    loadOutlierDetection(m.get("outlier_detection"), out.outlierDetection);
    if (auto p = m.get("pools")) loadPools(p, out);
}

void Loader::loadSplit(const Val& v, Split& out) {
    MapView m(*this, v, {"blue", "green"});
    if (!m.valid()) return;
    // A colour left out of a given split has weight 0: `split: {green: 100}` means all green.
    Split split{0, 0};
    bool ok = true;
    if (auto b = m.get("blue")) ok = integer(b, 0, kMaxWeight, split.blue) && ok;
    if (auto g = m.get("green")) ok = integer(g, 0, kMaxWeight, split.green) && ok;
    if (!ok || !m.clean()) return;
    if (split.blue == 0 && split.green == 0) {
        report(v.mark, v.path, "split gives no routable weight (blue and green are both 0)");
        return;
    }
    out = split;
}

void Loader::loadTimeouts(const Val& v, Timeouts& out) {
    MapView m(*this, v, {"connect", "idle", "half_closed"});
    if (!m.valid()) return;
    if (auto c = m.get("connect")) positiveDuration(c, out.connect);
    if (auto i = m.get("idle")) positiveDuration(i, out.idle);
    if (auto h = m.get("half_closed")) positiveDuration(h, out.halfClosed);
}

void Loader::loadHealth(const Val& v, HealthConfig& out) {
    if (!v) return;
    MapView m(*this, v, {"type", "interval", "timeout", "rise", "fall", "http", "send_expect"});
    if (!m.valid()) return;
    Val type = m.get("type");
    bool typeOk = true;
    if (type) {
        typeOk = word(type, {{"tcp", HealthType::Tcp}, {"send_expect", HealthType::SendExpect}, {"http", HealthType::Http}},
                      out.type);
    }
    Val interval = m.get("interval");
    Val timeout = m.get("timeout");
    bool intervalOk = !interval || positiveDuration(interval, out.interval);
    bool timeoutOk = !timeout || positiveDuration(timeout, out.timeout);
    if (intervalOk && timeoutOk && out.timeout > out.interval) {
        const Val& at = timeout ? timeout : interval;
        report(at.mark, timeout ? timeout.path : m.childPath("timeout"),
               "timeout " + formatDuration(out.timeout) + " is longer than interval " +
                   formatDuration(out.interval));
    }
    if (auto r = m.get("rise")) integer(r, 1, 100, out.rise);
    if (auto f = m.get("fall")) integer(f, 1, 100, out.fall);

    if (auto h = m.get("http")) {
        MapView hm(*this, h, {"path", "expect_status"});
        if (hm.valid()) {
            if (auto p = hm.get("path")) {
                std::string path;
                if (scalar(p, "a path like /healthz", path)) {
                    bool clean = std::none_of(path.begin(), path.end(), [](char c) {
                        return static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
                    });
                    if (path.empty() || path[0] != '/') {
                        report(p.mark, p.path, "must start with '/', got " + quoted(path));
                    } else if (!clean) {
                        report(p.mark, p.path, "must not contain spaces or control characters");
                    } else {
                        out.http.path = path;
                    }
                }
            }
            if (auto s = hm.get("expect_status")) integer(s, 100, 599, out.http.expectStatus);
        }
    }

    Val se = m.get("send_expect");
    if (se && !se.isNull()) {
        MapView sm(*this, se, {"send", "expect"});
        if (sm.valid()) {
            if (auto s = sm.get("send"); s && !s.isNull()) scalar(s, "a string", out.sendExpect.send);
            Val e = sm.get("expect");
            if (!e || e.isNull()) {
                report(e.mark, e.path, "must not be empty");
            } else if (scalar(e, "a string", out.sendExpect.expect) && out.sendExpect.expect.empty()) {
                report(e.mark, e.path, "must not be empty");
            }
        }
    } else if (typeOk && out.type == HealthType::SendExpect) {
        report(type.mark, m.childPath("send_expect"),
               "required when type is send_expect: { send: \"...\", expect: \"...\" }");
    }
}

void Loader::loadFallback(const Val& v, FallbackConfig& out) {
    if (!v) return;
    MapView m(*this, v, {"min_healthy", "restore", "hold"});
    if (!m.valid()) return;
    if (auto mh = m.get("min_healthy")) {
        std::string text;
        if (scalar(mh, "a count or a percentage like \"50%\"", text)) {
            bool percent = !text.empty() && text.back() == '%';
            std::string number = percent ? text.substr(0, text.size() - 1) : text;
            int64_t value = 0;
            auto parsed = parseInteger(number, value);
            int64_t hi = percent ? 100 : 1'000'000;
            if (parsed == IntParse::NotInteger) {
                report(mh.mark, mh.path, "expected a count or a percentage like \"50%\", got " + quoted(text));
            } else if (parsed == IntParse::Overflow || value < 0 || value > hi) {
                report(mh.mark, mh.path, quoted(text) + " is out of range " + (percent ? "0%..100%" : "0..1000000"));
            } else {
                out.minHealthy = MinHealthy{static_cast<uint32_t>(value), percent};
            }
        }
    }
    if (auto r = m.get("restore")) word(r, {{"manual", Restore::Manual}, {"auto", Restore::Auto}}, out.restore);
    if (auto h = m.get("hold")) duration(h, out.hold);
}

void Loader::loadOutlierDetection(const Val& v, OutlierDetectionConfig& out) {
    if (!v) return;
    MapView m(*this, v, {"enabled", "consecutive_failures", "base_ejection", "max_ejection", "max_ejection_percent"});
    if (!m.valid()) return;
    if (auto e = m.get("enabled")) boolean(e, out.enabled);
    if (auto c = m.get("consecutive_failures")) integer(c, 1, 1000, out.consecutiveFailures);
    Val base = m.get("base_ejection");
    Val max = m.get("max_ejection");
    const bool baseOk = !base || positiveDuration(base, out.baseEjection);
    const bool maxOk = !max || positiveDuration(max, out.maxEjection);
    if (baseOk && maxOk && out.maxEjection < out.baseEjection) {
        const Val& at = max ? max : base;
        report(at.mark, max ? max.path : m.childPath("max_ejection"),
               "max_ejection " + formatDuration(out.maxEjection) + " is shorter than base_ejection " +
                   formatDuration(out.baseEjection));
    }
    if (auto p = m.get("max_ejection_percent")) integer(p, 0, 100, out.maxEjectionPercent);
}

void Loader::loadPools(const Val& v, ServiceConfig& out) {
    MapView m(*this, v, {"blue", "green"}, "pools are blue and green");
    if (!m.valid()) return;

    struct Seen {
        Endpoint endpoint;
        std::string path;
        int line;
    };
    std::vector<Seen> seen;

    for (Colour colour : kColours) {
        Val list = m.get(toString(colour));
        if (!list || list.isNull()) continue;   // an absent or empty pool is valid
        if (!list.node.IsSequence()) {
            report(list.mark, list.path, "expected a list of backends, got " + describe(list.node));
            continue;
        }
        std::size_t i = 0;
        for (const auto& it : list.node) {
            const YAML::Node& item = it;
            const Val b = itemOf(list, item, i++);
            if (!item.IsMap()) {
                report(b.mark, b.path,
                       "expected a backend { address: A, weight: W }, got " + describe(item));
                continue;
            }
            MapView bm(*this, b, {"address", "weight", "max_connections"});
            if (!bm.valid()) continue;
            BackendConfig backend;
            bool ok = true;
            Val addr = bm.get("address");
            if (!addr) {
                report(b.mark, b.path, "missing required key 'address'");
                ok = false;
            } else if (endpoint(addr, backend.address)) {
                auto dup = std::find_if(seen.begin(), seen.end(),
                                        [&](const Seen& s) { return s.endpoint == backend.address; });
                if (dup != seen.end()) {
                    report(addr.mark, addr.path,
                           "backend " + backend.address.toString() + " is already listed at " + dup->path +
                               ", line " + std::to_string(dup->line));
                    ok = false;
                } else {
                    seen.push_back({backend.address, addr.path, addr.mark.line + 1});
                    backendAddresses_.push_back({backend.address, addr});
                }
            } else {
                ok = false;
            }
            if (auto w = bm.get("weight")) ok = integer(w, 0, kMaxWeight, backend.weight) && ok;
            if (auto c = bm.get("max_connections")) ok = integer(c, 0, 1'000'000, backend.maxConnections) && ok;
            if (ok) out.pool(colour).push_back(backend);
        }
    }
}

// Where each document of a YAML stream starts, and where its top node is (what
// error messages point at); events are otherwise ignored.
class DocumentStarts : public YAML::EventHandler {
public:
    std::vector<YAML::Mark> starts;
    std::vector<YAML::Mark> nodes;
    void OnDocumentStart(const YAML::Mark& mark) override {
        starts.push_back(mark);
        nodes.push_back(mark);
        depth_ = 0;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override { node(mark); }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        node(mark);
        ++depth_;
    }
    void OnSequenceEnd() override { --depth_; }
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        node(mark);
        ++depth_;
    }
    void OnMapEnd() override { --depth_; }

private:
    void node(const YAML::Mark& mark) {
        if (depth_ == 0 && !nodes.empty()) nodes.back() = mark;
    }
    int depth_ = 0;
};

Result<Config> loadParsed(std::string_view yaml, const std::string& sourceName) {
    Loader loader(sourceName);
    const std::string text(yaml);
    YAML::Node doc;
    try {
        // Not YAML::LoadAll: yaml-cpp 0.7 (Debian 12) loops forever there, allocating
        // until the OOM killer comes, when a document starts with a token no node
        // begins with (a stray ',': jbeder/yaml-cpp#1040, fixed upstream in #1319).
        // Its parser then reports the same empty document at the same place again
        // and again; count documents ourselves and stop at the first that makes no
        // progress. Found by tests/fuzz (fuzz-config timeout).
        std::istringstream in(text);
        YAML::Parser parser(in);
        DocumentStarts documents;
        while (parser.HandleNextDocument(documents)) {
            const auto& s = documents.starts;
            if (s.size() >= 2 && s.back().pos <= s[s.size() - 2].pos) {
                loader.report(s.back(), "", "YAML syntax error: unexpected character");
                return loader.takeErrors();
            }
        }
        if (documents.starts.size() > 1) {
            loader.report(documents.nodes[1], "",
                          "expected one YAML document, found " + std::to_string(documents.starts.size()));
            return loader.takeErrors();
        }
        if (!documents.starts.empty()) doc = YAML::Load(text);
    } catch (const YAML::Exception& e) {
        loader.report(e.mark, "", "YAML syntax error: " + e.msg);
        return loader.takeErrors();
    }
    Config cfg;
    try {
        cfg = loader.load(doc);
    } catch (const YAML::Exception& e) {
        // Not expected: every access above checks the node type first.
        loader.report(e.mark, "", std::string("cannot read configuration: ") + e.what());
    }
    if (loader.failed()) return loader.takeErrors();
    return cfg;
}

} // namespace

Result<Config> loadConfigString(std::string_view yaml, const std::string& sourceName) {
    return loadParsed(yaml, sourceName);
}

Result<Config> loadConfigFile(const std::string& path) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
    // (and freeze the control thread on `reload`); the type check refuses it.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return Result<Config>::failure("cannot read " + path + ": " + std::strerror(errno));
    struct stat st {};
    const char* notReadable = ::fstat(fd, &st) != 0 ? std::strerror(errno)
                              : !S_ISREG(st.st_mode) ? "not a regular file"
                                                     : nullptr;
    if (notReadable) {
        ::close(fd);
        return Result<Config>::failure("cannot read " + path + ": " + notReadable);
    }
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            ::close(fd);
            return Result<Config>::failure("cannot read " + path + ": " + std::strerror(err));
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > kMaxFileBytes) {
            ::close(fd);
            return Result<Config>::failure("cannot read " + path + ": larger than 16 MiB");
        }
    }
    ::close(fd);
    auto result = loadParsed(text, path);
    if (result.ok()) result->sourcePath = path;
    return result;
}

} // namespace switchyard::config
