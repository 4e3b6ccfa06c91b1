"""Automatic fallback (issue 6): the live pool failing moves its share to the other pool within
interval x fall, new client connections never fail meanwhile, restore manual/auto, both pools
down (panic mode), offline pools, and a flapping backend that must not flap the service.
Fallbacks move `revision`, never `generation`, and are logged, shown in status and saved."""

import json
import threading
import time

from clients import http_get
from daemon import service
from netutil import free_address
from test_health import HttpHealthBackend, all_checked, backend_of, status
from waiters import wait_until

INTERVAL = 0.2
FALL = 3
TCP = {"type": "tcp", "interval": "200ms", "timeout": "100ms", "rise": 2, "fall": FALL}
HTTP = {"type": "http", "interval": "100ms", "timeout": "100ms", "rise": 2, "fall": 2,
        "http": {"path": "/healthz", "expect_status": 200}}


class Load:
    """Clients in threads, each making one GET after another; records (start, answer or error)."""

    def __init__(self, address, clients=4):
        self.address = address
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                answer = http_get(self.address, timeout=5)
            except Exception as exc:  # every client-visible failure counts
                answer = exc
            with self.lock:
                self.results.append((started, answer))

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(10)

    def count(self):
        with self.lock:
            return len(self.results)

    def since(self, t):
        with self.lock:
            return [a for s, a in self.results if s > t]


def test_killing_the_live_pool_under_load_moves_new_connections_to_the_other_pool(backends, switchyard):
    b1, b2 = backends.name("blue-1"), backends.name("blue-2")
    g1, g2 = backends.name("green-1"), backends.name("green-2")
    d = switchyard([service("web", free_address(), blue=[b1, b2], green=[g1, g2],
                            split={"blue": 0, "green": 100}, health=TCP)])
    wait_until(lambda: all_checked(d), 5, message="every backend checked once")
    before = status(d)
    assert before["fallback"]["active"] is False

    load = Load(d.listen())
    try:
        wait_until(lambda: load.count() >= 20, 10, 0.02, "load to run")
        killed_wall = time.time()
        g1.kill()
        g2.kill()
        # From here on every connect to green is refused.
        killed = time.monotonic()
        wait_until(lambda: status(d)["fallback"]["active"], 5, 0.02, "the fallback")
        took = time.monotonic() - killed
        after_fallback = time.monotonic()
        wait_until(lambda: len(load.since(after_fallback)) >= 40, 10, 0.02, "load after the fallback")
    finally:
        load.stop()

    # interval x fall plus one interval; slack for a busy machine.
    assert took < INTERVAL * FALL + INTERVAL + 0.5, took
    # No client connection begun after the kill failed: retries carried them until the fallback.
    begun_after = load.since(killed)
    failures = [a for a in begun_after if isinstance(a, Exception)]
    assert failures == [], failures[:3]
    assert set(load.since(after_fallback)) <= {"blue-1", "blue-2"}
    assert set(http_get(d.listen()) for _ in range(10)) <= {"blue-1", "blue-2"}

    svc = status(d)
    fb = svc["fallback"]
    assert fb["from"] == "green"
    assert fb["reason"] == "pool green: 0 of 2 backend(s) healthy (min_healthy 1); traffic moved to pool blue"
    assert killed_wall * 1000 - 100 <= fb["since"] <= (killed_wall + took) * 1000 + 100
    assert fb["count"] == 1
    assert svc["split"] == {"blue": 0, "green": 100}           # intent unchanged
    assert svc["effective_split"] == {"blue": 100, "green": 0}
    assert svc["generation"] == before["generation"]
    assert svc["revision"] > before["revision"]
    assert svc["panic"] is False
    assert "web: FALLBACK from pool green to pool blue: pool green: 0 of 2 backend(s) healthy" in d.log()
    saved_fb = d.saved_record("web")["fallback"]
    assert saved_fb["from"] == "green"


def _fallen_back(switchyard, restore, hold):
    blue, green = HttpHealthBackend("blue"), HttpHealthBackend("green")
    d = switchyard([service("web", free_address(), blue=[blue.address], green=[green.address],
                            split={"blue": 0, "green": 100}, health=HTTP,
                            fallback={"min_healthy": 1, "restore": restore, "hold": hold})])
    wait_until(lambda: all_checked(d), 5, message="every backend checked once")
    green.healthy = False
    wait_until(lambda: status(d)["fallback"]["active"], 5, 0.02, "the fallback")
    assert {http_get(d.listen()) for _ in range(6)} == {"blue"}
    return d, blue, green


def test_restore_auto_returns_the_split_after_hold(switchyard):
    d, blue, green = _fallen_back(switchyard, "auto", "1s")
    try:
        generation = status(d)["generation"]
        green.healthy = True
        wait_until(lambda: backend_of(status(d), green.address)["health"] == "up", 5, 0.02, "green up")
        up = time.monotonic()
        wait_until(lambda: not status(d)["fallback"]["active"], 5, 0.02, "the fallback to lift")
        held = time.monotonic() - up
        assert 0.85 <= held < 1.0 + 0.8, held
        svc = status(d)
        assert svc["effective_split"] == {"blue": 0, "green": 100}
        assert svc["generation"] == generation
        assert {http_get(d.listen()) for _ in range(6)} == {"green"}
        assert "web: fallback from pool green lifted, the split applies again: pool green: 1 of 1 backend(s) " \
               "healthy for the hold of 1s (restore: auto)" in d.log()
    finally:
        blue.stop()
        green.stop()


def test_restore_manual_waits_for_the_operator(switchyard):
    d, blue, green = _fallen_back(switchyard, "manual", "200ms")
    try:
        generation = status(d)["generation"]
        green.healthy = True
        wait_until(lambda: backend_of(status(d), green.address)["health"] == "up", 5, 0.02, "green up")
        # Far past the hold, and many checks later, the overlay is still there.
        checks = green.checks
        wait_until(lambda: green.checks >= checks + 10, 5, 0.02, "ten more passed checks")
        svc = status(d)
        assert svc["fallback"]["active"] is True
        assert svc["effective_split"] == {"blue": 100, "green": 0}
        assert {http_get(d.listen()) for _ in range(6)} == {"blue"}

        assert d.admin("split web blue=0 green=100")["ok"]
        svc = status(d)
        assert svc["fallback"]["active"] is False
        assert svc["effective_split"] == {"blue": 0, "green": 100}
        assert svc["generation"] == generation + 1
        assert {http_get(d.listen()) for _ in range(6)} == {"green"}
    finally:
        blue.stop()
        green.stop()


def test_both_pools_down_keeps_routing_in_panic_mode_and_says_so(switchyard):
    blue = HttpHealthBackend("blue")
    g1, g2 = HttpHealthBackend("green-1"), HttpHealthBackend("green-2")
    everyone = [blue, g1, g2]
    try:
        d = switchyard([service("web", free_address(), blue=[blue.address], green=[g1.address, g2.address],
                                split={"blue": 0, "green": 100}, health=HTTP)])
        wait_until(lambda: all_checked(d), 5, message="every backend checked once")
        for b in everyone:
            b.healthy = False   # checks fail; the backends still serve traffic
        wait_until(lambda: status(d)["panic"], 5, 0.02, "panic mode")
        svc = status(d)
        assert svc["fallback"]["active"] is False   # neither pool is better
        assert svc["effective_split"] == {"blue": 0, "green": 100}
        assert all(b["health"] == "down" for p in svc["pools"].values() for b in p["backends"])
        # Least bad rather than refusing everyone: the intended pool still answers.
        assert {http_get(d.listen()) for _ in range(10)} == {"green-1", "green-2"}
        assert "web: PANIC MODE: no pool that carries traffic has a healthy backend" in d.log()
        panic_line = [line for line in d.log().splitlines() if "PANIC MODE" in line][0]
        assert " error health: web: PANIC MODE" in panic_line   # loudly: at error level

        # Blue recovers: it is the least bad pool now, and panic ends in the same step.
        blue.healthy = True
        wait_until(lambda: status(d)["fallback"]["active"], 5, 0.02, "the fallback to blue")
        svc = status(d)
        assert svc["fallback"]["from"] == "green"
        assert svc["panic"] is False
        assert {http_get(d.listen()) for _ in range(6)} == {"blue"}
        assert "web: panic mode over" in d.log()
    finally:
        for b in everyone:
            b.stop()


def test_an_offline_pool_never_gets_traffic_even_by_fallback(backends, switchyard):
    blue = backends.name("blue")
    g = backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[g],
                            split={"blue": 0, "green": 100}, health=TCP)])
    wait_until(lambda: all_checked(d), 5, message="every backend checked once")
    assert d.admin("pool web blue offline")["ok"]
    g.kill()
    wait_until(lambda: backend_of(status(d), g.address)["health"] == "down", 5, 0.02, "green down")
    wait_until(lambda: status(d)["panic"], 5, 0.02, "panic mode")
    svc = status(d)
    assert svc["fallback"]["active"] is False
    assert svc["effective_split"] == {"blue": 0, "green": 100}
    for _ in range(5):
        try:
            http_get(d.listen(), timeout=2)
        except (AssertionError, OSError):
            pass
    assert blue.responses == 0
    assert backend_of(status(d), blue.address)["connections"] == 0


def test_a_single_flapping_backend_does_not_flap_the_service(switchyard):
    blue = HttpHealthBackend("blue")
    flappy, steady = HttpHealthBackend("flappy"), HttpHealthBackend("steady")
    stop = threading.Event()
    try:
        d = switchyard([service("web", free_address(), blue=[blue.address], green=[flappy.address, steady.address],
                                split={"blue": 0, "green": 100},
                                health={**HTTP, "rise": 1, "fall": 1},
                                fallback={"min_healthy": 1, "restore": "auto", "hold": "100ms"})])
        wait_until(lambda: all_checked(d), 5, message="every backend checked once")
        before = status(d)

        def flap():
            while not stop.wait(0.15):
                flappy.healthy = not flappy.healthy
        threading.Thread(target=flap, daemon=True).start()

        seen = []

        def flapped_enough():
            svc = status(d)
            seen.append((svc["fallback"]["active"], svc["effective_split"]["green"], svc["generation"]))
            return d.log().count(f"backend {flappy.address} (pool green) is DOWN") >= 4
        wait_until(flapped_enough, 10, 0.03, "four down flips of the flapping backend")
        assert set(seen) == {(False, 100, before["generation"])}
        assert status(d)["fallback"]["count"] == 0
        assert "FALLBACK" not in d.log()
        assert status(d)["revision"] > before["revision"]
    finally:
        stop.set()
        for b in (blue, flappy, steady):
            b.stop()
