"""Draining: connections of a pool or backend taken out of rotation keep flowing
until drain_timeout, then close spread over drain_spread ending at the deadline."""

import socket
import threading
import time

from admin_raw import wait_checked
from clients import close_times, connect, recv_exactly
from daemon import service
from netutil import free_address
from waiters import wait_until


class Stream:
    """A long-lived echo stream that keeps sending and checks every byte it gets back."""

    def __init__(self, address, chunk=64):
        self.sock = connect(address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.chunk = chunk
        self.sent = 0
        self.verified = 0
        self.corrupt = False
        self.closed_at = None
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _payload(self, offset, n):
        return bytes((offset + i) % 251 for i in range(n))

    def _run(self):
        try:
            while not self._stop.is_set():
                data = self._payload(self.sent, self.chunk)
                self.sock.sendall(data)
                self.sent += len(data)
                back = recv_exactly(self.sock, len(data), timeout=5)
                if back != data:
                    self.corrupt = True
                    return
                self.verified += len(data)
                time.sleep(0.01)
        except (AssertionError, OSError) as exc:
            self.error = exc
            self.closed_at = time.monotonic()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def alive(self):
        return self._thread.is_alive()


def start_streams(address, n):
    streams = [Stream(address) for _ in range(n)]
    wait_until(lambda: all(s.verified > 0 for s in streams), 5, message="streams flowing")
    return streams


# Health checks open connections too: check rarely, and count only after the first round.
QUIET_HEALTH = {"interval": "60s", "timeout": "1s"}


def quiet(d):
    wait_checked(d)
    return d


def status_pool(d, svc, colour):
    return d.admin(f"status {svc}")["services"][0]["pools"][colour]


def test_cutover_keeps_old_streams_flowing_until_the_deadline_then_closes_them(backends, switchyard):
    blue, green = backends.echo(), backends.echo()
    d = switchyard([service("web", free_address(), blue=[blue], green=[green],
                            drain_timeout="2s", drain_spread="500ms", health=QUIET_HEALTH)])
    quiet(d)
    base_blue, base_green = blue.connections, green.connections
    streams = start_streams(d.listen(), 10)
    assert blue.open_connections == 10

    cutover_at = time.monotonic()
    assert d.admin("cutover web green")["ok"] is True
    pool = status_pool(d, "web", "blue")
    assert pool["draining"] is True
    assert pool["draining_connections"] == 10
    assert 0 < pool["drain_deadline_ms"] <= 2000

    # New connections land on green only, while blue's streams keep flowing.
    new = [connect(d.listen()) for _ in range(20)]
    wait_until(lambda: green.connections == base_green + 20, 5, message="20 new connections on green")
    assert blue.connections == base_blue + 10
    for s in new:
        s.close()
    progress = [s.verified for s in streams]
    wait_until(lambda: all(s.verified > p for s, p in zip(streams, progress)), 3,
               message="old streams still flowing during the drain")
    assert time.monotonic() - cutover_at < 1.4, "check ran too late to prove flow before the spread"
    assert all(s.alive for s in streams)

    # At the deadline (spread over the last 500 ms) every old stream is closed.
    wait_until(lambda: not any(s.alive for s in streams), 4, message="old streams closed at the deadline")
    for s in streams:
        assert not s.corrupt
        offset = s.closed_at - cutover_at
        assert 1.4 <= offset <= 2.6, f"closed {offset:.2f}s after cutover"
    wait_until(lambda: status_pool(d, "web", "blue")["draining_connections"] == 0, 3)
    assert "drain deadline closed" in d.log()
    for s in streams:
        s.stop()


def test_rollback_before_the_deadline_stops_the_drain(backends, switchyard):
    blue, green = backends.echo(), backends.echo()
    d = switchyard([service("web", free_address(), blue=[blue], green=[green],
                            drain_timeout="1s", drain_spread="200ms", health=QUIET_HEALTH)])
    quiet(d)
    streams = start_streams(d.listen(), 5)
    assert d.admin("cutover web green")["ok"] is True
    assert d.admin("rollback web")["ok"] is True
    pool = status_pool(d, "web", "blue")
    assert pool["draining"] is False
    assert pool["active"] == 5
    # Well past the old deadline, the streams still flow.
    deadline = time.monotonic() + 1.6
    wait_until(lambda: time.monotonic() > deadline, 3)
    progress = [s.verified for s in streams]
    wait_until(lambda: all(s.verified > p for s, p in zip(streams, progress)), 3)
    assert all(s.alive and not s.corrupt for s in streams)
    for s in streams:
        s.stop()


def test_a_drained_backend_gets_no_new_connections_while_its_pool_serves(backends, switchyard):
    b1, b2 = backends.echo(), backends.echo()
    d = switchyard([service("web", free_address(), blue=[b1, b2], drain_timeout="1s",
                            drain_spread="100ms", health=QUIET_HEALTH)], workers=1)
    quiet(d)
    streams = start_streams(d.listen(), 4)
    assert (b1.open_connections, b2.open_connections) == (2, 2)
    assert d.admin(f"backend web blue {b1.address} drain")["ok"] is True
    before = (b1.connections, b2.connections)
    new = [connect(d.listen()) for _ in range(10)]
    wait_until(lambda: b2.connections == before[1] + 10, 5)
    assert b1.connections == before[0]
    for s in new:
        s.close()
    # b1's two streams close at its deadline; b2's keep going.
    wait_until(lambda: b1.open_connections == 0, 3, message="drained backend's streams closed")
    assert b2.open_connections >= 2
    st = d.admin("status web")["services"][0]["pools"]["blue"]["backends"]
    states = {b["address"]: b["admin_state"] for b in st}
    assert states == {b1.address: "drain", b2.address: "enabled"}
    # Drained stays drained: a rollback of the split does not revive it.
    assert d.admin("split web blue=100 green=0")["ok"] is True
    for s in streams:
        s.stop()


def test_drain_closes_are_spread_not_all_in_one_instant(backends, switchyard):
    blue, green = backends.echo(), backends.echo()
    d = switchyard([service("web", free_address(), blue=[blue], green=[green],
                            drain_timeout="1500ms", drain_spread="1s", health=QUIET_HEALTH)])
    quiet(d)
    socks = [connect(d.listen()) for _ in range(100)]
    for s in socks:
        s.sendall(b"x")
    for s in socks:
        assert recv_exactly(s, 1) == b"x"
    wait_until(lambda: blue.open_connections == 100, 5)
    t0 = time.monotonic()
    assert d.admin("cutover web green")["ok"] is True
    closes = [at - t0 for at in close_times(socks, timeout=5)]
    assert len(closes) == 100
    assert min(closes) >= 0.45, min(closes)
    assert max(closes) <= 1.7, max(closes)
    closes.sort()
    worst = max(sum(1 for c in closes if w <= c < w + 0.1) for w in closes)
    assert worst <= 20, f"{worst} closes within one 100 ms window"
    for s in socks:
        s.close()


def test_ctl_cutover_wait_returns_when_the_old_pool_is_empty(backends, switchyard):
    blue, green = backends.echo(), backends.echo()
    d = switchyard([service("web", free_address(), blue=[blue], green=[green],
                            drain_timeout="1s", drain_spread="100ms", health=QUIET_HEALTH)])
    quiet(d)
    streams = start_streams(d.listen(), 3)
    t0 = time.monotonic()
    r = d.ctl("cutover", "web", "green", "--wait", timeout=10)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert 0.8 <= elapsed <= 3.0, elapsed
    assert blue.open_connections == 0
    assert status_pool(d, "web", "blue")["draining_connections"] == 0
    for s in streams:
        s.stop()


def test_an_idle_pool_stops_showing_as_draining_once_its_deadline_has_passed(backends, switchyard):
    blue, green = backends.echo(), backends.echo()
    d = switchyard([service("web", free_address(), blue=[blue], green=[green],
                            drain_timeout="600ms", drain_spread="100ms", health=QUIET_HEALTH)])
    quiet(d)
    assert d.admin("cutover web green")["ok"] is True
    pool = status_pool(d, "web", "blue")
    assert pool["draining"] is True and 0 < pool["drain_deadline_ms"] <= 600
    assert "pool draining" in d.ctl("status", "web").stdout

    wait_until(lambda: status_pool(d, "web", "blue")["draining"] is False, 3,
               message="blue no longer draining after its deadline")
    pool = status_pool(d, "web", "blue")
    assert pool["drain_deadline_ms"] is None
    assert all(b["drain_deadline_ms"] is None for b in pool["backends"])
    out = d.ctl("status", "web").stdout
    assert "pool draining" not in out and "closes in" not in out, out
