#pragma once

// One source file per fuzz target, built two ways:
//  - with -Dfuzz=true (clang): SWITCHYARD_FUZZ_TARGET(name) is libFuzzer's
//    LLVMFuzzerTestOneInput and each file becomes its own fuzzer binary;
//  - always (any compiler, SWITCHYARD_FUZZ_REPLAY defined): every target is
//    registered by name in one `fuzz-replay` Catch2 binary that feeds it each
//    file of tests/fuzz/corpus/<name>/ and tests/fuzz/regressions/<name>/, so
//    every seed and every crash ever found is replayed by the normal unit test
//    run and under ASan+UBSan, with no clang needed.
// Usage: SWITCHYARD_FUZZ_TARGET(config)(const uint8_t* data, std::size_t size) { ...; return 0; }

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::fuzz {

using TargetFn = int (*)(const uint8_t* data, std::size_t size);

struct Target {
    std::string name;
    TargetFn fn;
};

// The registered targets (replay build only).
std::vector<Target>& targets();

struct Registrar {
    Registrar(const char* name, TargetFn fn) { targets().push_back({name, fn}); }
};

// Logs off: the code under test logs refusals, and a fuzzer's output must stay readable.
void quietLogs();

[[noreturn]] inline void invariantFailed(const char* what, const char* file, int line) {
    std::fprintf(stderr, "fuzz invariant failed: %s at %s:%d\n", what, file, line);
    std::abort();
}

} // namespace switchyard::fuzz

// A property every input must keep; a violation aborts, which both libFuzzer
// and the replay test report as a failure with the input that caused it.
#define FUZZ_CHECK(cond) \
    do { \
        if (!(cond)) ::switchyard::fuzz::invariantFailed(#cond, __FILE__, __LINE__); \
    } while (0)

#ifdef SWITCHYARD_FUZZ_REPLAY
#define SWITCHYARD_FUZZ_TARGET(name) \
    static int fuzzOne_##name(const uint8_t*, std::size_t); \
    static const ::switchyard::fuzz::Registrar fuzzRegistrar_##name(#name, fuzzOne_##name); \
    static int fuzzOne_##name
#else
#define SWITCHYARD_FUZZ_TARGET(name) extern "C" int LLVMFuzzerTestOneInput
#endif
