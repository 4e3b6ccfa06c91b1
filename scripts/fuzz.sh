#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz, each for FUZZ_SECONDS (default 600,
# the 10 minutes issue 10 asks for; CI uses 20). Usage:
#   scripts/fuzz.sh                    every target
#   scripts/fuzz.sh config state_file  some targets
# Environment:
#   FUZZ_SECONDS   seconds per target (default 600)
#   FUZZ_BUILD     build directory (default build-asan: clang, -Dfuzz=true,
#                  ASan+UBSan; set up here when missing, as scripts/test.sh does)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
# Each target prints one line "fuzz <target>: ok (...)" or "fuzz <target>: FAILED (...)";
# the script exits 1 if any target failed. New inputs go to FUZZ_BUILD/fuzz-corpus/<target>
# (kept between runs; the committed seeds in tests/fuzz/corpus/<target> are only read),
# crashing inputs to FUZZ_BUILD/fuzz-artifacts/<target>/. A crash, once fixed, becomes a
# regression test: copy its input to tests/fuzz/regressions/<target>/ (fuzz-replay runs it).
set -uo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

seconds=${FUZZ_SECONDS:-600}
build=${FUZZ_BUILD:-build-asan}
per_input_timeout=${FUZZ_TIMEOUT:-10}
all_targets=(config admin_command state_file proxy_protocol health_reply)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

# The same options as the CI sanitizer run: UBSan fatal, leak detection on.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [ ! -f "$build/build.ninja" ]; then
  if ! command -v clang++ >/dev/null; then
    echo "fuzz.sh: clang++ not found (scripts/install-deps.sh installs clang and libclang-rt-14-dev)" >&2
    exit 2
  fi
  CXX=clang++ meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Doptimization=1 -Ddebug=false -Dcpp_args=-g1 >/dev/null || exit 2
fi
fuzz_bins=()
for t in "${targets[@]}"; do fuzz_bins+=("tests/fuzz/fuzz-${t//_/-}"); done
if ! ninja -C "$build" "${fuzz_bins[@]}" >/dev/null; then
  ninja -C "$build" "${fuzz_bins[@]}" 2>&1 | tail -40 >&2
  echo "fuzz.sh: building the fuzz targets in $build failed (is it configured with -Dfuzz=true?)" >&2
  exit 2
fi

failures=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz-${t//_/-}"
  seeds="tests/fuzz/corpus/$t"
  work="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts/$t"
  log="$build/fuzz-$t.log"
  mkdir -p "$work" "$artifacts"
  dict=()
  if [ -f "tests/fuzz/$t.dict" ]; then dict=(-dict="tests/fuzz/$t.dict"); fi
  # -max_total_time bounds the run; timeout(1) is the backstop for a wedged process.
  timeout --kill-after=10 $((seconds + 60)) "$bin" -max_total_time="$seconds" -timeout="$per_input_timeout" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" \
    "$work" "$seeds" >"$log" 2>&1
  rc=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $t: ok (${runs:-?} runs in ${seconds}s, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) files)"
  else
    failures=$((failures + 1))
    crash=$(ls -t "$artifacts" 2>/dev/null | head -1)
    echo "fuzz $t: FAILED (exit $rc${crash:+, input $artifacts/$crash}; log $log)"
    grep -vE '^ +0x[0-9a-f]+:|^Shadow byte|^  (Addressable|Partially|Heap|Freed|Stack|Global|Poisoned|Container|Array|Intra|ASan|Left|Right)' \
      "$log" | grep -A40 -E 'ERROR|invariant failed|deadly signal|timeout|out-of-memory' | head -60
  fi
done
exit $((failures > 0 ? 1 : 0))
