#!/usr/bin/env bash
# One command for the whole test suite: install what is missing, build with
# warnings as errors, run the Catch2 unit tests and the pytest integration
# tests, and end with one plain line "N passed, N failed[, N skipped]".
# Works unattended (CI=true, no stdin); exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

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
echo "== unit tests"
unit_log="$logdir/unit.log"
if [ -x build/tests/unit-tests ]; then
  timeout 600 ./build/tests/unit-tests --reporter console --use-colour no 2>&1 | tee "$unit_log"
  unit_rc=${PIPESTATUS[0]}
  if line=$(grep -E '^All tests passed \(' "$unit_log" | tail -1) && [ -n "$line" ]; then
    # "All tests passed (N assertions in M test cases)"
    n=$(sed -E 's/.* in ([0-9]+) test case.*/\1/' <<<"$line")
    passed=$((passed + n))
  elif line=$(grep -E '^test cases: ' "$unit_log" | tail -1) && [ -n "$line" ]; then
    # "test cases: M | P passed | F failed [| E failed as expected]"
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | head -1 | cut -d' ' -f1)
    f=$(grep -oE '\| [0-9]+ failed( |$)' <<<"$line" | grep -v 'as expected' | head -1 | grep -oE '[0-9]+')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
  elif grep -q '^No tests ran' "$unit_log"; then
    :
  else
    echo "test.sh: unit tests ended without a summary (exit $unit_rc)" >&2
    failed=$((failed + 1))
  fi
  if [ "$unit_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "test.sh: unit tests exited $unit_rc" >&2
    failed=$((failed + 1))
  fi
else
  echo "test.sh: build/tests/unit-tests was not built" >&2
  failed=$((failed + 1))
fi

# --- integration tests (Debian's pytest, not whatever python3 is on PATH) ----
# Timing-sensitive tests on a loaded 2-core machine get one rerun
# (pytest-rerunfailures): a test that fails twice fails, and reruns are
# reported in pytest's summary line ("N rerun").
# run_integration LABEL ENGINE: ENGINE empty = the daemon's default (engine: auto).
run_integration() {
  local label=$1 engine=$2
  echo "== integration tests ($label)"
  local it_log="$logdir/integration-$label.log"
  SWITCHYARD_TEST_ENGINE="$engine" SWITCHYARD_BIN="${SWITCHYARD_BIN:-$PWD/build/switchyard}" \
    timeout 900 /usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider \
      --reruns 1 --reruns-delay 1 2>&1 | tee "$it_log"
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
if uring_usable; then
  run_integration epoll epoll
else
  echo "test.sh: io_uring unavailable here; the default pass ran on epoll, no second pass"
  skipped=$((skipped + 1))
fi

rm -rf "$logdir"
summary
if [ "$failed" -ne 0 ]; then status=1; fi
exit "$status"
