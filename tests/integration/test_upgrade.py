"""`switchyardctl upgrade`: a new binary takes the very same listening sockets while the old
generation drains; nothing is cut, nothing refused. A new binary that exits, hangs or speaks
another hand-over version is killed and the running daemon goes on unchanged."""

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from clients import close_times, connect, http_get, recv_exactly, wait_closed
from daemon import metrics_daemon, run_switchyard, service, start_socket_activated, switchyard_bin
from netutil import free_address, split_address
from notify_socket import NotifySocket
from test_health import HttpHealthBackend, backend_of, status
from test_metrics import ended, parse, scrape, total, value
from waiters import wait_until


# --- helpers ---------------------------------------------------------------

def _proc_alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line for line in f)
    except FileNotFoundError:
        return False


def _tcp_inode(local, remote):
    """The inode of the TCP socket local -> remote ((host, port) pairs), or None."""
    def parse(field):
        ip, port = field.split(":")
        return socket.inet_ntoa(struct.pack("<I", int(ip, 16))), int(port, 16)
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if parse(cols[1]) == local and parse(cols[2]) == remote:
                return cols[9]
    return None


def _owner(client, listen, pids):
    """Which of `pids` holds the proxy side of the client connection `client`."""
    host, port, _ = split_address(listen)
    inode = _tcp_inode((host, port), client.getsockname())
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                        return pid
                except OSError:
                    continue
        except FileNotFoundError:
            continue
    return None


class EchoStream(threading.Thread):
    """One long-lived connection echoing a sequence-numbered line every 20 ms."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.sock = connect(address)
        self.sent = 0
        self.max_gap = 0.0
        self.error = None
        self.stop = threading.Event()

    def run(self):
        last = time.monotonic()
        try:
            while not self.stop.is_set():
                line = b"%08d\n" % self.sent
                self.sock.sendall(line)
                got = recv_exactly(self.sock, len(line), timeout=5.0)
                if got != line:
                    raise AssertionError(f"sent {line!r}, got {got!r}")
                self.sent += 1
                now = time.monotonic()
                self.max_gap = max(self.max_gap, now - last)
                last = now
                self.stop.wait(0.02)
        except Exception as exc:   # reported by the test
            self.error = f"after {self.sent} lines: {exc!r}"

    def finish(self):
        self.stop.set()
        self.join(10)
        self.sock.close()


class Prober(threading.Thread):
    """Opens connections as fast as it can (one round trip each); counts what fails."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.address = address
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                with connect(self.address, timeout=5.0) as s:
                    s.sendall(b"probe\n")
                    if recv_exactly(s, 6, timeout=5.0) != b"probe\n":
                        raise AssertionError("probe not echoed")
                self.ok += 1
            except Exception as exc:
                self.failures.append(repr(exc))
            self.stop.wait(0.005)

    def finish(self):
        self.stop.set()
        self.join(10)


def _wrapper(tmp_path, name, body):
    """A shell script standing in for a new binary; REAL is the real one."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\nREAL=%s\n%s\n" % (switchyard_bin(), body))
    path.chmod(0o755)
    return str(path)


def _generations_started_for(tmp_path):
    """PIDs of processes an upgrade started with a config under `tmp_path` (this test's only)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"--handover-fd" in args and any(a.startswith(str(tmp_path).encode()) for a in args):
            found.append(int(entry))
    return found


@pytest.fixture
def successors(tmp_path):
    """PIDs of new generations the tests caused; ended (by PID) at teardown, with any other one an
    upgrade of this test started (a test that failed half-way does not leave a daemon behind)."""
    pids = []
    yield pids
    for pid in set(pids) | set(_generations_started_for(tmp_path)):
        if _proc_alive(pid):
            os.kill(pid, signal.SIGTERM)
            try:
                wait_until(lambda: not _proc_alive(pid), 10, 0.05, f"upgraded daemon {pid} to exit")
            except AssertionError:
                os.kill(pid, signal.SIGKILL)


def _echoing(address):
    """A client connection that has made one round trip through switchyard."""
    c = connect(address)
    c.sendall(b"x\n")
    assert recv_exactly(c, 2) == b"x\n"
    return c


def _upgraded_pid(result):
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("upgraded: pid "), result.stdout
    return int(result.stdout.split()[2])


# --- the hand-over ---------------------------------------------------------

def test_upgrade_keeps_every_connection_and_refuses_none(backends, switchyard, successors, tmp_path):
    notify = NotifySocket()
    try:
        echo = backends.echo()
        metrics = free_address()
        d = switchyard([service("web", free_address(), blue=[echo.address])],
                       extra={"upgrade": {"drain_timeout": "30s", "close_spread": "1s"},
                              "metrics": {"listen": metrics}},
                       env={"NOTIFY_SOCKET": notify.path})
        listen = d.listen()
        old = d.pid
        streams = [EchoStream(listen) for _ in range(40)]
        for s in streams:
            s.start()
        prober = Prober(listen)
        prober.start()
        wait_until(lambda: prober.ok >= 20 and all(s.sent >= 3 for s in streams), 10, 0.02,
                   "traffic before the upgrade")
        assert {_owner(s.sock, listen, [old]) for s in streams} == {old}

        result = d.ctl("upgrade", "--timeout", "20s", timeout=40)
        upgraded_at = time.time()
        new = _upgraded_pid(result)
        successors.append(new)
        assert new != old
        # The 40 streams, and perhaps a probe in flight.
        assert "(switchyard " in result.stdout and f"pid {old} drains 4" in result.stdout

        # The new generation accepts everything new; the old one keeps its connections.
        probes_at_upgrade = prober.ok
        wait_until(lambda: prober.ok >= probes_at_upgrade + 50, 15, 0.02, "probes after the upgrade")
        fresh = [_echoing(listen) for _ in range(5)]
        try:
            for c in fresh:
                wait_until(lambda c=c: _owner(c, listen, [old, new]) is not None, 5, 0.02, "the accepted socket")
                assert _owner(c, listen, [old, new]) == new
        finally:
            for c in fresh:
                c.close()
        assert {_owner(s.sock, listen, [old, new]) for s in streams} == {old}

        # systemd is told the new main PID by the old one; the new one is then ready.
        wait_until(lambda: any(m.get("MAINPID") == str(new) for m in notify.from_pid(old)), 5, 0.02,
                   lambda: f"MAINPID={new} from pid {old}, got {notify.all()}")
        wait_until(lambda: any(m.get("READY") == "1" for m in notify.from_pid(new)), 5, 0.02,
                   lambda: f"READY=1 from pid {new}, got {notify.all()}")

        # Admin commands are the new generation's now; its status shows the old one draining.
        def draining():
            g = d.admin("status")["draining_generation"]
            return g if g and g["pid"] == old and g["connections"] == 40 else None
        deadline = wait_until(draining, 5, 0.05, "the draining generation in status")["deadline_unix_ms"] / 1000
        # drain_timeout from the hand-over, just before the reply (measured from then: a loaded machine is slow below)
        assert 27 < deadline - upgraded_at <= 30
        shown = d.ctl("status")
        assert f"draining generation: pid {old}, 40 connection(s) open" in shown.stdout
        # The metrics port went over too: the new generation answers on it, with the old one's drain.
        scraped = wait_until(lambda: (lambda text: text if f'switchyard_upgrade_draining_connections{{pid="{old}"}} 40'
                                      in text else None)(http_get(metrics, "/metrics")), 5, 0.05,
                             "the draining generation in /metrics")
        assert "switchyard_upgrade_draining_generations 1" in scraped
        assert d.admin(f"backend web blue {echo.address} weight=50")["ok"] is True

        prober.finish()
        for s in streams:
            s.finish()
        closed_at = time.monotonic()
        assert prober.failures == [], prober.failures[:5]
        assert [s.error for s in streams if s.error] == []
        assert max(s.max_gap for s in streams) < 0.5
        # The old generation exits soon after its last connection closed.
        d.wait_exit(5)
        assert d.returncode == 0
        assert time.monotonic() - closed_at < 1.5
        assert _proc_alive(new)
        wait_until(lambda: d.admin("status")["draining_generation"] is None, 5, 0.05,
                   "status to drop the drained generation")
        wait_until(lambda: "switchyard_upgrade_draining_generations 0" in http_get(metrics, "/metrics"), 5, 0.05,
                   "/metrics to drop the drained generation")
    finally:
        notify.close()


class Scraper(threading.Thread):
    """Scrapes /metrics every 20 ms; keeps every scrape, and every counter or histogram series
    (process_* are the process's own) that went down from one scrape to the next."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.address = address
        self.scrapes = []
        self.failures = []
        self.decreases = []
        self.stop = threading.Event()

    @staticmethod
    def monotonic_names(text):
        names = set()
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
            if name.startswith("process_"):
                continue
            if kind == "counter":
                names.add(name)
            elif kind == "histogram":
                names.update({name + "_bucket", name + "_count", name + "_sum"})
        return names

    def run(self):
        previous = {}
        while not self.stop.is_set():
            try:
                text = scrape(self.address)
            except Exception as exc:   # reported by the test
                self.failures.append(repr(exc))
                continue
            samples = parse(text)
            names = self.monotonic_names(text)
            for key, v in samples.items():
                if key[0] in names and key in previous and v < previous[key]:
                    self.decreases.append((key, previous[key], v))
            previous = samples
            self.scrapes.append(samples)
            self.stop.wait(0.02)

    def finish(self):
        self.stop.set()
        self.join(10)


def test_counters_never_reset_across_the_upgrade(backends, switchyard, successors):
    echo = backends.echo()
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[echo.address])],
                       extra={"upgrade": {"drain_timeout": "30s", "close_spread": "1s"}})
    listen, old = d.listen(), d.pid
    # The readiness probe's connection has ended: what was counted before the test's traffic.
    base = wait_until(lambda: (lambda s: s if value(s, "switchyard_connections_accepted_total", service="web")
                               == ended(s, "web") else None)(parse(scrape(d.metrics_address))),
                      5, 0.05, "the readiness probe's connection to end")
    scraper = Scraper(d.metrics_address)
    scraper.start()
    prober = Prober(listen)
    prober.start()
    # Held by the old generation through the hand-over: it counts their bytes and closes after it.
    held = [_echoing(listen) for _ in range(10)]
    wait_until(lambda: prober.ok >= 20 and len(scraper.scrapes) >= 5, 10, 0.02, "traffic before the upgrade")

    new = _upgraded_pid(d.ctl("upgrade", timeout=30))
    successors.append(new)
    probes = prober.ok
    wait_until(lambda: prober.ok >= probes + 30, 10, 0.02, "probes after the upgrade")
    # Scrapes of the new generation while the old one still drains.
    wait_until(lambda: sum(value(s, "switchyard_upgrade_draining_generations") == 1 for s in scraper.scrapes) >= 3,
               10, 0.02, "scrapes while the old generation drains")
    for c in held:
        c.sendall(b"y\n")
        assert recv_exactly(c, 2) == b"y\n"
        c.close()
    d.wait_exit(5)   # the old generation drained and sent its last counters
    prober.finish()
    wait_until(lambda: len(scraper.scrapes) >= 5 and any(
        value(s, "switchyard_upgrade_draining_generations") == 0 for s in scraper.scrapes[-3:]), 5, 0.02,
        "scrapes after the old generation exited")
    scraper.finish()
    assert prober.failures == [], prober.failures[:5]
    assert scraper.failures == [], scraper.failures[:5]
    assert scraper.decreases == [], scraper.decreases[:10]

    made = prober.ok + len(held)
    def exact():
        s = parse(scrape(d.metrics_address))
        got = value(s, "switchyard_connections_accepted_total", service="web")
        return s if got == value(base, "switchyard_connections_accepted_total", service="web") + made \
            and ended(s, "web") == got else None
    final = wait_until(exact, 5, 0.05, "every connection counted once")
    for name in ("switchyard_upstream_connections_total", "switchyard_pool_connections_total"):
        assert total(final, name, service="web") == total(base, name, service="web") + made, name
    relayed = 6 * prober.ok + 4 * len(held)   # "probe\n"; "x\n" and "y\n"
    for name in ("switchyard_in_bytes_total", "switchyard_out_bytes_total",
                 "switchyard_pool_in_bytes_total", "switchyard_pool_out_bytes_total"):
        assert total(final, name, service="web") == total(base, name, service="web") + relayed, name
    durations = "switchyard_upstream_connection_duration_seconds_count"
    assert total(final, durations, service="web") == total(base, durations, service="web") + made
    assert _proc_alive(new) and not _proc_alive(old)


def test_the_new_generation_starts_from_the_health_the_old_one_saw(switchyard, successors):
    good, sick = HttpHealthBackend("good"), HttpHealthBackend("sick")
    sick.healthy = False
    try:
        # Checks far apart: the new generation's first round comes up to a second after it starts.
        d = switchyard([service("web", free_address(), blue=[good.address, sick.address],
                                health={"type": "http", "interval": "5s", "timeout": "1s", "rise": 2, "fall": 2,
                                        "http": {"path": "/healthz", "expect_status": 200}})])
        listen = d.listen()
        wait_until(lambda: backend_of(status(d), sick.address)["health"] == "down", 5, 0.05, "sick down")
        new = _upgraded_pid(d.ctl("upgrade", timeout=30))
        successors.append(new)
        # Right after the hand-over: the down one is never routed to, the up one takes everything.
        answers = [http_get(listen) for _ in range(40)]
        assert answers == ["good"] * 40
        svc = status(d)
        assert backend_of(svc, sick.address)["health"] == "down"
        assert backend_of(svc, sick.address)["last_failure"] == "HTTP status 503, expected 200"
        assert backend_of(svc, good.address)["health"] == "up"
        # Its own checks go on from there: down needs `rise` passes to come back.
        sick.healthy = True
        wait_until(lambda: backend_of(status(d), sick.address)["health"] == "up", 15, 0.1, "sick up again")
        assert "sick" in {http_get(listen) for _ in range(20)}
    finally:
        good.stop()
        sick.stop()


def test_a_drain_after_the_hand_over_reaches_the_draining_generation(backends, switchyard, successors):
    a, b = backends.echo(), backends.echo()
    d = switchyard([service("web", free_address(), blue=[a.address, b.address], drain_timeout="1s",
                            drain_spread="100ms")],
                   extra={"upgrade": {"drain_timeout": "1h", "close_spread": "1s"}})
    listen = d.listen()
    # One long connection on each backend, both held by the old generation.
    assert d.admin(f"backend web blue {b.address} weight=0")["ok"] is True
    on_a = _echoing(listen)
    assert d.admin(f"backend web blue {b.address} weight=100")["ok"] is True
    assert d.admin(f"backend web blue {a.address} weight=0")["ok"] is True
    on_b = _echoing(listen)
    assert d.admin(f"backend web blue {a.address} weight=100")["ok"] is True
    old = d.pid
    new = _upgraded_pid(d.ctl("upgrade", timeout=30))
    successors.append(new)
    assert {_owner(c, listen, [old, new]) for c in (on_a, on_b)} == {old}

    # The new generation drains a: the old one's connection to a closes by a's drain deadline, not in an hour.
    drained_at = time.monotonic()
    assert d.admin(f"backend web blue {a.address} drain")["ok"] is True
    wait_closed(on_a, timeout=5)
    assert time.monotonic() - drained_at < 2.5
    on_a.close()
    on_b.sendall(b"still\n")
    assert recv_exactly(on_b, 6) == b"still\n"
    assert _proc_alive(old)
    # Disabling b (a back in service) closes the last one; the old generation then exits.
    assert d.admin(f"backend web blue {a.address} enable")["ok"] is True
    assert d.admin(f"backend web blue {b.address} disable")["ok"] is True
    wait_closed(on_b, timeout=5)
    on_b.close()
    assert d.wait_exit(5) == 0


def test_the_last_connections_close_spread_over_close_spread(backends, switchyard, successors):
    echo = backends.echo()
    d = switchyard([service("web", free_address(), blue=[echo.address])],
                   extra={"upgrade": {"drain_timeout": "2s", "close_spread": "1s"}})
    conns = [_echoing(d.listen()) for _ in range(20)]
    successors.append(_upgraded_pid(d.ctl("upgrade", timeout=30)))
    closed = close_times(conns, timeout=10)
    assert len(closed) == 20
    assert max(closed) - min(closed) >= 0.8
    d.wait_exit(5)
    for c in conns:
        c.close()


# --- failures: the running daemon goes on unchanged ------------------------

FAILING_BINARIES = {
    "exits": ('case "$1" in --handover-version|--check) exec "$REAL" "$@";; esac\n'
              'echo "boom: this build cannot start" >&2\nexit 3',
              "the new process exited with status 3 before it was ready"),
    "hangs": ('case "$1" in --handover-version|--check) exec "$REAL" "$@";; esac\nexec sleep 600',
              "the new process was not ready within 2000 ms"),
    "other-version": ('[ "$1" = --handover-version ] && { echo 999; exit 0; }\nexec "$REAL" "$@"',
                      "it speaks hand-over version '999', this daemon 2"),
}


@pytest.mark.parametrize("kind", sorted(FAILING_BINARIES))
def test_a_failing_new_binary_changes_nothing(backends, switchyard, successors, tmp_path, kind):
    body, reason = FAILING_BINARIES[kind]
    binary = _wrapper(tmp_path, f"switchyard-{kind}", body)
    echo = backends.echo()
    d = switchyard([service("web", free_address(), blue=[echo.address])])
    listen = d.listen()
    stream = EchoStream(listen)
    stream.start()
    prober = Prober(listen)
    prober.start()
    wait_until(lambda: prober.ok >= 10 and stream.sent >= 3, 10, 0.02, "traffic before the upgrade")

    result = d.ctl("upgrade", "--binary", binary, "--timeout", "2s", timeout=30)
    assert result.returncode == 1, result.stdout
    assert f"upgrade to {binary} failed: {reason}" in result.stderr
    assert "(upgrade_failed)" in result.stderr
    if kind == "exits":
        assert "boom: this build cannot start" in result.stderr   # the new process's last lines

    probes = prober.ok
    wait_until(lambda: prober.ok >= probes + 20, 10, 0.02, "probes after the failed upgrade")
    prober.finish()
    stream.finish()
    assert prober.failures == []
    assert stream.error is None
    c = _echoing(listen)
    assert _owner(c, listen, [d.pid]) == d.pid
    c.close()
    # Changes are taken again, by the same process.
    assert d.admin(f"backend web blue {echo.address} weight=50")["ok"] is True
    assert d.running()
    assert "goes on unchanged" in d.log()


def test_a_change_during_the_upgrade_is_refused_as_upgrading_then_succeeds(backends, switchyard, successors, tmp_path):
    binary = _wrapper(tmp_path, "switchyard-hangs",
                      'case "$1" in --handover-version|--check) exec "$REAL" "$@";; esac\nexec sleep 600')
    echo = backends.echo()
    d = switchyard([service("web", free_address(), blue=[echo.address])])
    upgrade = subprocess.Popen(
        [*d.ctl_command(), "upgrade", "--binary", binary, "--timeout", "3s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: "upgrade: started pid" in d.log(), 10, 0.02, "the upgrade to start its new process")
        refused = d.admin(f"backend web blue {echo.address} weight=50")
        assert refused["ok"] is False and refused["code"] == "upgrading"
        assert d.admin("status")["ok"] is True   # reads go on
        out, err = upgrade.communicate(timeout=20)
        assert upgrade.returncode == 1, out
    finally:
        if upgrade.poll() is None:
            upgrade.kill()
            upgrade.wait(5)
    assert d.admin(f"backend web blue {echo.address} weight=50")["ok"] is True


def test_sigterm_ends_an_upgrade_under_way_and_refuses_a_new_one(backends, switchyard, successors, tmp_path):
    binary = _wrapper(tmp_path, "switchyard-hangs",
                      'case "$1" in --handover-version|--check) exec "$REAL" "$@";; esac\nexec sleep 600')
    echo = backends.echo()
    d = switchyard([service("web", free_address(), blue=[echo.address])], shutdown_grace="10s")
    held = _echoing(d.listen())   # keeps the stop in its grace, the admin socket answering
    upgrade = subprocess.Popen(
        [*d.ctl_command(), "upgrade", "--binary", binary, "--timeout", "60s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: "upgrade: started pid" in d.log(), 10, 0.02, "the upgrade to start its new process")
        started = int(re.search(r"upgrade: started pid (\d+)", d.log()).group(1))
        os.kill(d.pid, signal.SIGTERM)
        out, err = upgrade.communicate(timeout=20)
        assert upgrade.returncode == 1, out
        assert "failed: this daemon is stopping (SIGTERM)" in err
        wait_until(lambda: not _proc_alive(started), 5, 0.05, "the new process to be killed")
        again = d.ctl("upgrade", timeout=20)
        assert again.returncode == 1, again.stdout
        assert "this daemon is stopping (SIGTERM); nothing to upgrade (refused)" in again.stderr
    finally:
        if upgrade.poll() is None:
            upgrade.kill()
            upgrade.wait(5)
    held.close()
    assert d.wait_exit(10) == 0


def test_handover_version_is_printed():
    out = subprocess.run([switchyard_bin(), "--handover-version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout == "2\n"


def test_a_second_upgrade_brings_the_draining_generation_forward(backends, switchyard, successors):
    echo = backends.echo()
    d = switchyard([service("web", free_address(), blue=[echo.address])],
                   extra={"upgrade": {"drain_timeout": "1h", "close_spread": "1s"}})
    first = _echoing(d.listen())
    second_gen = _upgraded_pid(d.ctl("upgrade", timeout=30))
    successors.append(second_gen)
    wait_until(lambda: (d.admin("status")["draining_generation"] or {}).get("connections") == 1, 5, 0.05,
               "the first generation's connection in status")
    third_gen = _upgraded_pid(d.ctl("upgrade", timeout=30))
    successors.append(third_gen)
    # The first generation closes its connection within close_spread instead of an hour.
    wait_closed(first, timeout=5)
    first.close()
    d.wait_exit(5)
    assert d.returncode == 0
    wait_until(lambda: not _proc_alive(second_gen), 5, 0.05, "the second generation to exit (it had no connection)")
    c = _echoing(d.listen())
    assert _owner(c, d.listen(), [third_gen]) == third_gen
    c.close()


def test_upgrade_under_socket_activation_keeps_the_inherited_socket(backends, switchyard, successors):
    echo = backends.echo()
    address = free_address()
    host, port, family = split_address(address)
    listener = socket.socket(family, socket.SOCK_STREAM)   # the test plays systemd
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    try:
        d = switchyard([service("web", address, blue=[echo.address])], start=False,
                       extra={"upgrade": {"drain_timeout": "30s", "close_spread": "1s"}})
        start_socket_activated(d, listener)
        assert "inherited from systemd" in d.log()
        old = d.pid
        stream = EchoStream(address)
        stream.start()
        prober = Prober(address)
        prober.start()
        wait_until(lambda: prober.ok >= 10 and stream.sent >= 3, 10, 0.02, "traffic before the upgrade")
        new = _upgraded_pid(d.ctl("upgrade", timeout=30))
        successors.append(new)
        probes = prober.ok
        wait_until(lambda: prober.ok >= probes + 30, 10, 0.02, "probes after the upgrade")
        c = _echoing(address)
        wait_until(lambda: _owner(c, address, [old, new]) is not None, 5, 0.02, "the accepted socket")
        assert _owner(c, address, [old, new]) == new
        c.close()
        prober.finish()
        stream.finish()
        assert prober.failures == []
        assert stream.error is None
        d.wait_exit(5)
    finally:
        listener.close()


def test_sigterm_on_the_new_generation_ends_the_draining_one_too(backends, switchyard, successors):
    echo = backends.echo()
    d = switchyard([service("web", free_address(), blue=[echo.address])], shutdown_grace="1s",
                   extra={"upgrade": {"drain_timeout": "1h", "close_spread": "1s"}})
    held = _echoing(d.listen())
    new = _upgraded_pid(d.ctl("upgrade", timeout=30))
    successors.append(new)
    wait_until(lambda: d.admin("status")["draining_generation"], 5, 0.05, "the draining generation")
    os.kill(new, signal.SIGTERM)
    # The old one closes what it serves within its shutdown_grace, then both are gone.
    wait_closed(held, timeout=5)
    held.close()
    assert d.wait_exit(5) == 0
    wait_until(lambda: not _proc_alive(new), 5, 0.05, "the new generation to exit")


def test_the_state_goes_over_with_the_upgrade(backends, switchyard, successors):
    blue, green = backends.echo(), backends.echo()
    d = switchyard([service("web", free_address(), blue=[blue.address], green=[green.address])])
    changed = d.admin("split web blue=30 green=70")
    assert changed["ok"] is True
    successors.append(_upgraded_pid(d.ctl("upgrade", timeout=30)))
    web = d.admin("status web")["services"][0]
    assert web["split"] == {"blue": 30, "green": 70}
    assert web["generation"] == changed["generation"]
    # The new generation is the writer: its changes move generation on and are saved.
    again = d.admin("split web blue=40 green=60")
    assert again["ok"] is True and again["generation"] == changed["generation"] + 1
    assert d.saved_record("web")["split"] == {"blue": 40, "green": 60}
    # It holds the state file's writer lock now: a second daemon on that state file is refused.
    d.wait_exit(5)
    other = switchyard([service("api", free_address(), blue=[blue.address])], start=False,
                       extra={"state_file": d.state_file})
    out = run_switchyard("-c", str(other.config_path))
    assert out.returncode == 1 and f"{d.state_file} is in use by another switchyard" in out.stderr


def test_a_rollout_goes_on_across_the_upgrade(backends, switchyard, successors):
    blue, green = backends.echo(), backends.echo()
    d = switchyard([service("web", free_address(), blue=[blue.address], green=[green.address])])
    started = d.admin("rollout web to=green steps=5,100 hold=1h")
    assert started["ok"] is True
    before = d.admin("rollout-status web")["rollout"]
    # Three upgrades within one step: no restart is counted, so no rollback (three restarts would).
    for _ in range(3):
        successors.append(_upgraded_pid(d.ctl("upgrade", timeout=30)))
    after = d.admin("rollout-status web")
    r = after["rollout"]
    assert r["id"] == before["id"] and r["state"] == "running" and r["step"] == 1 and r["percent"] == 5
    assert after["split"] == {"blue": 95, "green": 5}
    assert after["generation"] >= started["generation"]   # generation only grows
    # The new generation steers it: a pause is taken and saved.
    paused = d.admin("rollout-pause web")
    assert paused["ok"] is True and paused["rollout"]["state"] == "paused"
    assert paused["generation"] == after["generation"] + 1


def test_the_new_generation_feeds_the_watchdog(backends, switchyard, successors):
    notify = NotifySocket()
    try:
        d = switchyard([service("web", free_address(), blue=[backends.echo().address])], start=False)
        # As systemd starts it: the watchdog names the main PID.
        script = 'WATCHDOG_PID=$$ WATCHDOG_USEC=400000 NOTIFY_SOCKET="$2" exec "$0" -c "$1"'
        d._stderr = open(d.stderr_path, "ab")
        d._stdout = open(d.stdout_path, "ab")
        d.proc = subprocess.Popen(["sh", "-c", script, switchyard_bin(), str(d.config_path), notify.path],
                                  stdin=subprocess.DEVNULL, stdout=d._stdout, stderr=d._stderr, cwd=str(d.workdir))
        d.wait_ready()
        wait_until(lambda: any(m.get("WATCHDOG") == "1" for m in notify.from_pid(d.pid)), 5, 0.02,
                   "watchdog pings from the first generation")
        new = _upgraded_pid(d.ctl("upgrade", timeout=30))
        successors.append(new)
        wait_until(lambda: sum(1 for m in notify.from_pid(new) if m.get("WATCHDOG") == "1") >= 3, 5, 0.02,
                   lambda: f"watchdog pings from the new generation, got {notify.all()}")
        d.wait_exit(5)
    finally:
        notify.close()
