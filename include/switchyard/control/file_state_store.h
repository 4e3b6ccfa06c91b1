#pragma once

// The state store on the local disk: one small JSON file per service that has
// overrides, in the directory `<state_file>.d/`, and at `<state_file>` itself
// a manifest that names the layout. A change rewrites only the record of the
// service it changed (write a temp file, fsync, rename over the old record,
// fsync the directory), so its cost does not grow with the configuration; a
// service without overrides has no record at all. Operators read a service's
// record with `cat` or `jq`. The first format (every service in one file at
// `<state_file>`) is read once, migrated, and kept beside as `<state_file>.v1`.

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include "switchyard/control/state_store.h"

namespace switchyard::control {

class FileStateStore final : public StateStore {
public:
    // Larger state files are refused at start (docs/semantics.md "Bad state file").
    static constexpr std::size_t kMaxFileBytes = 64u << 20;

    explicit FileStateStore(std::string path);

    const std::string& where() const override { return path_; }
    Result<LoadReport> load(MasterState& state) override;
    Result<bool> save(const std::vector<const ServiceEntry*>& services) override;
    Result<bool> forget(const std::vector<std::string>& services) override;

    // The record file of a service (tests, docs).
    std::string recordPath(const std::string& service) const;

    // One service's record file text, checked whole: its header (format,
    // version, service name), its numbers and every field.
    static Result<Overrides> parseRecord(const std::string& text, const std::string& service);

private:
    // Reads the records folder: good records into `found`, damaged ones set aside.
    Result<bool> loadRecords(MasterState& state, LoadReport& report, std::unordered_map<std::string, Overrides>& found);
    Result<bool> ensureLayout();
    // The file text of a service's record.
    std::string recordText(const std::string& service, const Overrides& overrides) const;
    void setAside(const std::string& file, const std::string& why, LoadReport& report) const;

    std::string path_;
    std::string dir_;
    bool layoutReady_ = false;
    // A first-format file read at start, to move aside once its records are written.
    std::string legacyPending_;
    // Each service's record as it is on disk (compact canonical JSON): a save
    // that would write the same bytes again is skipped.
    std::unordered_map<std::string, std::string> onDisk_;
};

} // namespace switchyard::control
