#include "switchyard/daemon/build_info.h"

#include <sys/utsname.h>

#include <fmt/format.h>

#include "switchyard/proxy/engine/uring/uring_engine.h"

namespace switchyard::daemon {

namespace generated {
extern const char* const kGitCommit;
extern const char* const kBuildType;
extern const char* const kOptimization;
extern const char* const kLiburingVersion;
} // namespace generated

namespace {

std::string compilerName() {
#if defined(__clang__)
    return fmt::format("clang {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
    return fmt::format("gcc {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
    return "unknown";
#endif
}

BuildInfo makeBuildInfo() {
    BuildInfo info;
    info.version = SWITCHYARD_VERSION;
    info.gitCommit = generated::kGitCommit;
    info.buildType = generated::kBuildType;
    info.optimization = generated::kOptimization;
#ifdef NDEBUG
    info.assertions = false;
#else
    info.assertions = true;
#endif
    info.compiler = compilerName();
    info.engines = fmt::format("io_uring (liburing {}), epoll (edge-triggered, own loop)", generated::kLiburingVersion);
    return info;
}

std::string kernelText() {
    struct utsname u {};
    if (::uname(&u) != 0) return "unknown";
    return fmt::format("{} {} {}", u.sysname, u.release, u.machine);
}

} // namespace

const BuildInfo& buildInfo() {
    static const BuildInfo info = makeBuildInfo();
    return info;
}

std::string versionReport(std::string_view program) {
    const BuildInfo& info = buildInfo();
    std::string why;
    const bool uring = proxy::uringAvailable(&why);
    std::string out = fmt::format("{} {}\n", program, info.version);
    out += fmt::format("  git commit:  {}\n", info.gitCommit);
    out += fmt::format("  build type:  {} (optimization {}, assertions {})\n", info.buildType, info.optimization,
                       info.assertions ? "on" : "off");
    out += fmt::format("  compiler:    {}, C++ {}\n", info.compiler, __cplusplus);
    out += fmt::format("  engines:     {}\n", info.engines);
    out += fmt::format("  kernel:      {}\n", kernelText());
    if (uring)
        out += "  io_uring:    usable on this kernel (engine: auto runs io_uring)\n";
    else
        out += fmt::format("  io_uring:    not usable here: {} (engine: auto runs epoll)\n", why);
    return out;
}

} // namespace switchyard::daemon
