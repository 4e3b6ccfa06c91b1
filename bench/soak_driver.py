#!/usr/bin/env python3
"""Soak driver for bench/soak.sh: mixed traffic through switchyard while backends
are killed and restarted, pools cut over, splits changed and the config reloaded;
reports client errors switchyard caused, RSS growth and fd growth of the daemon.

Everything runs on 127.0.0.1. Every process it starts (the daemon, the backends)
is stopped by its PID; every loop has a deadline.

  soak_driver.py run --switchyard BIN --workdir DIR --duration SECONDS
  soak_driver.py backend NAME PORT      (internal: one echo backend process)
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HOST = "127.0.0.1"


# --- backend process ---------------------------------------------------------------------

def run_backend(name, port):
    """An echo server that first says its name: "NAME\\n", then echoes every byte."""
    import selectors

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(1024)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    pending = {}   # socket -> bytes not yet written back
    hello = (name + "\n").encode()

    def close(s):
        sel.unregister(s)
        pending.pop(s, None)
        s.close()

    while True:
        for key, events in sel.select(timeout=1.0):
            s = key.fileobj
            if s is listener:
                for _ in range(64):
                    try:
                        c, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        time.sleep(0.01)   # EMFILE and the like: back off, never spin
                        break
                    c.setblocking(False)
                    pending[c] = hello
                    sel.register(c, selectors.EVENT_READ | selectors.EVENT_WRITE, None)
                continue
            try:
                if events & selectors.EVENT_READ and len(pending.get(s, b"")) < 1 << 20:
                    data = s.recv(65536)
                    if not data:
                        close(s)
                        continue
                    pending[s] = pending.get(s, b"") + data
                if pending.get(s):
                    n = s.send(pending[s])
                    pending[s] = pending[s][n:]
                sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending.get(s) else 0), None)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                close(s)


# --- helpers --------------------------------------------------------------------------------

def record_pid(workdir, pid):
    # bench/soak.sh stops whatever is listed here if the driver itself had to be killed.
    with open(os.path.join(workdir, "pids"), "a") as f:
        f.write(f"{pid}\n")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Backend:
    def __init__(self, name, workdir):
        self.name = name
        self.workdir = workdir
        self.port = 0
        self.proc = None
        self.log = open(os.path.join(workdir, f"backend-{name}.log"), "ab")

    def start(self, deadline=10.0):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "backend", self.name, str(self.port)],
                                     stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        record_pid(self.workdir, self.proc.pid)
        line = self.proc.stdout.readline()   # the bound port, once it listens
        if not line:
            # The old process's port may linger a moment after SIGKILL.
            self.proc.wait(5)
            end = time.monotonic() + deadline
            while time.monotonic() < end:
                time.sleep(0.2)
                self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "backend", self.name,
                                              str(self.port)], stdout=subprocess.PIPE, stderr=self.log,
                                             stdin=subprocess.DEVNULL)
                record_pid(self.workdir, self.proc.pid)
                line = self.proc.stdout.readline()
                if line:
                    break
                self.proc.wait(5)
            if not line:
                raise RuntimeError(f"backend {self.name} would not start on port {self.port}")
        self.port = int(line)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.short_ok = 0
        self.stream_ok = 0
        self.bytes = 0
        self.errors = []          # (t0, t1, backend or None, kind, detail)
        self.in_flight = 0

    def add_error(self, t0, t1, backend, kind, detail):
        with self.lock:
            self.errors.append((t0, t1, backend, kind, detail))


class Soak:
    def __init__(self, args):
        self.args = args
        self.workdir = args.workdir
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.stats = Stats()
        self.kills = []           # (backend name, time killed)
        self.kills_lock = threading.Lock()
        self.chaos = {"cutover": 0, "cutover_refused": 0, "split": 0, "split_refused": 0, "kill": 0,
                      "restart": 0, "reload": 0, "reload_failed": 0, "scrape": 0, "scrape_failed": 0,
                      "admin_unexpected": 0}
        self.problems = []
        self.samples = []         # (t, rss KiB, fds) under load
        self.checkpoints = []     # (label, rss KiB, fds) at quiet moments
        self.rng = random.Random(args.seed)
        self.backends = {n: Backend(n, self.workdir) for n in ("blue-1", "blue-2", "green-1", "green-2")}
        self.daemon = None
        self.listen_port = free_port()
        self.metrics_port = free_port()
        self.socket_path = os.path.join(self.workdir, "admin.sock")
        self.config_path = os.path.join(self.workdir, "switchyard.yaml")
        self.reload_toggle = False

    # --- setup ---
    def write_config(self):
        weight = 90 if self.reload_toggle else 100
        b = self.backends
        text = f"""# bench/soak.sh
admin: {{ socket: {self.socket_path} }}
metrics: {{ listen: {HOST}:{self.metrics_port} }}
state_file: {os.path.join(self.workdir, "state.json")}
workers: 2
shutdown_grace: 5s
log: {{ level: warn }}
services:
  - name: soak
    listen: {HOST}:{self.listen_port}
    split: {{ blue: 100, green: 0 }}
    drain_timeout: 120s
    timeouts: {{ connect: 2s, idle: 60s }}
    retries: 3
    health: {{ type: tcp, interval: 500ms, timeout: 400ms, rise: 1, fall: 1 }}
    outlier_detection: {{ enabled: false }}
    pools:
      blue:
        - {{ address: {HOST}:{b['blue-1'].port}, weight: {weight} }}
        - {{ address: {HOST}:{b['blue-2'].port} }}
      green:
        - {{ address: {HOST}:{b['green-1'].port} }}
        - {{ address: {HOST}:{b['green-2'].port} }}
"""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def start(self):
        for b in self.backends.values():
            b.start()
        self.write_config()
        self.daemon_log = open(os.path.join(self.workdir, "switchyard.log"), "ab")
        self.daemon = subprocess.Popen([self.args.switchyard, "-c", self.config_path], stdout=self.daemon_log,
                                       stderr=self.daemon_log, stdin=subprocess.DEVNULL)
        record_pid(self.workdir, self.daemon.pid)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"switchyard exited with {self.daemon.returncode} at start; see {self.workdir}")
            try:
                if self.admin("status soak").get("ok"):
                    with socket.create_connection((HOST, self.listen_port), timeout=1):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("switchyard did not become ready in 20 s")

    def admin(self, command, timeout=10.0):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.socket_path)
            s.sendall(command.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.decode())

    # --- traffic ---
    def explained(self, t0, t1, backend):
        with self.kills_lock:
            for name, tk in self.kills:
                if backend is not None:
                    if name == backend and t0 - 0.05 <= tk <= t1 + 0.05:
                        return True
                elif t0 - 0.5 <= tk <= t1 + 0.5:
                    return True
        return False

    def one_connection(self, stream_seconds):
        """One client connection: hello, then echoed payloads. Returns (backend, bytes)."""
        backend = None
        t0 = time.monotonic()
        s = socket.create_connection((HOST, self.listen_port), timeout=10)
        try:
            s.settimeout(10)
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionError("closed before the backend's hello")
                buf += chunk
            line, rest = buf.split(b"\n", 1)
            backend = line.decode(errors="replace")
            if backend not in self.backends:
                raise ConnectionError(f"unexpected hello {line[:40]!r}")
            if rest:
                raise ConnectionError("bytes after the hello before any were sent")
            total = 0
            end = t0 + stream_seconds
            while True:
                payload = self.rng.randbytes(self.rng.randint(1, 4096) if stream_seconds == 0 else 16384)
                s.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    chunk = s.recv(len(payload) - len(got))
                    if not chunk:
                        raise ConnectionError(f"closed after {len(got)} of {len(payload)} echoed bytes")
                    got += chunk
                if got != payload:
                    raise ConnectionError("echo mismatch")
                total += len(payload)
                if stream_seconds == 0 or time.monotonic() >= end or self.stop.is_set():
                    break
                time.sleep(0.01)
            return backend, total
        except Exception as exc:   # noqa: BLE001 - every failure is classified below
            exc.backend = backend
            raise
        finally:
            s.close()

    def traffic_thread(self, kind, rate):
        while not self.stop.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            stream_seconds = 0 if kind == "short" else self.rng.uniform(3, 15)
            t0 = time.monotonic()
            with self.stats.lock:
                self.stats.in_flight += 1
            try:
                backend, n = self.one_connection(stream_seconds)
                with self.stats.lock:
                    if kind == "short":
                        self.stats.short_ok += 1
                    else:
                        self.stats.stream_ok += 1
                    self.stats.bytes += n
            except Exception as exc:   # noqa: BLE001
                self.stats.add_error(t0, time.monotonic(), getattr(exc, "backend", None), kind,
                                     f"{type(exc).__name__}: {exc}")
            finally:
                with self.stats.lock:
                    self.stats.in_flight -= 1
            if kind == "short":
                # Paced so TIME_WAIT sockets on loopback stay far from the ephemeral range.
                time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t0)))

    # --- chaos ---
    def chaos_thread(self):
        actions = ["cutover", "kill", "reload", "split", "scrape", "cutover", "kill", "scrape"]
        i = 0
        killed = None          # (backend, restart at)
        colour = "blue"
        while not self.stop.wait(self.args.chaos_interval):
            if self.paused.is_set():
                continue
            now = time.monotonic()
            if killed and now >= killed[1]:
                try:
                    killed[0].start()
                    self.chaos["restart"] += 1
                except RuntimeError as exc:
                    self.problems.append(str(exc))
                killed = None
            action = actions[i % len(actions)]
            i += 1
            try:
                if action == "cutover":
                    colour = "green" if colour == "blue" else "blue"
                    r = self.admin(f"cutover soak {colour}")
                    self.count_reply("cutover", r)
                elif action == "split":
                    r = self.admin(f"split soak blue={self.rng.randint(1, 100)} green={self.rng.randint(1, 100)}")
                    self.count_reply("split", r)
                elif action == "reload":
                    self.reload_toggle = not self.reload_toggle
                    self.write_config()
                    r = self.admin("reload")
                    self.chaos["reload"] += 1
                    if not r.get("ok"):
                        self.chaos["reload_failed"] += 1
                        self.problems.append(f"reload failed: {r}")
                elif action == "kill" and killed is None:
                    victim = self.backends[self.rng.choice(sorted(self.backends))]
                    with self.kills_lock:
                        self.kills.append((victim.name, time.monotonic()))
                    victim.kill()
                    with self.kills_lock:
                        self.kills.append((victim.name, time.monotonic()))
                    self.chaos["kill"] += 1
                    killed = (victim, time.monotonic() + self.rng.uniform(1.5, 4.0))
                elif action == "scrape":
                    with urllib.request.urlopen(f"http://{HOST}:{self.metrics_port}/metrics", timeout=10) as resp:
                        body = resp.read()
                    self.chaos["scrape"] += 1
                    if b"switchyard_" not in body:
                        self.chaos["scrape_failed"] += 1
            except (OSError, ValueError) as exc:
                if action == "scrape":
                    self.chaos["scrape_failed"] += 1
                self.problems.append(f"{action}: {type(exc).__name__}: {exc}")
        if killed:
            try:
                killed[0].start()
                self.chaos["restart"] += 1
            except RuntimeError as exc:
                self.problems.append(str(exc))

    def count_reply(self, what, reply):
        self.chaos[what] += 1
        if reply.get("ok"):
            return
        # A safety refusal (the target pool has no healthy backend right after a kill) is
        # switchyard doing its job; anything else is a problem.
        if reply.get("code") == "refused":
            self.chaos[what + "_refused"] += 1
        else:
            self.chaos["admin_unexpected"] += 1
            self.problems.append(f"{what}: unexpected reply {reply}")

    # --- measurement ---
    def sampler_thread(self):
        while not self.stop.wait(2.0):
            try:
                self.samples.append((time.monotonic(), proc_rss_kib(self.daemon.pid), proc_fds(self.daemon.pid)))
            except OSError:
                return

    def quiesce_and_measure(self, label):
        """Stops new traffic, waits for open connections to end, measures, resumes."""
        self.paused.set()
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with self.stats.lock:
                idle = self.stats.in_flight == 0
            if idle:
                try:
                    st = self.admin("status soak")
                    svc = st["services"][0] if "services" in st else st
                    if svc.get("active_connections", 0) == 0:
                        break
                except (OSError, ValueError, KeyError, IndexError):
                    pass
            time.sleep(0.1)
        # The minimum over a second and a half: a health check's socket in flight is not growth.
        rss, fds = [], []
        for _ in range(6):
            rss.append(proc_rss_kib(self.daemon.pid))
            fds.append(proc_fds(self.daemon.pid))
            time.sleep(0.25)
        self.checkpoints.append((label, min(rss), min(fds)))
        self.paused.clear()

    # --- run ---
    def run(self):
        duration = self.args.duration
        self.start()
        threads = [threading.Thread(target=self.traffic_thread, args=("short", self.args.rate / self.args.short),
                                    daemon=True) for _ in range(self.args.short)]
        threads += [threading.Thread(target=self.traffic_thread, args=("stream", 0), daemon=True)
                    for _ in range(self.args.streams)]
        for t in threads:
            t.start()
        t_start = time.monotonic()
        warmup = min(20.0, duration / 6)
        self.stop.wait(warmup)
        self.quiesce_and_measure("baseline")
        chaos = threading.Thread(target=self.chaos_thread, daemon=True)
        sampler = threading.Thread(target=self.sampler_thread, daemon=True)
        chaos.start()
        sampler.start()
        next_checkpoint = time.monotonic() + self.args.checkpoint
        end = t_start + duration
        while time.monotonic() < end:
            if self.daemon.poll() is not None:
                self.problems.append(f"switchyard exited with {self.daemon.returncode} during the soak")
                break
            if time.monotonic() >= next_checkpoint and end - time.monotonic() > self.args.checkpoint / 2:
                self.quiesce_and_measure(f"t+{int(time.monotonic() - t_start)}s")
                next_checkpoint = time.monotonic() + self.args.checkpoint
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        self.stop.set()
        chaos.join(30)
        for t in threads:
            t.join(30)
        sampler.join(5)
        if self.daemon.poll() is None:
            self.stop.clear()
            self.quiesce_and_measure("end")
            self.stop.set()
        return time.monotonic() - t_start

    def shutdown(self):
        rc = None
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                rc = self.daemon.wait(20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(10)
                self.problems.append("switchyard did not exit within 20 s of SIGTERM")
        elif self.daemon:
            rc = self.daemon.returncode
        for b in self.backends.values():
            if b.alive():
                b.proc.send_signal(signal.SIGTERM)
                try:
                    b.proc.wait(5)
                except subprocess.TimeoutExpired:
                    b.kill()
        return rc

    def report(self, elapsed, rc):
        s = self.stats
        explained = [e for e in s.errors if self.explained(e[0], e[1], e[2])]
        unexplained = [e for e in s.errors if not self.explained(e[0], e[1], e[2])]
        c = self.chaos
        lines = [
            f"soak: {elapsed:.0f} s, {s.short_ok + s.stream_ok} connections served "
            f"({s.short_ok} short, {s.stream_ok} streams), {s.bytes / 1e6:.1f} MB echoed",
            f"soak: chaos: {c['cutover']} cutovers ({c['cutover_refused']} refused), {c['split']} splits "
            f"({c['split_refused']} refused), {c['kill']} backend kills, {c['restart']} restarts, "
            f"{c['reload']} reloads ({c['reload_failed']} failed), {c['scrape']} metrics scrapes "
            f"({c['scrape_failed']} failed)",
            f"soak: client errors: {len(explained)} explained by a killed backend, "
            f"{len(unexplained)} attributable to switchyard",
        ]
        for e in unexplained[:20]:
            lines.append(f"soak:   unexplained {e[3]} error at t={e[1]:.1f} backend={e[2]}: {e[4]}")
        ok = True
        if self.checkpoints:
            base = self.checkpoints[0]
            last = self.checkpoints[-1]
            rss_growth = (last[1] - base[1]) / 1024
            fd_growth = last[2] - base[2]
            cps = ", ".join(f"{label} {rss / 1024:.1f} MiB/{fds} fds" for label, rss, fds in self.checkpoints)
            lines.append(f"soak: RSS {base[1] / 1024:.1f} -> {last[1] / 1024:.1f} MiB ({rss_growth:+.1f} MiB, "
                         f"limit +{self.args.rss_limit_mb} MiB); fds {base[2]} -> {last[2]} ({fd_growth:+d}, "
                         f"limit +{self.args.fd_limit}) [quiet checkpoints: {cps}]")
            if self.samples:
                peak_rss = max(x[1] for x in self.samples) / 1024
                peak_fds = max(x[2] for x in self.samples)
                med_fds = statistics.median(x[2] for x in self.samples)
                lines.append(f"soak: under load: peak RSS {peak_rss:.1f} MiB, peak fds {peak_fds}, median fds {med_fds:.0f}")
            if rss_growth > self.args.rss_limit_mb:
                ok = False
                lines.append("soak: FAIL: RSS grew beyond the limit")
            if fd_growth > self.args.fd_limit:
                ok = False
                lines.append("soak: FAIL: open fds grew beyond the limit")
        else:
            ok = False
            lines.append("soak: FAIL: no measurement (the daemon died before the baseline?)")
        if unexplained:
            ok = False
            lines.append("soak: FAIL: client errors switchyard caused")
        if s.short_ok + s.stream_ok == 0:
            ok = False
            lines.append("soak: FAIL: no connection was served")
        for p in self.problems[:20]:
            lines.append(f"soak:   problem: {p}")
        if self.problems:
            ok = False
            lines.append(f"soak: FAIL: {len(self.problems)} problem(s) with the daemon or its admin interface")
        if rc != 0:
            ok = False
            lines.append(f"soak: FAIL: switchyard exited with {rc} after SIGTERM (expected 0)")
        lines.append("soak: PASS" if ok else f"soak: FAIL (logs in {self.workdir})")
        print("\n".join(lines), flush=True)
        return ok


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("backend")
    b.add_argument("name")
    b.add_argument("port", type=int)
    r = sub.add_parser("run")
    r.add_argument("--switchyard", required=True)
    r.add_argument("--workdir", required=True)
    r.add_argument("--duration", type=float, default=3600)
    r.add_argument("--rate", type=float, default=150, help="short connections per second, in total")
    r.add_argument("--short", type=int, default=6, help="threads opening short connections")
    r.add_argument("--streams", type=int, default=4, help="concurrent long streams")
    r.add_argument("--chaos-interval", type=float, default=2.0, help="seconds between chaos actions")
    r.add_argument("--checkpoint", type=float, default=900, help="seconds between quiet measurements")
    r.add_argument("--rss-limit-mb", type=float, default=10)
    r.add_argument("--fd-limit", type=int, default=2)
    r.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.cmd == "backend":
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        run_backend(args.name, args.port)
        return 0
    def interrupted(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    soak = Soak(args)
    rc = None
    elapsed = 0.0
    try:
        elapsed = soak.run()
    except (RuntimeError, OSError) as exc:
        soak.problems.append(f"setup: {exc}")
    except KeyboardInterrupt:
        soak.problems.append("interrupted")
        soak.stop.set()
    finally:
        rc = soak.shutdown()
    return 0 if soak.report(elapsed, rc) else 1


if __name__ == "__main__":
    sys.exit(main())
