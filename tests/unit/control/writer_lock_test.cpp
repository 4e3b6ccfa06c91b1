#include "switchyard/control/writer_lock.h"

#include <filesystem>

#include <unistd.h>

#include <catch2/catch.hpp>

using namespace switchyard::control;
namespace fs = std::filesystem;

TEST_CASE("One writer lock per state file; it goes with its holder", "[control]") {
    const fs::path dir = fs::temp_directory_path() / ("sy-lock-" + std::to_string(::getpid()));
    const std::string state = (dir / "sub" / "state.json").string();
    {
        WriterLock first;
        REQUIRE(first.take(state));   // makes the directory it needs
        CHECK(fs::exists(WriterLock::pathFor(state)));
        CHECK(first.take(state));     // held already
        // An OFD lock: even a second holder in the same process is refused.
        WriterLock second;
        const auto refused = second.take(state);
        REQUIRE_FALSE(refused);
        CHECK(refused.errorText() == state + " is in use by another switchyard (it holds " + state +
                                         ".lock); two daemons must not share a state file: give each its own state_file");
        CHECK_FALSE(second.held());
        first.release();
        CHECK(second.take(state));
        WriterLock other;
        CHECK(other.take((dir / "other.json").string()));   // another state file, another lock
    }
    WriterLock after;
    CHECK(after.take(state));   // released when its holder went
    fs::remove_all(dir);
}
