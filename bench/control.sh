#!/usr/bin/env bash
# Control-plane growth benchmark: how start-up, admin answers, a health storm, SIGTERM, saved
# state, memory and CPU per health result grow with the size of the configuration
# (services x backends per service). Prints one markdown table; see bench/README.md,
# "Control plane growth".
#
#   bench/control.sh                          all sizes (1 10 100 1000 services x 4 and 40), < 10 min
#   SIZES="1x4 100x40" bench/control.sh       chosen sizes (a 1x4 run is added as the RSS base)
#   SIZES=1x4 QUICK=1 bench/control.sh        smoke mode, < 30 s (not comparable figures)
#
# Environment (defaults):
#   SWITCHYARD_BIN      the daemon (build/switchyard of this checkout); measure a release build:
#                       meson setup build-release --buildtype=release -Dtests=false
#                       ninja -C build-release; SWITCHYARD_BIN=$PWD/build-release/switchyard
#   SIZES               "1x4 1x40 10x4 10x40 100x4 100x40 1000x4 1000x40"
#   QUICK=1             health interval 1 s, fewer samples, shorter storm
#   WORKERS=1           the daemon's `workers:`
#   CONTROL_PORT_BASE   23000: backends listen on base..base+3 (0.0.0.0), services on
#                       127.0.0.1:base+10 onwards (one port per service)
#   SEED=1              which services the commands pick
#   KEEP_WORK=1         keep the work directory (configs, daemon logs, state files); it is
#                       removed otherwise, whatever the outcome
# Output also goes to bench/results/control-latest.md. Exit 0 when the table was printed
# (timeouts are results, not failures), 1 when QUICK=1 found a phase that did not work,
# 2 on setup errors, 130 when interrupted.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
exec </dev/null

bin=${SWITCHYARD_BIN:-$PWD/build/switchyard}
if [ ! -x "$bin" ]; then
  echo "control.sh: $bin is not an executable; build one (see the header of this script) or set SWITCHYARD_BIN" >&2
  exit 2
fi
sizes=${SIZES:-"1x4 1x40 10x4 10x40 100x4 100x40 1000x4 1000x40"}
quick=()
[ "${QUICK:-0}" = 1 ] && quick=(--quick)

# The daemon gets the fd hard limit as its soft limit (the driver sets it for the child too).
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-control.XXXXXX")
driver_pid=""
cleanup() {
  if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
    # The driver stops the daemon and the listeners it started on SIGTERM.
    kill -TERM "$driver_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$driver_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$driver_pid" 2>/dev/null
  fi
  # Whatever the driver started and could not stop: by PID, and only if that PID still runs
  # one of our programs.
  if [ -f "$work/pids" ]; then
    while read -r pid; do
      if grep -qaE 'control_driver\.py|switchyard' "/proc/$pid/cmdline" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi
    done <"$work/pids"
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    echo "control.sh: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

/usr/bin/python3 bench/control_driver.py run --switchyard "$bin" --workdir "$work" --sizes "$sizes" \
  --workers "${WORKERS:-1}" --port-base "${CONTROL_PORT_BASE:-23000}" --seed "${SEED:-1}" \
  --out bench/results/control-latest.md "${quick[@]}" &
driver_pid=$!
wait "$driver_pid"
rc=$?
driver_pid=""
exit "$rc"
