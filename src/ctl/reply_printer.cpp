#include "reply_printer.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <vector>

#include <fmt/format.h>
#include "json_field.h"

namespace switchyard::ctl {

namespace {

using nlohmann::json;

std::string text(const json& j) { return scalarText(j, "-"); }

long long number(const json& j, long long fallback = 0) {
    if (j.is_number_integer() || j.is_number_unsigned()) return j.get<long long>();
    if (j.is_number_float()) return static_cast<long long>(j.get<double>());
    return fallback;
}

std::string splitText(const json& split) {
    if (!split.is_object()) return text(split);
    return fmt::format("blue={} green={}", text(field(split, "blue")), text(field(split, "green")));
}

// "100" or "100 (effective 0)" when the overlay changed it.
std::string weightText(const json& obj) {
    const json& w = field(obj, "weight");
    const json& eff = field(obj, "effective_weight");
    if (eff.is_null() || eff == w) return text(w);
    return fmt::format("{} (eff {})", text(w), text(eff));
}

// Columns padded to their widest cell; the last column is free text.
class Table {
public:
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

    std::string render(const std::string& indent) const {
        std::vector<std::size_t> widths;
        for (const auto& row : rows_)
            for (std::size_t i = 0; i + 1 < row.size(); ++i) {
                if (widths.size() <= i) widths.resize(i + 1, 0);
                widths[i] = std::max(widths[i], row[i].size());
            }
        std::string out;
        for (const auto& row : rows_) {
            std::string line = indent;
            for (std::size_t i = 0; i < row.size(); ++i) {
                if (i + 1 < row.size()) line += fmt::format("{:<{}}  ", row[i], widths[i]);
                else line += row[i];
            }
            while (!line.empty() && line.back() == ' ') line.pop_back();
            out += line + '\n';
        }
        return out;
    }

private:
    std::vector<std::vector<std::string>> rows_;
};

std::string drainingText(const json& obj) {
    std::string text = std::to_string(number(field(obj, "draining_connections")));
    const json& deadline = field(obj, "drain_deadline_ms");
    if (!deadline.is_null()) text += " (closes in " + formatMsLeft(number(deadline)) + ")";
    return text;
}

std::string fallbackText(const json& fb) {
    if (fb.is_null()) return "-";
    if (!field(fb, "active").is_boolean()) return fb.dump();
    if (!field(fb, "active").get<bool>()) return "inactive";
    std::string out = "ACTIVE";
    if (const json& since = field(fb, "since"); since.is_number())
        out += " since " + formatSince(number(since), nowUnixMs());
    if (!field(fb, "reason").is_null()) out += ": " + text(field(fb, "reason"));
    return out;
}

// The rollout's shape belongs to rollout-status; here a compact line of its scalar fields.
std::string rolloutText(const json& rollout, const std::string& service) {
    if (rollout.is_null()) return "none";
    if (!rollout.is_object()) return text(rollout);
    if (rollout.contains("state") && rollout.contains("to") && rollout.contains("step")) {
        std::string out = fmt::format("{} to {}, step {}/{} ({}%)", text(field(rollout, "state")),
                                      text(field(rollout, "to")), text(field(rollout, "step")),
                                      text(field(rollout, "steps_total")), text(field(rollout, "percent")));
        if (field(rollout, "reason").is_string()) out += ": " + text(field(rollout, "reason"));
        return out + fmt::format(" (details: switchyardctl rollout-status {})", service);
    }
    std::string out;
    for (auto it = rollout.begin(); it != rollout.end(); ++it) {
        if (it->is_structured()) continue;
        if (!out.empty()) out += ", ";
        out += it.key() + " " + text(*it);
    }
    if (!out.empty()) out += " ";
    return out + fmt::format("(details: switchyardctl rollout-status {})", service);
}

std::string serviceText(const json& svc) {
    std::string name = text(field(svc, "name"));
    std::string out = fmt::format("{}  listen {}  balance {}  affinity {}\n", name, text(field(svc, "listen")),
                                  text(field(svc, "balance")), text(field(svc, "affinity")));
    Table facts;
    facts.add({"split", splitText(field(svc, "split"))});
    facts.add({"effective split", splitText(field(svc, "effective_split"))});
    facts.add({"generation", fmt::format("{}  (revision {})", text(field(svc, "generation")),
                                          text(field(svc, "revision")))});
    facts.add({"connections", fmt::format("{} active", text(field(svc, "active_connections")))});
    facts.add({"fallback", fallbackText(field(svc, "fallback"))});
    facts.add({"rollout", rolloutText(field(svc, "rollout"), name)});
    out += facts.render("  ");

    const json& pools = field(svc, "pools");
    if (!pools.is_object()) return out;
    Table table;
    table.add({"POOL / BACKEND", "WEIGHT", "HEALTH", "STATE", "ACTIVE", "DRAINING", ""});
    for (const char* colour : {"blue", "green"}) {
        const json& pool = field(pools, colour);
        if (pool.is_null()) continue;
        std::string note = field(pool, "draining") == json(true) ? "pool draining" : "";
        table.add({colour, weightText(pool), "", text(field(pool, "state")), text(field(pool, "active")),
                   drainingText(pool), note});
        const json& backends = field(pool, "backends");
        if (!backends.is_array() || backends.empty()) {
            table.add({"  (no backends)", "", "", "", "", "", ""});
            continue;
        }
        for (const json& b : backends) {
            std::string health = text(field(b, "health"));
            std::string bnote;
            if (!field(b, "last_failure").is_null()) bnote = "last failure: " + text(field(b, "last_failure"));
            table.add({"  " + text(field(b, "address")), weightText(b), health, text(field(b, "admin_state")),
                       text(field(b, "active")), drainingText(b), bnote});
        }
    }
    out += "\n" + table.render("  ");
    return out;
}

// Fields a summary line does not cover, one per line.
std::string extraFields(const json& reply, std::initializer_list<const char*> known) {
    std::string out;
    if (!reply.is_object()) return out;
    for (auto it = reply.begin(); it != reply.end(); ++it) {
        if (std::find_if(known.begin(), known.end(), [&](const char* k) { return it.key() == k; }) != known.end())
            continue;
        const json& v = *it;
        if (v.is_string() && v.get<std::string>().find('\n') != std::string::npos) {
            // Multi-line text such as the help list: print it as it is.
            std::string s = v.get<std::string>();
            out += s;
            if (s.back() != '\n') out += '\n';
        } else if (v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return !e.is_structured(); })) {
            out += it.key() + ":" + (v.empty() ? " none\n" : "\n");
            for (const json& e : v) out += "  " + text(e) + "\n";
        } else {
            out += it.key() + ": " + text(v) + "\n";
        }
    }
    return out;
}

} // namespace

long long nowUnixMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string formatAgo(long long ms) {
    if (ms < 1000) return "just now";
    long long s = ms / 1000;   // round down: "1s ago" only once a whole second has passed
    if (s < 60) return fmt::format("{}s ago", s);
    if (s < 3600) return fmt::format("{}m{:02}s ago", s / 60, s % 60);
    if (s < 86400) return fmt::format("{}h{:02}m ago", s / 3600, (s % 3600) / 60);
    return fmt::format("{}d{:02}h ago", s / 86400, (s % 86400) / 3600);
}

std::string formatSince(long long unixMs, long long nowMs) {
    const std::time_t seconds = static_cast<std::time_t>(unixMs / 1000);
    std::tm local {};
    if (::localtime_r(&seconds, &local) == nullptr) return std::to_string(unixMs);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", &local);
    return fmt::format("{} ({})", when, formatAgo(nowMs > unixMs ? nowMs - unixMs : 0));
}

std::string formatMsLeft(long long ms) {
    if (ms < 1000) return "<1s";
    long long s = (ms + 999) / 1000;   // round up: "closes in 1s" until it has
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
    return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::string formatStatus(const json& reply) {
    std::string out = fmt::format("switchyard {}  engine {}\n", text(field(reply, "version")),
                                  text(field(reply, "engine")));
    if (const json& old = field(reply, "draining_generation"); old.is_object())
        out += fmt::format("draining generation: pid {}, {} connection(s) open\n", text(field(old, "pid")),
                           text(field(old, "connections")));
    const json& services = field(reply, "services");
    if (!services.is_array() || services.empty()) return out + "\nno services\n";
    for (const json& svc : services) out += "\n" + serviceText(svc);
    return out;
}

std::string formatExtras(const json& reply) {
    return extraFields(reply, {"ok", "service", "split", "effective_split", "generation", "revision"});
}

std::string formatChange(const json& reply, const std::string& command) {
    const json& service = field(reply, "service");
    std::string extra = formatExtras(reply);
    // A reply that is only content (help) needs no "help: ok" above it, nor a label.
    if (service.is_null() && field(reply, "split").is_null() && field(reply, "generation").is_null() &&
        !extra.empty()) {
        if (reply.size() == 2) {
            for (const auto& item : reply.items()) {
                const json& v = item.value();
                if (item.key() == "ok" || !v.is_array()) continue;
                if (!std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); })) break;
                std::string out;
                for (const json& e : v) out += e.get<std::string>() + "\n";
                return out;
            }
        }
        return extra;
    }
    std::string line;
    line = service.is_null() ? command + ":" : text(service) + ":";
    const json& split = field(reply, "split");
    const json& effective = field(reply, "effective_split");
    if (!split.is_null()) {
        line += " split " + splitText(split);
        if (!effective.is_null() && effective != split) line += ", effective " + splitText(effective);
    } else {
        line += " ok";
    }
    if (!field(reply, "generation").is_null()) line += fmt::format(" (generation {})", text(field(reply, "generation")));
    return line + "\n" + extra;
}

std::string formatRolloutHistory(const json& reply) {
    const std::string service = text(field(reply, "service"));
    const json& rollouts = field(reply, "rollouts");
    if (!rollouts.is_array() || rollouts.empty()) return service + ": no rollouts yet\n";
    std::string out = fmt::format("{}: {} rollout(s), newest first\n", service, rollouts.size());
    const long long now = nowUnixMs();
    for (const json& r : rollouts) {
        std::string plan;
        if (field(r, "plan").is_array())
            for (const json& p : field(r, "plan")) plan += (plan.empty() ? "" : ",") + text(p);
        const json& ended = field(r, "ended_unix_ms");
        const json& started = field(r, "started_unix_ms");
        std::string when = ended.is_number() && number(ended) > 0
                               ? "ended " + formatSince(number(ended), now)
                               : (started.is_number() ? "started " + formatSince(number(started), now) : "");
        out += fmt::format("  rollout {}  {}  to {} steps={}  reached step {}/{} ({}%)  {}\n", text(field(r, "id")),
                           text(field(r, "outcome")), text(field(r, "to")), plan, text(field(r, "step")),
                           text(field(r, "steps_total")), text(field(r, "percent")), when);
        if (field(r, "reason").is_string() && !field(r, "reason").get<std::string>().empty())
            out += "      " + text(field(r, "reason")) + "\n";
    }
    return out;
}

std::string formatError(const json& reply) {
    return fmt::format("{} ({})", text(field(reply, "error")), text(field(reply, "code")));
}

} // namespace switchyard::ctl
