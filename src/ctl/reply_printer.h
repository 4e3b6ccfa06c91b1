#pragma once

// Human-readable rendering of admin replies. Tolerant by design: a field the
// daemon leaves out or adds later prints as "-" or is shown generically, never an error.

#include <string>

#include <nlohmann/json.hpp>

namespace switchyard::ctl {

// The `status` reply as a table per service.
std::string formatStatus(const nlohmann::json& reply);

// Any other successful reply: a one-line summary such as
// "web: split blue=90 green=10 (generation 4)", then any further fields.
// `command` is the command word, used when the reply names no service.
std::string formatChange(const nlohmann::json& reply, const std::string& command);

// The fields of a changing command's reply beyond service, split and
// generation (a reload's overrides, a warning), one per line.
std::string formatExtras(const nlohmann::json& reply);

// The `rollout-history` reply: one block per rollout, newest first.
std::string formatRolloutHistory(const nlohmann::json& reply);

// "<error> (<code>)" of an ok:false reply.
std::string formatError(const nlohmann::json& reply);

// "12s", "<1s", "4m05s", "1h02m" for milliseconds left.
std::string formatMsLeft(long long ms);

// "just now", "12s ago", "3m12s ago", "2h05m ago", "3d04h ago" for milliseconds past.
std::string formatAgo(long long ms);

// A Unix time in milliseconds as local time with how long ago it was:
// "2026-12-04 20:31:05 UTC (3m12s ago)".
std::string formatSince(long long unixMs, long long nowMs);

// The wall clock in Unix milliseconds.
long long nowUnixMs();

} // namespace switchyard::ctl
