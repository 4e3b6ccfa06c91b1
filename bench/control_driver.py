#!/usr/bin/env python3
"""Driver for bench/control.sh: how the control plane's costs grow with the configuration.

For each size (services x backends per service) it starts switchyard on a generated config whose
every backend reaches a live listener, and measures: time to ready, `cutover` and `status`
round trips on the admin socket, admin round trips during a health storm, SIGTERM -> exit,
the bytes of saved state, RSS and CPU per health result. Prints one markdown table.

Everything runs on loopback. Backend addresses are distinct 127.x.y.z addresses on four ports;
each port has one listening socket bound to 0.0.0.0 (one process each), which accepts and
closes, so one socket serves every loopback address of its port. Backend j of a pool sits on a
"stable" port when j is even and on a "storm" port when j is odd; the storm stops the storm
ports' processes, so exactly half of every pool's backends fail their checks at once.

Every process it starts is stopped by its PID (also listed in WORKDIR/pids for control.sh);
every wait has a deadline; a command unanswered within its timeout counts as a timeout.

  control_driver.py run --switchyard BIN --workdir DIR --sizes "1x4 10x40" [--quick]
  control_driver.py backend PORT     (internal: one accept-and-close listener)
"""

import argparse
import json
import math
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib  # noqa: E402  (bench/lib: /proc accounting shared with bench/run.sh)

TIMEOUT = float("inf")        # a sample that got no answer in time
LOOPBACK_BASE = (127 << 24) | (1 << 16)   # backend addresses start at 127.1.0.1


# --- backend listener process --------------------------------------------------------------

def run_backend(port):
    """Accept and close, as fast as one process can: a health check only needs the connect.
    SIGUSR1 prints how many connections it has accepted so far (the driver counts checks)."""
    accepted = 0

    def report(*_):
        print(accepted, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGUSR1, report)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(65535)               # capped by net.core.somaxconn
    print("listening", flush=True)
    while True:
        try:
            c, _ = s.accept()
        except OSError:
            time.sleep(0.01)       # EMFILE and the like: back off, never spin
            continue
        c.close()
        accepted += 1


# --- helpers --------------------------------------------------------------------------------

def record_pid(workdir, pid):
    # control.sh stops whatever is listed here if the driver itself had to be killed.
    with open(os.path.join(workdir, "pids"), "a") as f:
        f.write(f"{pid}\n")


def backend_address(k):
    """The k-th distinct loopback address: 127.1.0.1 upwards, skipping .0 and .255 hosts."""
    n = LOOPBACK_BASE + (k // 254) * 256 + 1 + k % 254
    return socket.inet_ntoa(n.to_bytes(4, "big"))


def port_free(host, port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def admin(path, command, timeout):
    """One command on a fresh admin connection. Returns (seconds or TIMEOUT, reply bytes or None,
    error text or None). A reply is one line; its round trip is connect + send + last byte."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                return TIMEOUT, None, "timeout"
            s.settimeout(left)
            chunk = s.recv(1 << 20)
            if not chunk:
                return TIMEOUT, None, "connection closed without a reply"
            buf += chunk
        return time.monotonic() - t0, bytes(buf), None
    except socket.timeout:
        return TIMEOUT, None, "timeout"
    except OSError as exc:
        return TIMEOUT, None, f"{type(exc).__name__}: {exc}"
    finally:
        s.close()


def percentile(samples, p):
    """Nearest-rank percentile; TIMEOUT samples sort last, so a percentile that lands on one is
    a timeout. None when there are no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def dir_bytes(path):
    """Bytes of every file under path, less the temporary file of an atomic write in flight
    (`*.tmp*`): it is about to replace the file beside it."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            if ".tmp" in name:
                continue
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass                # a temporary file renamed away meanwhile
    return total


def listen_drops():
    """The kernel's count of connections a full accept queue dropped (system-wide): if it grows,
    the bench's listeners, not the daemon, failed some checks."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:]))
            return int(row.get("ListenOverflows", 0)) + int(row.get("ListenDrops", 0))
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def raise_nofile():
    """In the daemon's child before exec: fd soft limit up to the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- one size ---------------------------------------------------------------------------------

class Params:
    def __init__(self, quick):
        self.quick = quick
        self.interval = 1.0 if quick else 5.0      # health interval (s)
        self.check_timeout = 1.0
        self.ready_max = 20.0 if quick else 60.0
        self.command_timeout = 10.0
        self.settle = 2.0            # first checks are spread over min(interval, 1 s), + timeout
        self.cpu_window = 2.0 if quick else 5.0
        self.cutovers = 40 if quick else 200
        self.cutover_budget = 10.0 if quick else 25.0
        self.status_one = 5
        self.status_one_budget = 10.0
        self.status_all = 3
        self.status_all_budget = 10.0 if quick else 20.0
        self.storm = 3.0 if quick else 10.0
        self.storm_pace = 0.05
        self.exit_wait = 20.0


class SizeRun:
    """Starts the backends and the daemon for one size, measures, and stops them."""

    def __init__(self, args, params, services, per_service, rng):
        self.args = args
        self.p = params
        self.services = services
        self.per_service = per_service
        self.half = per_service // 2
        self.backends = services * per_service
        self.rng = rng
        self.dir = os.path.join(args.workdir, f"{services}x{per_service}")
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        self.socket_path = os.path.join(self.dir, "admin.sock")
        self.state_dir = os.path.join(self.dir, "state")
        self.config_path = os.path.join(self.dir, "switchyard.yaml")
        self.log_path = os.path.join(self.dir, "switchyard.log")
        base = args.port_base
        self.stable_ports = [base, base + 1]
        self.storm_ports = [base + 2, base + 3]
        self.service_ports = [base + 10 + i for i in range(services)]
        self.listeners = {}          # port -> Popen
        self.daemon = None
        self.r = {"size": f"{services}x{per_service}", "backends": self.backends, "notes": [], "problems": [],
                  "load_start": loadavg()}

    def note(self, text):
        self.r["notes"].append(text)

    def problem(self, text):
        """A note that also fails the smoke mode: something a healthy daemon never does."""
        self.note(text)
        self.r["problems"].append(text)

    # --- setup and teardown ---
    def check_ports(self):
        busy = [p for p in self.stable_ports + self.storm_ports if not port_free("0.0.0.0", p)]
        busy += [p for p in self.service_ports if not port_free("127.0.0.1", p)]
        if busy:
            raise RuntimeError(f"ports in use: {busy[:10]}{' ...' if len(busy) > 10 else ''} "
                               f"(set CONTROL_PORT_BASE to a free range)")

    def start_listener(self, port):
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "backend", str(port)],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        record_pid(self.args.workdir, proc.pid)
        self.listeners[port] = proc
        if proc.stdout.readline().strip() != b"listening":
            raise RuntimeError(f"backend listener on port {port} did not start")

    def accepted(self):
        """Connections the running listeners have accepted so far (None if one did not say)."""
        import select
        total = 0
        for proc in self.listeners.values():
            proc.send_signal(signal.SIGUSR1)
            ready, _, _ = select.select([proc.stdout], [], [], 2.0)
            line = proc.stdout.readline() if ready else b""
            if not line.strip().isdigit():
                return None
            total += int(line)
        return total

    def stop_listener(self, port):
        proc = self.listeners.pop(port, None)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def write_config(self):
        p = self.p
        lines = [
            "# generated by bench/control.sh",
            f"admin: {{ socket: {self.socket_path} }}",
            f"state_file: {os.path.join(self.state_dir, 'state.json')}",
            f"workers: {self.args.workers}",
            "shutdown_grace: 5s",
            "log: { level: warn }",
            "services:",
        ]
        k = 0
        for i in range(self.services):
            lines += [
                f"  - name: s{i}",
                f"    listen: 127.0.0.1:{self.service_ports[i]}",
                f"    health: {{ type: tcp, interval: {int(p.interval * 1000)}ms, "
                f"timeout: {int(p.check_timeout * 1000)}ms, rise: 1, fall: 1 }}",
                # The readiness probes' connections are closed by the backend before any byte:
                # passive ejection would count them as failures.
                "    outlier_detection: { enabled: false }",
                "    pools:",
            ]
            for colour in ("blue", "green"):
                lines.append(f"      {colour}:")
                for j in range(self.half):
                    ports = self.stable_ports if j % 2 == 0 else self.storm_ports
                    port = ports[(j // 2) % len(ports)]
                    lines.append(f"        - {{ address: {backend_address(k)}:{port} }}")
                    k += 1
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start_daemon(self):
        log = open(self.log_path, "ab")
        self.t_start = time.monotonic()
        self.daemon = subprocess.Popen([self.args.switchyard, "-c", self.config_path], stdout=log,
                                       stderr=log, stdin=subprocess.DEVNULL, preexec_fn=raise_nofile)
        log.close()
        record_pid(self.args.workdir, self.daemon.pid)

    def teardown(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait(10)
        for port in list(self.listeners):
            self.stop_listener(port)

    # --- phases ---
    def admin(self, command):
        return admin(self.socket_path, command, self.p.command_timeout)

    def alive(self):
        return self.daemon.poll() is None

    def wait_ready(self):
        """Until every service listener accepts and `status SERVICE` is answered."""
        deadline = self.t_start + self.p.ready_max
        pending = list(self.service_ports)
        while pending and time.monotonic() < deadline and self.alive():
            still = []
            for port in pending:
                try:
                    with socket.create_connection(("127.0.0.1", port),
                                                  timeout=max(0.05, min(1.0, deadline - time.monotonic()))):
                        pass
                except OSError:
                    still.append(port)
            pending = still
            if pending:
                time.sleep(0.02)
        if pending:
            self.problem(f"ready: {len(pending)} of {self.services} listeners not accepting after "
                      f"{self.p.ready_max:.0f} s" if self.alive() else "ready: the daemon exited")
            return None
        probe = f"status s{self.services - 1}"
        while time.monotonic() < deadline and self.alive():
            left = deadline - time.monotonic()
            secs, reply, err = admin(self.socket_path, probe, max(0.05, left))
            if reply is not None and json.loads(reply).get("ok"):
                return time.monotonic() - self.t_start
            if err and err != "timeout":
                time.sleep(0.02)     # the socket does not exist yet
        self.problem(f"ready: listeners up, `{probe}` unanswered {self.p.ready_max:.0f} s after start"
                  if self.alive() else "ready: the daemon exited")
        return None

    def measure_commands(self, name, make_command, count, budget, pace=0.0, expect_ok=True):
        """Up to `count` commands, none started after `budget` seconds. Returns the samples and
        the last reply."""
        samples, errors, first_error = [], 0, None
        end = time.monotonic() + budget
        last_reply = None
        while len(samples) < count and time.monotonic() < end and self.alive():
            secs, reply, err = self.admin(make_command())
            samples.append(secs)
            if reply is not None:
                last_reply = reply
                if expect_ok and not json.loads(reply).get("ok"):
                    errors += 1
                    first_error = first_error or reply.decode(errors="replace").strip()[:200]
            elif err != "timeout":
                errors += 1
                first_error = first_error or err
            if pace:
                time.sleep(pace)
        timeouts = sum(1 for s in samples if s == TIMEOUT)
        text = f"{name}: {len(samples)} commands"
        if len(samples) < count and count < 1 << 30:
            text += f" of {count} (budget {budget:.0f} s)"
        if timeouts:
            text += f", {timeouts} unanswered within {self.p.command_timeout:.0f} s"
        if errors:
            text += f", {errors} errors (first: {first_error})"
        (self.problem if timeouts or errors else self.note)(text)
        return samples, last_reply

    def count_health(self, reply):
        """(up, down) over every backend in a full `status` reply."""
        up = down = 0
        for svc in json.loads(reply).get("services", []):
            for pool in svc.get("pools", {}).values():
                for b in pool.get("backends", []):
                    if b.get("health") == "up":
                        up += 1
                    elif b.get("health") == "down":
                        down += 1
        return up, down

    def run(self):
        self.check_ports()
        drops0 = listen_drops()
        try:
            self.measure()
        finally:
            drops = listen_drops() - drops0
            if drops:
                self.note(f"the kernel dropped {drops} connections at full accept queues meanwhile "
                          f"(ListenOverflows + ListenDrops, system-wide)")

    def measure(self):
        p = self.p
        for port in self.stable_ports + self.storm_ports:
            self.start_listener(port)
        self.write_config()
        self.start_daemon()
        pid = self.daemon.pid

        # 1. ready
        self.r["ready"] = self.wait_ready()
        if not self.alive():
            self.problem(f"the daemon exited with {self.daemon.returncode} before it was ready")
            return

        # 2. settle: every backend's first check has been issued and answered or timed out
        time.sleep(max(0.0, self.t_start + p.settle - time.monotonic()))
        self.r["state_fresh"] = dir_bytes(self.state_dir)

        # 3. quiet window: CPU per health result, then RSS. The checks done are counted where
        # they land, at the listeners (every backend is up here, and nothing else connects).
        acc0, cpu0, t0 = self.accepted(), benchlib.tree_cpu_seconds(pid), time.monotonic()
        time.sleep(p.cpu_window)
        acc1, cpu1, t1 = self.accepted(), benchlib.tree_cpu_seconds(pid), time.monotonic()
        expected = self.backends * (t1 - t0) / p.interval
        checks = acc1 - acc0 if acc0 is not None and acc1 is not None else None
        if checks:
            # /proc counts CPU in clock ticks: below one tick, say "< one tick's worth".
            self.r["cpu_us_per_check"] = (cpu1 - cpu0) * 1e6 / checks
            self.r["cpu_tick_us_per_check"] = 1e6 / benchlib.CLK_TCK / checks
        self.r["rss_kib"] = benchlib.tree_rss_kib(pid)
        self.note(f"quiet window: {cpu1 - cpu0:.2f} CPU-s in {t1 - t0:.1f} s "
                  f"({100 * (cpu1 - cpu0) / (t1 - t0):.0f}% of a core), {checks if checks is not None else '?'} "
                  f"checks reached a listener of ~{expected:,.0f} due; {fd_count(pid)} open fds")

        # 4. cutover round trips
        colour = {}

        def next_cutover():
            svc = self.rng.randrange(self.services)
            colour[svc] = "blue" if colour.get(svc, "blue") == "green" else "green"
            return f"cutover s{svc} {colour[svc]}"
        self.r["cutover"], _ = self.measure_commands("cutover", next_cutover, p.cutovers, p.cutover_budget)
        self.r["state_after"] = dir_bytes(self.state_dir)

        # 5. status of one service, and of all
        self.r["status_one"], _ = self.measure_commands(
            "status SERVICE", lambda: f"status s{self.rng.randrange(self.services)}",
            p.status_one, p.status_one_budget)
        self.r["status_all"], reply = self.measure_commands("status", lambda: "status", p.status_all,
                                                            p.status_all_budget)
        if reply is not None:
            up, down = self.count_health(reply)
            (self.note if up == self.backends else self.problem)(
                f"before the storm: {up} backends up, {down} down (expected {self.backends} up)")
        status_all_fast = reply is not None and percentile(self.r["status_all"], 50) < 2.0

        # 6. health storm: the storm ports' listeners go away; admin round trips meanwhile
        storm_start = time.monotonic()
        for port in self.storm_ports:
            self.stop_listener(port)
        self.r["storm"], _ = self.measure_commands(
            "storm status SERVICE", lambda: f"status s{self.rng.randrange(self.services)}",
            1 << 30, p.storm, pace=p.storm_pace)   # as many as fit in the storm window
        if status_all_fast and self.alive():
            secs, reply, err = self.admin("status")
            if reply is not None:
                up, down = self.count_health(reply)
                (self.note if down == self.backends // 2 else self.problem)(
                    f"{time.monotonic() - storm_start:.1f} s into the storm: {up} up, {down} down "
                    f"(expected {self.backends // 2} down)")

        # 7. SIGTERM -> exit, still in the storm (no client connections are open)
        if self.alive():
            t0 = time.monotonic()
            self.daemon.send_signal(signal.SIGTERM)
            try:
                rc = self.daemon.wait(p.exit_wait)
                self.r["exit"] = time.monotonic() - t0
                if rc != 0:
                    self.problem(f"exit status after SIGTERM: {rc}")
            except subprocess.TimeoutExpired:
                self.r["exit"] = TIMEOUT
                self.problem(f"no exit within {p.exit_wait:.0f} s of SIGTERM: killed")
        else:
            self.problem(f"the daemon exited with {self.daemon.returncode} during the run")

    def scan_log(self):
        """Warnings and errors the daemon logged (the config sets level warn), summarised."""
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        if not lines:
            return
        kinds = {}
        for line in lines:
            # Group lines by their text without numbers and addresses.
            text = re.sub(r"^[-\d]+ [\d:.]+ ", "", line)      # without the timestamp
            key = re.sub(r"[0-9a-f]{6,}|\d+", "N", text)[:120]
            kinds.setdefault(key, [0, text])[0] += 1
        top = sorted(kinds.values(), key=lambda v: -v[0])[:3]
        self.note(f"daemon log: {len(lines)} lines; most frequent: "
                  + " | ".join(f"{n}x `{line[:160]}`" for n, line in top))


# --- table ------------------------------------------------------------------------------------

def fmt_ms(seconds):
    if seconds is None:
        return "–"
    if seconds == TIMEOUT:
        return "timeout"
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:,.0f}"


def fmt_s(seconds, limit):
    if seconds is None:
        return f"> {limit:.0f}"
    if seconds == TIMEOUT:
        return f"> {limit:.0f}"
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"


def fmt_kib(n):
    if n is None:
        return "–"
    kib = n / 1024
    return f"{kib:.1f}" if kib < 100 else f"{kib:,.0f}"


def table(results, params, base_rss):
    header = ["services × backends", "backends", "ready, s", "cutover median, ms", "cutover p99, ms",
              "status SERVICE, ms", "status, ms", "storm: admin p99, ms", "SIGTERM → exit, s",
              "state KiB: fresh → after cutovers", "RSS, MiB", "RSS per backend, KiB",
              "CPU per health result, µs"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "|".join(["---:"] * (len(header) - 1)) + "|"]
    for r in results:
        rss = r.get("rss_kib")
        per_backend = "–"
        if rss is not None and base_rss is not None and r["backends"] > 4:
            per_backend = f"{(rss - base_rss) / (r['backends'] - 4):.1f}"
        cpu = r.get("cpu_us_per_check")
        row = [
            r["size"], f"{r['backends']:,}",
            fmt_s(r.get("ready"), params.ready_max) if "ready" in r else "–",
            fmt_ms(percentile(r.get("cutover"), 50)), fmt_ms(percentile(r.get("cutover"), 99)),
            fmt_ms(percentile(r.get("status_one"), 50)), fmt_ms(percentile(r.get("status_all"), 50)),
            fmt_ms(percentile(r.get("storm"), 99)),
            fmt_s(r.get("exit"), params.exit_wait) if "exit" in r else "–",
            f"{fmt_kib(r.get('state_fresh'))} → {fmt_kib(r.get('state_after'))}" if "state_fresh" in r else "–",
            f"{rss / 1024:.1f}" if rss is not None else "–",
            per_backend,
            "–" if cpu is None else f"< {r['cpu_tick_us_per_check']:,.0f}" if cpu == 0 else f"{cpu:,.1f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


# --- main -------------------------------------------------------------------------------------

def parse_sizes(text):
    sizes = []
    for item in text.split():
        m = re.fullmatch(r"(\d+)x(\d+)", item)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 2 or int(m.group(2)) % 2:
            print(f"control_driver: bad size '{item}': want SERVICESxBACKENDS, "
                  f"backends per service even and >= 2 (half blue, half green)", file=sys.stderr)
            raise SystemExit(2)
        sizes.append((int(m.group(1)), int(m.group(2))))
    return sizes


def version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def run(args):
    params = Params(args.quick)
    sizes = parse_sizes(args.sizes)
    if (1, 4) not in sizes and args.base:
        sizes.insert(0, (1, 4))          # the RSS base
    rng = random.Random(args.seed)
    load_start = loadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t_run = time.monotonic()
    results = []
    for services, per_service in sizes:
        size = SizeRun(args, params, services, per_service, rng)
        print(f"[control {time.strftime('%H:%M:%S')}] {services}x{per_service}: "
              f"{services * per_service} backends, load {size.r['load_start']}", file=sys.stderr, flush=True)
        try:
            size.run()
        except RuntimeError as exc:
            size.problem(f"setup failed: {exc}")
        finally:
            size.teardown()
        size.scan_log()
        results.append(size.r)
    base = next((r.get("rss_kib") for r in results if r["size"] == "1x4"), None)

    out = [
        f"#### switchyard control plane growth — {started}",
        "",
        f"{version(args.switchyard)} (`{args.switchyard}`); "
        f"{'QUICK smoke mode (health interval 1 s, fewer samples: not comparable); ' if params.quick else ''}"
        f"each service has a blue and a green pool, the backends per service split half and half; "
        f"health `tcp`, interval {params.interval:.0f} s, timeout {params.check_timeout:.0f} s, rise 1, fall 1; "
        f"`workers: {args.workers}`, metrics off, log level warn; "
        f"load average at start {load_start}, at end {loadavg()}; {time.monotonic() - t_run:.0f} s in all.",
        "",
    ]
    out += table(results, params, base)
    out += [
        "",
        f"Timeouts: ready within {params.ready_max:.0f} s of start, admin commands "
        f"{params.command_timeout:.0f} s each (an unanswered one counts as `timeout` and ranks last in "
        f"the percentiles), exit within {params.exit_wait:.0f} s of SIGTERM. Cutover: "
        f"{params.cutovers} commands; status: median of {params.status_one} (`status SERVICE`) and "
        f"{params.status_all} (`status`); storm: `status SERVICE` every {params.storm_pace * 1000:.0f} ms "
        f"for {params.storm:.0f} s after half of the backends' listeners went away. RSS per backend: "
        f"beyond the 1x4 run. CPU per health result: daemon CPU over a {params.cpu_window:.0f} s quiet "
        f"window ÷ the checks that reached a backend listener in it (all backends are up then).",
        "",
        "Notes per size:",
    ]
    for r in results:
        out.append(f"- **{r['size']}** (load {r['load_start']}): " + "; ".join(r["notes"]))
    rc = 0
    if params.quick:
        # Smoke mode: every phase must have worked (a full run reports timeouts as results).
        problems = [f"{r['size']}: {p}" for r in results for p in r["problems"]]
        out.append("")
        out.append("smoke: PASS" if not problems else "smoke: FAIL: " + "; ".join(problems))
        rc = 1 if problems else 0
    text = "\n".join(out)
    print(text, flush=True)
    if args.out:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return rc


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("backend")
    b.add_argument("port", type=int)
    r = sub.add_parser("run")
    r.add_argument("--switchyard", required=True)
    r.add_argument("--workdir", required=True)
    r.add_argument("--sizes", default="1x4 1x40 10x4 10x40 100x4 100x40 1000x4 1000x40")
    r.add_argument("--quick", action="store_true")
    r.add_argument("--workers", default="1")
    r.add_argument("--port-base", type=int, default=23000)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--no-base", dest="base", action="store_false",
                   help="do not add a 1x4 run as the RSS base when SIZES lacks one")
    r.add_argument("--out", default="")
    args = parser.parse_args()
    if args.cmd == "backend":
        run_backend(args.port)
        return 0

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    try:
        return run(args)
    except KeyboardInterrupt:
        # Each size stops what it started on the way out (SizeRun.teardown).
        print("control_driver: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
