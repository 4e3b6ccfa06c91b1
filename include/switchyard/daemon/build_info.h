#pragma once

// What a bug report needs to know about a binary and the machine it runs on
// (as `haproxy -vv`): version, git commit, build type, compiler, the engines
// compiled in, and whether this kernel lets the io_uring engine run.

#include <string>
#include <string_view>

namespace switchyard::daemon {

struct BuildInfo {
    std::string version;      // "0.1.0"
    std::string gitCommit;    // `git describe --always --dirty`, or "unknown" outside a git checkout
    std::string buildType;    // meson's buildtype, e.g. "release"
    std::string optimization; // meson's optimization level
    bool assertions;          // false with NDEBUG
    std::string compiler;     // "gcc 12.2.0", "clang 14.0.6"
    std::string engines;      // "io_uring (liburing 2.3), epoll (Boost.Asio 1.81.0)"
};

// The values fixed at build time.
const BuildInfo& buildInfo();

// The multi-line --version text of `program`; its first line is
// "<program> <version>" so that scripts taking the first line keep working.
// Probes io_uring on this kernel (one ring set up and torn down).
std::string versionReport(std::string_view program);

} // namespace switchyard::daemon
