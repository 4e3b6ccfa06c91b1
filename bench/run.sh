#!/usr/bin/env bash
# switchyard benchmark: switchyard vs HAProxy vs nginx stream vs a direct connection,
# same loopback backends, one proxy core. Prints one markdown table; see bench/README.md.
#
#   bench/run.sh                      # 5 runs per cell, medians (< 10 minutes)
#   QUICK=1 bench/run.sh              # 1 short run, for development
#   MODE=all ENGINES=epoll bench/run.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$BENCH_DIR")
LIB=$BENCH_DIR/lib

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPEATS=${REPEATS:-1}; DURATION=${DURATION:-2}; IDLE_CONNS=${IDLE_CONNS:-2000}
else
  REPEATS=${REPEATS:-5}; DURATION=${DURATION:-3}; IDLE_CONNS=${IDLE_CONNS:-5000}
fi
MODE=${MODE:-pinned}                      # pinned: proxy on core 0, load+backends on core 1; all: no pinning
ENGINES=${ENGINES:-"epoll io_uring"}      # switchyard engines; ones the config rejects are skipped
METRICS_COST=${METRICS_COST:-0}           # 1: per engine, a second column with /metrics scraped every second
BASELINE_BIN=${BASELINE_BIN:-}             # a second switchyard binary (the commit before a change): per engine, a "before" column in the same runs
PROXIES=${PROXIES:-"direct switchyard haproxy haproxy-splice nginx"}
TIME_BUDGET=${TIME_BUDGET:-540}           # seconds of measuring; runs that would exceed it are dropped
PORT_BASE=${BENCH_PORT_BASE:-27100}
INSTALL=${INSTALL:-1}                     # 0: never touch apt
SWITCHYARD_BIN=${SWITCHYARD_BIN:-}        # default: build build-bench (release) from this checkout
CONNS=64
OUT_DIR=${OUT_DIR:-$BENCH_DIR/results}

PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
lib() { "$PY" "$LIB/benchlib.py" "$@"; }
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

case "$MODE" in
  pinned|all) ;;
  *) die "MODE must be pinned or all, not '$MODE'" ;;
esac

# Ports: backends, then the one set of front ports every proxy takes in turn.
B_HTTP=$PORT_BASE; B_STATUS=$((PORT_BASE + 1)); B_IPERF=$((PORT_BASE + 2)); B_IDLE=$((PORT_BASE + 3))
P_HTTP=$((PORT_BASE + 10)); P_BULK=$((PORT_BASE + 11)); P_IDLE=$((PORT_BASE + 12)); P_METRICS=$((PORT_BASE + 13))

# ------------------------------------------------------------------ processes
# Every process this script starts is recorded here and stopped by PID on exit.
STARTED_PIDS=()
WORK=""

stop_pid() {
  local pid=$1 tree p i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  tree=$(lib tree "$pid" 2>/dev/null || echo "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # Anything of that tree still alive after 5 s (workers of a stuck master) goes hard.
  for p in $tree; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ge 2 ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_bg CORE LOGFILE CMD...: start in the background (pinned to CORE unless empty); sets LAST_PID.
start_bg() {
  local core=$1 logf=$2; shift 2
  if [ -n "$core" ]; then
    taskset -c "$core" "$@" >"$logf" 2>&1 &
  else
    "$@" >"$logf" 2>&1 &
  fi
  LAST_PID=$!
  STARTED_PIDS+=("$LAST_PID")
}

forget_pid() {
  local keep=() p
  for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  STARTED_PIDS=("${keep[@]}")
}

listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# wait_listen PID PORT...: until every port listens (5 s), or the process died.
wait_listen() {
  local pid=$1 port i; shift
  for port in "$@"; do
    for i in $(seq 100); do
      listening "$port" && break
      kill -0 "$pid" 2>/dev/null || return 1
      sleep 0.05
    done
    listening "$port" || return 1
  done
}

# ------------------------------------------------------------------ setup
install_deps() {
  local need=()
  command -v haproxy >/dev/null || need+=(haproxy)
  command -v nginx >/dev/null || need+=(nginx)
  [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
  command -v iperf3 >/dev/null || need+=(iperf3)
  command -v wrk >/dev/null || need+=(wrk)
  command -v taskset >/dev/null || need+=(util-linux)
  command -v ss >/dev/null || need+=(iproute2)
  [ ${#need[@]} -eq 0 ] && return 0
  [ "$INSTALL" = 1 ] || die "missing ${need[*]} (INSTALL=0)"
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}: run as root to install them"
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends "${need[@]}" >&2
}

build_switchyard() {
  if [ -n "$SWITCHYARD_BIN" ]; then
    [ -x "$SWITCHYARD_BIN" ] || { log "SWITCHYARD_BIN=$SWITCHYARD_BIN is not executable: switchyard skipped"; SWITCHYARD_BIN=""; }
    return 0
  fi
  local bdir=$REPO/build-bench
  if [ ! -f "$bdir/build.ninja" ]; then
    log "meson setup $bdir (release)"
    meson setup "$bdir" "$REPO" --buildtype=release >"$WORK/meson-setup.log" 2>&1 \
      || { log "meson setup failed (see below): switchyard skipped"; tail -5 "$WORK/meson-setup.log" >&2; return 0; }
  fi
  log "building switchyard in $bdir"
  # Only the daemon: a broken test elsewhere in the tree must not block the bench.
  if ! timeout 1200 ninja -C "$bdir" switchyard >"$WORK/ninja.log" 2>&1; then
    timeout 1200 ninja -C "$bdir" >"$WORK/ninja.log" 2>&1 || true
  fi
  SWITCHYARD_BIN=$(find "$bdir" -maxdepth 3 -type f -name switchyard -perm -u+x 2>/dev/null | sed -n 1p)
  if [ -z "$SWITCHYARD_BIN" ]; then
    log "switchyard did not build (tail of ninja log below): switchyard columns skipped"
    tail -5 "$WORK/ninja.log" >&2
  fi
}

# ------------------------------------------------------------------ backends
start_backends() {
  local d=$WORK/backend
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $BACKEND_WORKERS;
worker_rlimit_nofile $FD_HARD;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $((FD_HARD - 64)); }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    default_type text/plain;
    server {
        listen 127.0.0.1:$B_HTTP backlog=4096;
        location / { return 200 "ok\n"; }
    }
    server {
        listen 127.0.0.1:$B_STATUS;
        location / { stub_status; }
    }
}
EOF
  start_bg "$LOAD_CPU" "$d/stdout.log" nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log"
  BACKEND_NGINX_PID=$LAST_PID
  wait_listen "$BACKEND_NGINX_PID" "$B_HTTP" "$B_STATUS" || die "backend nginx did not start: $(tail -3 "$d/error.log" 2>/dev/null)"
  start_bg "$LOAD_CPU" "$WORK/iperf3-server.log" iperf3 -s -B 127.0.0.1 -p "$B_IPERF"
  IPERF_PID=$LAST_PID
  wait_listen "$IPERF_PID" "$B_IPERF" || die "iperf3 server did not start: $(tail -3 "$WORK/iperf3-server.log")"
}

# ------------------------------------------------------------------ proxies
# start_proxy COLUMN: sets PROXY_PID (empty for direct) and the ports the workloads use.
start_proxy() {
  local col=$1 d=$WORK/$1
  mkdir -p "$d"
  PROXY_PID=""
  HTTP_PORT=$P_HTTP; BULK_PORT=$P_BULK; IDLE_PORT=$P_IDLE
  case "$col" in
    direct)
      HTTP_PORT=$B_HTTP; BULK_PORT=$B_IPERF; IDLE_PORT=""
      return 0 ;;
    haproxy|haproxy-splice)
      {
        echo "global"
        echo "    nbthread $PROXY_THREADS"
        echo "    maxconn $MAXCONN"
        echo "defaults"
        echo "    mode tcp"
        echo "    timeout connect 2s"
        echo "    timeout client 300s"
        echo "    timeout server 300s"
        [ "$col" = haproxy-splice ] && echo "    option splice-auto"
        for svc in "http $P_HTTP $B_HTTP" "bulk $P_BULK $B_IPERF" "idle $P_IDLE $B_IDLE"; do
          set -- $svc
          echo "listen $1"
          echo "    bind 127.0.0.1:$2"
          echo "    server b1 127.0.0.1:$3"
        done
      } >"$d/haproxy.cfg"
      start_bg "$PROXY_CPU" "$d/haproxy.log" haproxy -db -f "$d/haproxy.cfg" ;;
    nginx)
      cat >"$d/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process on;
worker_processes $PROXY_THREADS;
worker_rlimit_nofile $FD_HARD;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $((FD_HARD - 64)); }
stream {
    server { listen 127.0.0.1:$P_HTTP; proxy_pass 127.0.0.1:$B_HTTP; }
    server { listen 127.0.0.1:$P_BULK; proxy_pass 127.0.0.1:$B_IPERF; }
    server { listen 127.0.0.1:$P_IDLE; proxy_pass 127.0.0.1:$B_IDLE; }
}
EOF
      start_bg "$PROXY_CPU" "$d/stdout.log" nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" ;;
    switchyard-*)
      local sy=${col#switchyard-} bin=$SWITCHYARD_BIN
      local metrics=on
      if [ "$METRICS_COST" = 1 ] && [[ $sy != *+scrape ]]; then metrics=off; fi
      if [[ $sy == *+baseline ]]; then bin=$BASELINE_BIN; sy=${sy%+baseline}; fi
      write_switchyard_config "${sy%+scrape}" "$d" "$metrics"
      start_bg "$PROXY_CPU" "$d/switchyard.log" "$bin" -c "$d/switchyard.yaml" ;;
    *) die "unknown column $col" ;;
  esac
  PROXY_PID=$LAST_PID
  if [[ $col == *+scrape ]]; then
    # What metrics cost: a Prometheus-like scrape every second for as long as the column runs
    # (bounded: at most an hour), on the load generator's core.
    start_bg "$LOAD_CPU" "$d/scrape.log" bash -c \
      "for i in \$(seq 3600); do curl -s -o /dev/null http://127.0.0.1:$P_METRICS/metrics; sleep 1; done"
    SCRAPE_PID=$LAST_PID
  fi
  if ! wait_listen "$PROXY_PID" "$P_HTTP" "$P_BULK" "$P_IDLE"; then
    log "$col did not start; its log:"
    tail -5 "$d"/*.log >&2 2>/dev/null || true
    stop_proxy
    return 1
  fi
}

stop_proxy() {
  if [ -n "${SCRAPE_PID:-}" ]; then
    stop_pid "$SCRAPE_PID"
    forget_pid "$SCRAPE_PID"
    SCRAPE_PID=""
  fi
  [ -n "$PROXY_PID" ] || return 0
  stop_pid "$PROXY_PID"
  forget_pid "$PROXY_PID"
  PROXY_PID=""
}

write_switchyard_config() {
  local engine=$1 d=$2 metrics=${3:-on} svc
  {
    echo "admin: { socket: $d/admin.sock }"
    # METRICS_COST=1 compares metrics off with metrics scraped every second;
    # otherwise the metrics listener is on, unscraped, as in production.
    if [ "$metrics" = on ]; then echo "metrics: { listen: 127.0.0.1:$P_METRICS }"; fi
    echo 'state_file: ""'
    echo "workers: $SY_WORKERS"
    echo "engine: $engine"
    echo "log: { level: warn }"
    echo "services:"
    for svc in "http $P_HTTP $B_HTTP" "bulk $P_BULK $B_IPERF" "idle $P_IDLE $B_IDLE"; do
      set -- $svc
      echo "  - name: $1"
      echo "    listen: 127.0.0.1:$2"
      # One check at start, then rarely: HAProxy and nginx run none here, and
      # stray connects would disturb iperf3's stream setup.
      echo "    health: { interval: 60s }"
      echo "    max_connections: $MAXCONN"
      echo "    pools:"
      echo "      blue: [ { address: 127.0.0.1:$3, weight: 100 } ]"
      echo "      green: []"
    done
  } >"$d/switchyard.yaml"
}

# Which switchyard engines to measure: those `--check` accepts and the daemon then really uses.
probe_engines() {
  local e d out rc got
  SY_COLUMNS=()
  [ -n "$SWITCHYARD_BIN" ] || return 0
  for e in $ENGINES; do
    d=$WORK/switchyard-$e
    mkdir -p "$d"
    write_switchyard_config "$e" "$d"
    rc=0; out=$("$SWITCHYARD_BIN" -c "$d/switchyard.yaml" --check 2>&1) || rc=$?
    if [ "$rc" -ge 128 ]; then
      log "engine $e: switchyard --check crashed (signal $((rc - 128))) — skipped"
      continue
    elif [ "$rc" != 0 ]; then
      log "engine $e: config rejected (exit $rc): $(echo "$out" | sed -n 1,2p | tr '\n' ' ') — skipped"
      continue
    fi
    if ! start_proxy "switchyard-$e"; then
      log "engine $e: daemon did not start — skipped"
      continue
    fi
    got=$(lib admin-engine "$d/admin.sock")
    stop_proxy
    if [ -n "$got" ] && [ "$got" != "$e" ]; then
      log "engine $e: daemon runs '$got' instead (fallback) — skipped"
      continue
    fi
    [ -n "$got" ] || log "engine $e: status did not name the engine; assuming $e"
    SY_COLUMNS+=("switchyard-$e")
    if [ -n "$BASELINE_BIN" ]; then
      mkdir -p "$WORK/switchyard-$e+baseline"
      SY_COLUMNS+=("switchyard-$e+baseline")
    fi
    if [ "$METRICS_COST" = 1 ]; then
      mkdir -p "$WORK/switchyard-$e+scrape"
      SY_COLUMNS+=("switchyard-$e+scrape")
    fi
  done
}

# ------------------------------------------------------------------ workloads
cpu_now() { if [ -n "$PROXY_PID" ]; then lib cpu "$PROXY_PID"; else echo 0,0; fi; }   # "user,system" seconds

run_idle() {
  local col=$1 rep=$2 f=$WORK/$1/idle-$2.json
  [ -n "$PROXY_PID" ] || return 0
  timeout 90 "$PY" "$LIB/benchlib.py" idle "$PROXY_PID" "$IDLE_PORT" "$B_IDLE" "$IDLE_CONNS" 1.0 >"$f" 2>"$f.err" || true
  lib record-idle "$OUT_DIR" "$col" "$rep" "$f"
}

run_bulk() {
  local col=$1 rep=$2 f=$WORK/$1/iperf-$2.json c0 c1 try
  for try in 1 2; do
    c0=$(cpu_now)
    timeout $((DURATION + 20)) iperf3 -c 127.0.0.1 -p "$BULK_PORT" -P 4 -t "$DURATION" -J >"$f" 2>&1 || true
    c1=$(cpu_now)
    # "server is busy" after a previous test's teardown: one retry.
    grep -q '"error"' "$f" && grep -qi busy "$f" && { sleep 1; continue; }
    break
  done
  lib record-bulk "$OUT_DIR" "$col" "$rep" "$f" "$c0" "$c1" "$([ -n "$PROXY_PID" ] && echo 1 || echo 0)"
}

run_wrk() {
  local col=$1 rep=$2 workload=$3 f=$WORK/$1/$3-$2.txt c0 c1 s0 s1 hdr=()
  [ "$workload" = newconn ] && hdr=(-H "Connection: close")
  s0=$(lib stub "$B_STATUS")
  c0=$(cpu_now)
  timeout $((DURATION + 15)) wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
    -s "$LIB/report.lua" "${hdr[@]}" "http://127.0.0.1:$HTTP_PORT/" >"$f" 2>&1 || true
  c1=$(cpu_now)
  s1=$(lib stub "$B_STATUS")
  lib record-wrk "$OUT_DIR" "$col" "$rep" "$workload" "$f" "$s0" "$s1" "$c0" "$c1" \
    "$([ -n "$PROXY_PID" ] && echo 1 || echo 0)" "$CONNS"
}

run_column() {
  local col=$1 rep=$2
  if ! start_proxy "$col"; then
    printf '%s\t%s\t%s\t%s\t%s\n' "$col" "$rep" start fail "proxy did not start" >>"$OUT_DIR/checks.tsv"
    return 0
  fi
  sleep 0.3
  # A workload that breaks is recorded as a failed check, never aborts the suite.
  run_idle "$col" "$rep" || log "$col: idle probe failed"
  sleep 0.3
  run_bulk "$col" "$rep" || log "$col: bulk workload failed"
  sleep 0.3
  run_wrk "$col" "$rep" newconn || log "$col: new-connection workload failed"
  sleep 0.3
  run_wrk "$col" "$rep" keepalive || log "$col: keep-alive workload failed"
  stop_proxy
}

# ------------------------------------------------------------------ main
install_deps
WORK=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
mkdir -p "$OUT_DIR"
: >"$OUT_DIR/results.tsv"
: >"$OUT_DIR/checks.tsv"

NCPU=$(nproc)
ulimit -n "$(ulimit -Hn)"
FD_HARD=$(ulimit -Hn)
[ "$FD_HARD" = unlimited ] && FD_HARD=65536
# The client and backend side of the idle probe share one process: 2 fds per connection.
MAX_IDLE=$(( (FD_HARD - 256) / 2 ))
[ "$IDLE_CONNS" -gt "$MAX_IDLE" ] && IDLE_CONNS=$MAX_IDLE
# HAProxy sizes its fd needs from maxconn (2 per connection, plus splice pipes):
# enough for the idle probe, within the hard limit.
MAXCONN=$(( IDLE_CONNS + 512 ))

if [ "$MODE" = pinned ]; then
  [ "$NCPU" -ge 2 ] || die "MODE=pinned needs 2 cores"
  PROXY_CPU=0; LOAD_CPU=1; PROXY_THREADS=1; SY_WORKERS=1; WRK_THREADS=1; BACKEND_WORKERS=1
else
  PROXY_CPU=""; LOAD_CPU=""; PROXY_THREADS=$NCPU; SY_WORKERS=auto; WRK_THREADS=$NCPU; BACKEND_WORKERS=$NCPU
fi

for port in $B_HTTP $B_STATUS $B_IPERF $B_IDLE $P_HTTP $P_BULK $P_IDLE $P_METRICS; do
  listening "$port" && die "port $port is in use (set BENCH_PORT_BASE)"
done

case " $PROXIES " in *" switchyard "*) build_switchyard ;; *) SWITCHYARD_BIN="" ;; esac

# From here on the script and everything it starts run on the load core;
# proxies are moved to their core explicitly.
[ -n "$LOAD_CPU" ] && taskset -pc "$LOAD_CPU" $$ >/dev/null

start_backends
probe_engines

COLUMNS_ORDER=()
for p in $PROXIES; do
  case "$p" in
    switchyard) COLUMNS_ORDER+=("${SY_COLUMNS[@]}") ;;
    direct|haproxy|haproxy-splice|nginx) COLUMNS_ORDER+=("$p") ;;
    *) die "unknown proxy '$p' in PROXIES" ;;
  esac
done
[ ${#COLUMNS_ORDER[@]} -gt 0 ] || die "nothing to measure"

HAPROXY_V=$(haproxy -v 2>/dev/null | sed -n 1p | awk '{print $3}')
NGINX_V=$(nginx -v 2>&1 | sed 's/.*nginx\///')
SY_V=$([ -n "$SWITCHYARD_BIN" ] && "$SWITCHYARD_BIN" --version 2>/dev/null | sed -n 1p | sed 's/^switchyard //' || echo "not built")
if [ -n "$BASELINE_BIN" ]; then
  [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN=$BASELINE_BIN is not executable"
  BASELINE_NOTE=" \"before\" columns: $BASELINE_BIN (commit $("$BASELINE_BIN" --version 2>/dev/null | sed -n 's/^ *git commit: *//p')),"
fi
{
  echo "## switchyard benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "mode \`$MODE\`$([ "$MODE" = pinned ] && echo " (proxy on core 0; wrk, iperf3 and backends on core 1)"),"\
       "${DURATION}s per workload, $IDLE_CONNS idle connections;"\
       "switchyard ${SY_V:-?} (commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')),${BASELINE_NOTE:-}"\
       "HAProxy $HAPROXY_V, nginx $NGINX_V, $(uname -r), load average at start $(cut -d' ' -f1-3 /proc/loadavg)."
} >"$WORK/meta.md"

log "columns: ${COLUMNS_ORDER[*]}; $REPEATS run(s) of ${DURATION}s workloads, mode $MODE"
T0=$(date +%s)
done_runs=0
for rep in $(seq "$REPEATS"); do
  elapsed=$(( $(date +%s) - T0 ))
  if [ "$rep" -gt 1 ] && [ $(( elapsed + elapsed / (rep - 1) )) -gt "$TIME_BUDGET" ]; then
    log "time budget ${TIME_BUDGET}s reached after $((rep - 1)) run(s): stopping"
    echo "(time budget reached: $((rep - 1)) of $REPEATS runs)" >>"$WORK/meta.md"
    break
  fi
  # Columns interleaved within each run, so drift in background load spreads over all of them.
  for col in "${COLUMNS_ORDER[@]}"; do
    log "run $rep/$REPEATS: $col"
    run_column "$col" "$rep"
  done
  done_runs=$rep
done
log "measured $done_runs run(s) in $(( $(date +%s) - T0 ))s"

cols_arg=""
for col in "${COLUMNS_ORDER[@]}"; do
  case "$col" in
    direct) label=direct ;;
    switchyard-*+scrape) label="switchyard ($(sed 's/+scrape//' <<<"${col#switchyard-}") + scrape 1/s)" ;;
    switchyard-*+baseline) label="switchyard before ($(sed 's/+baseline//' <<<"${col#switchyard-}"))" ;;
    switchyard-*) label="switchyard (${col#switchyard-})" ;;
    haproxy) label=HAProxy ;;
    haproxy-splice) label="HAProxy splice-auto" ;;
    nginx) label=nginx ;;
  esac
  cols_arg+="$col=$label,"
done
rc=0
lib table "$OUT_DIR/results.tsv" "$OUT_DIR/checks.tsv" "$cols_arg" "$WORK/meta.md" >"$OUT_DIR/latest.md" || rc=$?
cat "$OUT_DIR/latest.md"
exit "$rc"
