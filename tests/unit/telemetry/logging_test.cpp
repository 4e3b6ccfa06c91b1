#include "switchyard/telemetry/logging.h"

#include <catch2/catch.hpp>

#include <spdlog/details/log_msg.h>

namespace {

using switchyard::telemetry::makeStderrFormatter;

std::string formatted(bool underJournal, spdlog::level::level_enum level, const char* text) {
    spdlog::details::log_msg msg(spdlog::source_loc{}, "health", level, text);
    spdlog::memory_buf_t out;
    makeStderrFormatter(underJournal)->format(msg, out);
    return std::string(out.data(), out.size());
}

} // namespace

TEST_CASE("Under the journal every line starts with its syslog priority", "[telemetry][logging]") {
    // journald reads "<N>" (SyslogLevelPrefix=) so that `journalctl -p warning` finds warnings.
    CHECK(formatted(true, spdlog::level::warn, "web: backend 10.0.0.1:80 is DOWN") ==
          "<4>warning health: web: backend 10.0.0.1:80 is DOWN\n");
    CHECK(formatted(true, spdlog::level::err, "x") == "<3>error health: x\n");
    CHECK(formatted(true, spdlog::level::critical, "x") == "<2>critical health: x\n");
    CHECK(formatted(true, spdlog::level::info, "x") == "<6>info health: x\n");
    CHECK(formatted(true, spdlog::level::debug, "x") == "<7>debug health: x\n");
    CHECK(formatted(true, spdlog::level::trace, "x") == "<7>trace health: x\n");
}

TEST_CASE("Outside the journal lines carry a timestamp and no priority prefix", "[telemetry][logging]") {
    const std::string line = formatted(false, spdlog::level::warn, "careful");
    CHECK(line.find('<') == std::string::npos);
    CHECK(line.size() == std::string("2026-01-02 03:04:05.678 warning health: careful\n").size());
    CHECK(line.substr(23) == " warning health: careful\n");
}
