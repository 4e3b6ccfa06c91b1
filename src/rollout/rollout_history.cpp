#include "switchyard/rollout/rollout_history.h"

namespace switchyard::rollout {

using nlohmann::json;

json historyEntry(const Rollout& r, const std::string& outcome, int64_t endedUnixMs) {
    json steps = json::array();
    for (const StepRecord& s : r.steps) steps.push_back({{"percent", s.percent}, {"verdict", s.verdict}});
    return {{"id", r.id},
            {"to", config::toString(r.plan.to)},
            {"plan", r.plan.steps},
            {"outcome", outcome},
            {"reason", r.reason},
            {"started_unix_ms", r.startedUnixMs},
            {"ended_unix_ms", r.endedUnixMs != 0 ? r.endedUnixMs : endedUnixMs},
            {"step", r.step + 1},
            {"steps_total", r.plan.steps.size()},
            {"percent", r.plan.steps.empty() ? 0 : r.percent()},
            {"steps", steps}};
}

void RolloutHistory::record(Tracked& t, json entry) {
    t.lastRecordedId = entry["id"].get<uint64_t>();
    t.ended.push_front(std::move(entry));
    if (t.ended.size() > kKept) t.ended.pop_back();
}

void RolloutHistory::observe(const std::string& service, const Rollout* current, int64_t nowUnixMs) {
    // Most services of a large config never had a rollout: a publish costs them one lookup at most.
    if (!current && runningServices_ == 0) return;
    auto found = services_.find(service);
    if (!current && found == services_.end()) return;
    Tracked& t = found != services_.end() ? found->second : services_[service];
    if (t.running) --runningServices_;
    // The rollout seen running last time was replaced without being seen to end.
    if (t.running && (!current || current->id != (*t.running)["id"].get<uint64_t>())) {
        json replaced = std::move(*t.running);
        t.running.reset();
        if (t.lastRecordedId != replaced["id"].get<uint64_t>()) {
            replaced["outcome"] = "replaced";
            replaced["reason"] = "replaced by another rollout (a forced start, or a reset or reload) before it ended";
            replaced["ended_unix_ms"] = nowUnixMs;
            record(t, std::move(replaced));
        }
    }
    if (!current) return;
    if (current->active()) {
        t.running = historyEntry(*current, toString(current->phase), nowUnixMs);
        ++runningServices_;
        return;
    }
    t.running.reset();
    if (t.lastRecordedId != current->id) record(t, historyEntry(*current, toString(current->phase), nowUnixMs));
}

json RolloutHistory::entries(const std::string& service) const {
    json out = json::array();
    if (auto it = services_.find(service); it != services_.end())
        for (const json& e : it->second.ended) out.push_back(e);
    return out;
}

} // namespace switchyard::rollout
