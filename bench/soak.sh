#!/usr/bin/env bash
# Soak: an hour (DURATION seconds) of mixed traffic through switchyard in front
# of four loopback echo backends it starts, while every CHAOS_INTERVAL seconds
# it cuts over, changes the split, kills a backend (SIGKILL; restarted on the
# same port 1.5-4 s later), reloads a changed config or scrapes /metrics.
#
#   bench/soak.sh                      one hour
#   DURATION=120 bench/soak.sh         the CI version (scripts/test.sh runs it)
#
# It reports client errors switchyard caused (errors not explained by a killed
# backend's open connections), RSS and fd growth of the daemon between quiet
# checkpoints (traffic paused, every connection closed; sampled from /proc),
# and exits 1 on any of: an unexplained client error, RSS growth over
# RSS_LIMIT_MB, fd growth over FD_LIMIT, a failed reload or unexpected admin
# reply, the daemon dying or not exiting 0 on SIGTERM. Exit 2: setup errors.
#
# Environment (defaults):
#   DURATION=3600        seconds of soak (the first min(20, DURATION/6) are warm-up)
#   SWITCHYARD_BIN       daemon to soak (build/switchyard; built with ninja if missing)
#   RATE=150             short connections per second, in total (paced: loopback
#                        TIME_WAIT sockets stay far from the ephemeral port range)
#   STREAMS=4            concurrent long streams (3-15 s each, 16 KiB echoed every 10 ms)
#   CHAOS_INTERVAL=2     seconds between chaos actions
#   CHECKPOINT=900       seconds between quiet checkpoints (besides baseline and end)
#   RSS_LIMIT_MB=10      allowed RSS growth, baseline -> end
#   FD_LIMIT=2           allowed fd growth, baseline -> end (expected 0)
#   SEED=1               traffic and chaos choices
#   KEEP_WORK=1          keep the work directory (config, logs, state file)
# Everything listens on 127.0.0.1 on free ports; every process it starts is
# stopped by its PID; every loop has a deadline.
set -uo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

duration=${DURATION:-3600}
bin=${SWITCHYARD_BIN:-$PWD/build/switchyard}
if [ ! -x "$bin" ]; then
  if [ "$bin" = "$PWD/build/switchyard" ]; then
    { [ -f build/build.ninja ] || meson setup build >/dev/null; } && ninja -C build switchyard >/dev/null || {
      echo "soak.sh: cannot build build/switchyard" >&2; exit 2; }
  else
    echo "soak.sh: $bin is not an executable (set SWITCHYARD_BIN)" >&2; exit 2
  fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-soak.XXXXXX")
driver_pid=""
cleanup() {
  if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
    # The driver stops the daemon and the backends it started on SIGTERM/SIGINT.
    kill -TERM "$driver_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$driver_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$driver_pid" 2>/dev/null
  fi
  # Whatever the driver started and could not stop (it was killed): by PID, and
  # only if the PID still runs one of our programs.
  if [ -f "$work/pids" ]; then
    while read -r pid; do
      if grep -qaE 'soak_driver\.py|switchyard' "/proc/$pid/cmdline" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi
    done <"$work/pids"
  fi
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "${soak_rc:-1}" -ne 0 ]; then
    echo "soak.sh: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "soak.sh: ${duration}s of mixed traffic through $bin (work directory $work)"
/usr/bin/python3 bench/soak_driver.py run --switchyard "$bin" --workdir "$work" --duration "$duration" \
  --rate "${RATE:-150}" --streams "${STREAMS:-4}" --chaos-interval "${CHAOS_INTERVAL:-2}" \
  --checkpoint "${CHECKPOINT:-900}" --rss-limit-mb "${RSS_LIMIT_MB:-10}" --fd-limit "${FD_LIMIT:-2}" \
  --seed "${SEED:-1}" &
driver_pid=$!
wait "$driver_pid"
soak_rc=$?
driver_pid=""
if [ "$soak_rc" -ne 0 ] && [ -f "$work/switchyard.log" ]; then
  echo "--- last lines of the daemon's log" >&2
  tail -30 "$work/switchyard.log" >&2
fi
exit "$soak_rc"
