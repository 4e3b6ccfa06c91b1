#!/usr/bin/env bash
# One command for the whole test suite: install what is missing, build with
# warnings as errors, run the Catch2 unit tests and the pytest integration
# tests, then the reliability passes (docs/testing.md): the unit and
# integration tests under ASan+UBSan and under TSan, each fuzz target for a
# short bounded time, a 2-minute soak, the Debian package with lintian
# (scripts/build-deb.sh), and that package installed and upgraded under a real
# systemd in a Debian 12 container (tests/system/). Ends with one plain line
# "N passed, N failed[, N skipped]".
# Works unattended (CI=true, no stdin); exits non-zero on any failure.
# SWITCHYARD_TEST_SKIP="asan tsan fuzz soak deb container" leaves those passes out (counted as skipped).
#
# --quick: a contributor's inner loop (a few minutes): the unit tests and the
# integration suite on the default engine only; no fuzz corpus replay, no epoll
# pass, no sanitizer, fuzzing, soak or package passes. CI runs the full suite.
set -uo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

quick=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg' (try --quick or --help)" >&2; exit 2 ;;
  esac
done

passed=0
failed=0
skipped=0
status=0
logdir=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-test.XXXXXX")

summary() {
  local line="$passed passed, $failed failed"
  if [ "$skipped" -gt 0 ]; then line="$line, $skipped skipped"; fi
  echo
  echo "$line"
}

if ! bash scripts/install-deps.sh; then
  echo "test.sh: installing dependencies failed" >&2
  failed=$((failed + 1)); summary; exit 1
fi

build_ok=1
if [ -f build/build.ninja ]; then
  ninja -C build || build_ok=0
else
  { meson setup build --werror && ninja -C build; } || build_ok=0
fi
if [ "$build_ok" -ne 1 ]; then
  echo "test.sh: build failed" >&2
  failed=$((failed + 1)); summary; exit 1
fi

# --- unit tests (Catch2 v2 console reporter) --------------------------------
# run_catch LABEL BINARY: runs one Catch2 binary and adds its test cases to the counts.
run_catch() {
  local label=$1 bin=$2
  echo "== $label"
  local log="$logdir/catch-${label//[^A-Za-z0-9]/_}.log"
  local before=$failed line
  if [ ! -x "$bin" ]; then
    echo "test.sh: $bin was not built" >&2
    failed=$((failed + 1)); return
  fi
  timeout 600 "$bin" --reporter console --use-colour no 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  if line=$(grep -E '^All tests passed \(' "$log" | tail -1) && [ -n "$line" ]; then
    # "All tests passed (N assertions in M test cases)"
    local n
    n=$(sed -E 's/.* in ([0-9]+) test case.*/\1/' <<<"$line")
    passed=$((passed + n))
  elif line=$(grep -E '^test cases: ' "$log" | tail -1) && [ -n "$line" ]; then
    # "test cases: M | P passed | F failed [| E failed as expected]"
    local p f
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | head -1 | cut -d' ' -f1)
    f=$(grep -oE '\| [0-9]+ failed( |$)' <<<"$line" | grep -v 'as expected' | head -1 | grep -oE '[0-9]+')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
  elif grep -q '^No tests ran' "$log"; then
    :
  else
    echo "test.sh: $label ended without a summary (exit $rc)" >&2
    failed=$((failed + 1))
  fi
  if [ "$rc" -ne 0 ] && [ "$failed" -eq "$before" ]; then
    echo "test.sh: $label exited $rc" >&2
    failed=$((failed + 1))
  fi
}

run_catch "unit tests" build/tests/unit-tests
# Every committed fuzz seed and past crash input, through its target (no clang needed).
if [ "$quick" -eq 0 ]; then
  run_catch "fuzz corpus replay" build/tests/fuzz/fuzz-replay
fi

# --- integration tests (Debian's pytest, not whatever python3 is on PATH) ----
# Timing-sensitive tests on a loaded 2-core machine get one rerun
# (pytest-rerunfailures): a test that fails twice fails, and reruns are
# reported in pytest's summary line ("N rerun").
# run_integration LABEL ENGINE [BIN [PYTEST ARGS...]]: BIN defaults to build/switchyard
# (or $SWITCHYARD_BIN), the tests to all of tests/integration.
run_integration() {
  local label=$1 engine=$2
  local bin=${3:-${SWITCHYARD_BIN:-$PWD/build/switchyard}}
  shift 2; shift $(( $# > 0 ? 1 : 0 ))
  local args=("$@")
  if [ "${#args[@]}" -eq 0 ]; then args=(tests/integration); fi
  echo "== integration tests ($label)"
  local it_log="$logdir/integration-$label.log"
  SWITCHYARD_TEST_ENGINE="$engine" SWITCHYARD_BIN="$bin" \
    timeout 900 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
      --reruns 1 --reruns-delay 1 "${args[@]}" 2>&1 | tee "$it_log"
  local it_rc=${PIPESTATUS[0]}
  # The last line looks like "3 failed, 40 passed, 2 skipped in 61.2s" (any order).
  last=$(grep -E '[0-9]+ (passed|failed|skipped|errors?|xfailed|xpassed|deselected)|no tests ran' "$it_log" | tail -1)
  count() { grep -oE "[0-9]+ $1" <<<"$last" | head -1 | cut -d' ' -f1; }
  local p f s e xp
  p=$(count passed); f=$(count failed); s=$(count skipped); e=$(count 'errors?'); xp=$(count xpassed)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${e:-0} + ${xp:-0}))
  skipped=$((skipped + ${s:-0}))
  case "$it_rc" in
    0|5) ;;   # 5: no tests collected
    1) if [ -z "${f}${e}${xp}" ]; then failed=$((failed + 1)); fi ;;
    *) echo "test.sh: pytest exited $it_rc" >&2; failed=$((failed + 1)) ;;
  esac
}

# io_uring usable here? (io_uring_setup is syscall 425 on every architecture;
# seccomp in containers or kernel.io_uring_disabled make it fail.)
uring_usable() {
  /usr/bin/python3 - <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 1, params)
sys.exit(1 if fd < 0 else (os.close(fd) or 0))
PY
}

# Every integration test runs on both engines: the default first (engine: auto,
# which is io_uring where the kernel allows it), then epoll explicitly. Where
# io_uring is unavailable the default pass already ran on epoll.
# ~2 minutes per pass on the 2-core CI machine.
run_integration default ""
if [ "$quick" -eq 1 ]; then
  rm -rf "$logdir"
  echo "test.sh --quick: unit tests and the default-engine integration pass only"
  summary
  if [ "$failed" -ne 0 ]; then status=1; fi
  exit "$status"
fi
if uring_usable; then
  run_integration epoll epoll
else
  echo "test.sh: io_uring unavailable here; the default pass ran on epoll, no second pass"
  skipped=$((skipped + 1))
fi

# --- reliability passes: sanitizers, fuzzing, soak (docs/testing.md) ---------
# Budget on the 2-core CI machine, cold: ~4 min to build build-asan, ~2.5 min
# build-tsan (clang -O1 -g1, ccache), ~2.5 min per sanitizer integration pass,
# 5 x FUZZ_SECONDS of fuzzing, 2 min of soak.
want() { case " ${SWITCHYARD_TEST_SKIP:-} " in *" $1 "*) echo "test.sh: $1 pass skipped (SWITCHYARD_TEST_SKIP)"; skipped=$((skipped + 1)); return 1 ;; esac; return 0; }

# san_build DIR MESON-OPTIONS...: configures DIR with clang once, then builds it.
# Clang, not GCC: GCC 12 takes ~3x as long for -fsanitize=undefined objects, and
# clang is what libFuzzer needs anyway (build-asan also builds the fuzzers).
san_build() {
  local dir=$1; shift
  echo "== build $dir"
  if [ ! -f "$dir/build.ninja" ]; then
    CXX=clang++ meson setup "$dir" "$@" -Db_lundef=false -Doptimization=1 -Ddebug=false -Dcpp_args=-g1 \
      >"$logdir/setup-$dir.log" 2>&1 || { cat "$logdir/setup-$dir.log" >&2; return 1; }
  fi
  ninja -C "$dir" >"$logdir/build-$dir.log" 2>&1 || { tail -60 "$logdir/build-$dir.log" >&2; return 1; }
}

# Every sanitizer report goes to a file of its own (log_path), so a report from
# any process (a daemon a test killed, switchyardctl, a test that did not look
# at exit codes) is still seen. san_reports LABEL DIR counts any as one failure.
san_reports() {
  local label=$1 dir=$2
  local files
  files=$(find "$dir" -type f 2>/dev/null | sort)
  if [ -n "$files" ]; then
    echo "test.sh: $label: $(wc -l <<<"$files") sanitizer report(s):" >&2
    for f in $files; do echo "--- $f" >&2; head -80 "$f" >&2; done
    failed=$((failed + 1))
  else
    echo "== $label: no sanitizer reports"
  fi
}

uring_ok=0
if uring_usable; then uring_ok=1; fi

if want asan; then
  if san_build build-asan -Dfuzz=true -Db_sanitize=address,undefined; then
    reports="$logdir/asan-reports"; mkdir -p "$reports"
    # UBSan fatal with a stack; leaks reported at exit; both into $reports.
    # LSan needs file descriptors at exit, so the tests that exhaust the
    # daemon's descriptors on purpose are left to the other passes; so is the
    # one that measures the daemon's RSS: under ASan it grows with the
    # allocator's quarantine and the per-thread fake stacks of
    # detect_stack_use_after_return (seen: +2.4 MiB for 10 stuck connections,
    # none with fake stacks off), not with what the proxy holds.
    (
      export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:check_initialization_order=1:detect_stack_use_after_return=1:log_path=$reports/asan"
      export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
      export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/sanitizers/lsan.supp:print_suppressions=0"
      run_catch "unit tests (asan+ubsan)" build-asan/tests/unit-tests
      run_catch "fuzz corpus replay (asan+ubsan)" build-asan/tests/fuzz/fuzz-replay
      run_integration asan-ubsan "" "$PWD/build-asan/switchyard" tests/integration -k "not out_of_fds and not out_of_file_descriptors and not never_reads_gets_backpressure"
      if [ "$uring_ok" -eq 1 ]; then
        run_integration asan-ubsan-epoll epoll "$PWD/build-asan/switchyard" \
          tests/integration/test_proxying.py tests/integration/test_proxy_protocol.py \
          tests/integration/test_drain.py tests/integration/test_admin_traffic.py \
          tests/integration/test_splice.py tests/integration/test_resets.py tests/integration/test_faults.py \
          -k "not out_of_fds and not out_of_file_descriptors and not never_reads_gets_backpressure"
      fi
      echo "$passed $failed $skipped" >"$logdir/counts"
    )
    read -r passed failed skipped <"$logdir/counts"
    san_reports "asan+ubsan" "$reports"
  else
    echo "test.sh: build-asan failed" >&2; failed=$((failed + 1))
  fi
fi

if want tsan; then
  if san_build build-tsan -Db_sanitize=thread; then
    reports="$logdir/tsan-reports"; mkdir -p "$reports"
    (
      export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:log_path=$reports/tsan:suppressions=$PWD/tests/fuzz/sanitizers/tsan.supp"
      run_catch "unit tests (tsan)" build-tsan/tests/unit-tests
      # Workers, the control thread, health checks, the metrics scrape and the
      # access log writer all run in the daemon under every integration test.
      run_integration tsan "" "$PWD/build-tsan/switchyard"
      if [ "$uring_ok" -eq 1 ]; then
        run_integration tsan-epoll epoll "$PWD/build-tsan/switchyard" \
          tests/integration/test_balancing.py tests/integration/test_drain.py \
          tests/integration/test_metrics.py tests/integration/test_admin_traffic.py
      fi
      echo "$passed $failed $skipped" >"$logdir/counts"
    )
    read -r passed failed skipped <"$logdir/counts"
    san_reports "tsan" "$reports"
  else
    echo "test.sh: build-tsan failed" >&2; failed=$((failed + 1))
  fi
fi

# Each libFuzzer target for FUZZ_SECONDS (CI default 20), built in build-asan.
if want fuzz; then
  echo "== fuzzing (${FUZZ_SECONDS:-20}s per target)"
  FUZZ_SECONDS=${FUZZ_SECONDS:-20} FUZZ_BUILD=build-asan bash scripts/fuzz.sh 2>&1 | tee "$logdir/fuzz.log"
  fuzz_ok=$(grep -cE '^fuzz [a-z_]+: ok' "$logdir/fuzz.log")
  fuzz_bad=$(grep -cE '^fuzz [a-z_]+: FAILED' "$logdir/fuzz.log")
  passed=$((passed + fuzz_ok))
  failed=$((failed + fuzz_bad))
  if [ $((fuzz_ok + fuzz_bad)) -eq 0 ]; then
    echo "test.sh: scripts/fuzz.sh ran no target" >&2; failed=$((failed + 1))
  fi
fi

# Two minutes of mixed traffic, cutovers, backend kills and reloads through the
# release-style build: no errors switchyard caused, flat RSS and fd count.
if want soak; then
  echo "== soak (${SOAK_DURATION:-120}s)"
  if DURATION=${SOAK_DURATION:-120} SWITCHYARD_BIN="$PWD/build/switchyard" SWITCHYARDCTL_BIN="$PWD/build/switchyardctl" \
      timeout $(( ${SOAK_DURATION:-120} + 180 )) bash bench/soak.sh 2>&1 | tee "$logdir/soak.log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
    passed=$((passed + 1))
  else
    echo "test.sh: soak failed" >&2; failed=$((failed + 1))
  fi
fi

# The Debian package from a clean clone of HEAD, checked by lintian
# (scripts/build-deb.sh; ~6 CPU-minutes of compiling, a cold build with no ccache hits).
if want deb; then
  echo "== Debian package"
  if bash scripts/build-deb.sh "$logdir/deb" 2>&1 | tee "$logdir/deb.log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
    passed=$((passed + 1))
  else
    echo "test.sh: the Debian package failed to build or has lintian errors" >&2; failed=$((failed + 1))
  fi
  # That package under a real systemd, in a booted Debian 12 container
  # (tests/system/): MainPID follows an upgrade, the watchdog, reload and stop.
  deb=$(ls "$logdir"/deb/switchyard_*.deb 2>/dev/null | head -1)
  if [ -n "$deb" ] && want container; then
    export SWITCHYARD_DEB="$deb"
    run_integration systemd-container "" "" tests/system
    unset SWITCHYARD_DEB
  fi
fi

rm -rf "$logdir"
summary
if [ "$failed" -ne 0 ]; then status=1; fi
exit "$status"
