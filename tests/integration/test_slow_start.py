"""slow_start: a backend that joins or returns ramps its effective weight
(weight x max(0.1, elapsed / slow_start)) instead of taking its full share at once."""

import socket
from collections import Counter

from backends import NameBackend
from clients import http_get
from daemon import service
from netutil import free_address
from waiters import wait_until


def backend_status(d, address):
    reply = d.admin("status web")
    assert reply["ok"], reply
    svc = reply["services"][0]
    for pool in svc["pools"].values():
        for b in pool["backends"]:
            if b["address"] == address:
                return svc, b
    raise AssertionError(f"{address} not in status")


def share(d, name, n):
    counts = Counter(http_get(d.listen()) for _ in range(n))
    return counts[name] / n, counts


def test_a_backend_added_at_runtime_ramps_its_share(backends, switchyard):
    old, new = backends.name("old"), backends.name("new")
    d = switchyard([service("web", free_address(), blue=[old], slow_start="12s")], workers=1)
    assert d.admin(f"add web blue {new.address} weight=100")["ok"]
    svc, b = backend_status(d, new.address)
    generation = svc["generation"]
    assert b["effective_weight"] <= 20
    assert 0 < b["slow_start_remaining_ms"] <= 12000

    early, counts = share(d, "new", 110)
    # Weight 10..20 against 100: at most 1/6 of the connections (steady share: 1/2).
    assert early <= 0.2, counts

    # The ramp moves revision, not generation, and the effective weight rises.
    def risen():
        s, nb = backend_status(d, new.address)
        return (s, nb) if nb["effective_weight"] >= 40 else None
    svc2, b2 = wait_until(risen, 10, 0.2, "effective weight >= 40")
    assert svc2["generation"] == generation
    assert svc2["revision"] > svc["revision"]

    def done():
        s, nb = backend_status(d, new.address)
        return (s, nb) if nb["effective_weight"] == 100 and nb["slow_start_remaining_ms"] is None else None
    wait_until(done, 15, 0.2, "ramp over")
    late, counts = share(d, "new", 100)
    assert late == 0.5, counts
    assert backend_status(d, new.address)[0]["generation"] == generation


def test_without_slow_start_a_new_backend_takes_its_full_share_at_once(backends, switchyard):
    old, new = backends.name("old"), backends.name("new")
    d = switchyard([service("web", free_address(), blue=[old])], workers=1)
    assert d.admin(f"add web blue {new.address} weight=100")["ok"]
    _, b = backend_status(d, new.address)
    assert b["effective_weight"] == 100 and b["slow_start_remaining_ms"] is None
    assert share(d, "new", 100)[0] == 0.5


def test_an_enabled_backend_ramps_again(backends, switchyard):
    b1, b2 = backends.name("b1"), backends.name("b2")
    d = switchyard([service("web", free_address(), blue=[b1, b2], slow_start="20s")], workers=1)
    _, st = backend_status(d, b2.address)
    assert st["effective_weight"] == 100      # present at start: no ramp
    assert d.admin(f"backend web blue {b2.address} disable")["ok"]
    assert d.admin(f"backend web blue {b2.address} enable")["ok"]
    _, st = backend_status(d, b2.address)
    assert st["effective_weight"] <= 20
    assert share(d, "b2", 110)[0] <= 0.2


def test_a_backend_returning_to_health_ramps(backends, switchyard, monkeypatch):
    stable, flappy = backends.name("stable"), backends.name("flappy")
    address = flappy.address
    d = switchyard([service("web", free_address(), blue=[stable, flappy], slow_start="15s",
                            health={"type": "tcp", "interval": "100ms", "timeout": "100ms",
                                    "rise": 1, "fall": 1})], workers=1)
    flappy.kill()
    wait_until(lambda: backend_status(d, address)[1]["health"] == "down", 5, message="flappy down")
    backends.started.append(_name_backend_on(monkeypatch, address, "flappy"))
    wait_until(lambda: backend_status(d, address)[1]["health"] == "up", 5, message="flappy up again")
    _, st = backend_status(d, address)
    assert st["effective_weight"] <= 30, st
    assert st["slow_start_remaining_ms"] is not None
    assert share(d, "flappy", 110)[0] <= 0.25


def _name_backend_on(monkeypatch, address, name):
    """A NameBackend on the port a killed backend had (Backend binds port 0 otherwise)."""
    host, port = address.rsplit(":", 1)
    real_bind = socket.socket.bind
    with monkeypatch.context() as m:
        m.setattr(socket.socket, "bind", lambda self, addr: real_bind(self, (addr[0], int(port))))
        return NameBackend(name, host)


def test_a_reload_keeps_a_runtime_added_backend_its_ramp_connections_and_health(backends, switchyard):
    old, echo = backends.name("old"), backends.echo()
    d = switchyard([service("web", free_address(), blue=[old], slow_start="30s",
                            health={"type": "tcp", "interval": "200ms", "timeout": "200ms", "rise": 1, "fall": 1})],
                   workers=1)
    assert d.admin(f"add web blue {echo.address} weight=100")["ok"]
    wait_until(lambda: backend_status(d, echo.address)[1]["health"] == "up", 5, message="the added backend up")
    # One connection held open on the added backend.
    held = None
    for _ in range(40):
        s = socket.create_connection(split(d.listen()), timeout=5)
        s.sendall(b"ping")
        if s.recv(100) == b"ping":
            held = s
            break
        s.close()
    assert held is not None, "no connection reached the added backend"
    try:
        _, before = backend_status(d, echo.address)
        assert before["active"] == 1
        assert d.admin("reload")["ok"]
        _, after = backend_status(d, echo.address)
        # Same backend after the reload: its open connection still counts, it is
        # still up, and its ramp goes on rather than restarting or ending.
        assert after["active"] == 1, after
        assert after["health"] == "up", after
        assert after["slow_start_remaining_ms"] is not None, after
        assert after["slow_start_remaining_ms"] <= before["slow_start_remaining_ms"], (before, after)
        held.sendall(b"still open")
        assert held.recv(100) == b"still open"
    finally:
        held.close()


def split(address):
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)
