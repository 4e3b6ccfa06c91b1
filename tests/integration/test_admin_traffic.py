"""Admin changes as clients see them: split changes reach the next connections, flips
under load lose nothing, offline pools take nothing, safety refusals, add/remove."""

import threading
from collections import Counter

from admin_raw import wait_checked
from clients import connect, exchange, http_get
from daemon import service
from netutil import free_address
from waiters import wait_until

FAST_HEALTH = {"type": "tcp", "interval": "200ms", "timeout": "200ms", "rise": 1, "fall": 1}


def svc(d, name="web"):
    reply = d.admin(f"status {name}")
    assert reply["ok"] is True, reply
    return reply["services"][0]


def names(d, n):
    return Counter(http_get(d.listen()) for _ in range(n))


def colour_of(counts):
    return {name.split("-")[0] for name in counts}


def test_split_changes_are_seen_by_the_next_connections(backends, switchyard):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])], workers=2)
    assert names(d, 10) == {"blue-1": 10}
    assert d.admin("cutover web green")["ok"] is True
    assert names(d, 20) == {"green-1": 20}
    assert d.admin("cutover web blue")["ok"] is True
    assert names(d, 20) == {"blue-1": 20}
    assert d.admin("split web blue=50 green=50")["ok"] is True
    counts = names(d, 100)
    assert abs(counts["blue-1"] - 50) <= 2 and counts["blue-1"] + counts["green-1"] == 100, counts
    assert d.admin("split web blue=0 green=1")["ok"] is True
    assert names(d, 10) == {"green-1": 10}


def test_fifty_blue_green_blue_flips_under_load_lose_no_client(backends, switchyard):
    blues = [backends.name("blue-1"), backends.name("blue-2")]
    greens = [backends.name("green-1"), backends.name("green-2")]
    d = switchyard([service("web", free_address(), blue=blues, green=greens,
                            drain_timeout="10s", drain_spread="1s")], workers=2)
    stop = threading.Event()
    lock = threading.Lock()
    ok = Counter()
    failures = []

    def client():
        while not stop.is_set():
            try:
                name = http_get(d.listen(), timeout=5)
                with lock:
                    ok[name.split("-")[0]] += 1
            except Exception as exc:  # every client-visible failure counts
                with lock:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()

    def total():
        with lock:
            return sum(ok.values()) + len(failures)

    try:
        for i in range(50):
            for colour in ("green", "blue"):
                reply = d.admin(f"cutover web {colour}")
                assert reply["ok"] is True, (i, colour, reply)
                seen = total()
                # let a few connections run on this split before the next change
                wait_until(lambda: total() >= seen + 3, 5, message=f"traffic after flip {i} to {colour}")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert failures == [], f"{len(failures)} client-visible failures, e.g. {failures[:3]}"
    assert ok["blue"] > 0 and ok["green"] > 0, ok
    s = svc(d)
    assert s["split"] == {"blue": 100, "green": 0}


def test_rollback_twice_undoes_the_first_rollback(backends, switchyard):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])], workers=1)
    assert d.admin("rollback web")["code"] == "refused"
    assert d.admin("cutover web green")["ok"] is True
    assert names(d, 5) == {"green-1": 5}
    r1 = d.admin("rollback web")
    assert r1["ok"] is True and r1["split"] == {"blue": 100, "green": 0}, r1
    assert names(d, 5) == {"blue-1": 5}
    r2 = d.admin("rollback web")
    assert r2["ok"] is True and r2["split"] == {"blue": 0, "green": 100}, r2
    assert r2["generation"] == r1["generation"] + 1
    assert names(d, 5) == {"green-1": 5}
    # rollback restores the split before the latest *split* change: a backend change in
    # between is not a split event
    assert d.admin("split web blue=30 green=70")["ok"] is True
    assert d.admin(f"backend web green {green.address} weight=50")["ok"] is True
    r3 = d.admin("rollback web")
    assert r3["ok"] is True and r3["split"] == {"blue": 0, "green": 100}, r3


def test_reset_drops_overrides_and_traffic_follows_the_config(backends, switchyard):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    extra = backends.name("blue-x")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green],
                            drain_timeout="500ms", drain_spread="100ms")], workers=1)
    assert d.admin("cutover web green")["ok"] is True
    assert d.admin(f"add web blue {extra.address}")["ok"] is True
    gen = svc(d)["generation"]
    reply = d.admin("reset web")
    assert reply["ok"] is True and reply["split"] == {"blue": 100, "green": 0}, reply
    assert reply["generation"] == gen + 1
    # the runtime-added backend leaves (after draining); traffic goes to config's blue only
    wait_until(lambda: all(b["address"] != extra.address for b in svc(d)["pools"]["blue"]["backends"]),
               5, message="runtime-added backend to leave after reset")
    assert names(d, 6) == {"blue-1": 6}


def test_an_offline_pool_gets_no_traffic_not_even_by_retries_or_fallback(backends, switchyard):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green],
                            split={"blue": 50, "green": 50}, retries=2, health=FAST_HEALTH,
                            fallback={"min_healthy": 1, "restore": "manual"})], workers=1)
    reply = d.admin("pool web green offline")
    assert reply["ok"] is True, reply
    assert reply["split"] == {"blue": 50, "green": 50}
    assert reply["effective_split"] == {"blue": 50, "green": 0}
    green_before = green.responses
    assert names(d, 20) == {"blue-1": 20}
    # blue dies: neither retries nor the fallback may reach the offline green pool
    blue.kill()
    wait_until(lambda: svc(d)["pools"]["blue"]["backends"][0]["health"] == "down", 5,
               message="blue-1 marked down")
    failures = 0
    for _ in range(10):
        try:
            http_get(d.listen(), timeout=3)
        except (AssertionError, OSError):
            failures += 1
    assert green.responses == green_before, "an offline pool took traffic"
    assert failures == 10
    s = svc(d)
    assert s["effective_split"]["green"] == 0, s["effective_split"]
    # back online: green takes traffic again (the fallback may move everything to green)
    assert d.admin("pool web green online force")["ok"] is True
    wait_until(lambda: http_get(d.listen(), timeout=3) == "green-1", 5, message="green to answer")


def test_safety_refusals_and_force(backends, switchyard):
    b1, b2 = backends.name("blue-1"), backends.name("blue-2")
    g1 = backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[b1, b2], green=[g1], health=FAST_HEALTH),
                    service("solo", free_address(), blue=[backends.name("solo-1")])], workers=1)

    def refused(command, name="web"):
        wait_checked(d)   # a pending first health result is an automatic change: let it land first
        before = svc(d, name)
        reply = d.admin(command)
        assert reply["ok"] is False and reply["code"] == "refused", (command, reply)
        after = svc(d, name)
        assert (after["split"], after["generation"], after["revision"]) == \
            (before["split"], before["generation"], before["revision"]), command

    # empty pool
    refused("cutover solo green", "solo")
    refused("split solo blue=50 green=50", "solo")
    r = d.admin("split solo blue=50 green=50 force")
    assert r["ok"] is True and r["split"] == {"blue": 50, "green": 50}, r
    assert Counter(http_get(d.listen("solo")) for _ in range(6)) == {"solo-1": 6}
    # no routable weight, with or without force
    refused("split web blue=0 green=0")
    refused("split web blue=0 green=0 force")
    refused("pool web blue offline")
    assert d.admin(f"backend web blue {b1.address} disable")["ok"] is True
    refused(f"backend web blue {b2.address} disable")
    refused(f"backend web blue {b2.address} weight=0")
    refused(f"remove web blue {b2.address}")
    assert d.admin(f"backend web blue {b1.address} enable")["ok"] is True
    # offline pool
    assert d.admin("pool web green offline")["ok"] is True
    refused("cutover web green")
    refused("split web blue=50 green=50")
    r = d.admin("split web blue=50 green=50 force")
    assert r["ok"] is True and r["effective_split"] == {"blue": 50, "green": 0}, r
    assert d.admin("reset web")["ok"] is True
    # wholly unhealthy pool
    g1.kill()
    wait_until(lambda: svc(d)["pools"]["green"]["backends"][0]["health"] == "down", 5,
               message="green-1 marked down")
    refused("cutover web green")
    assert names(d, 4) == {"blue-1": 2, "blue-2": 2}


def test_add_then_remove_drains_first(backends, switchyard):
    echo = backends.echo()
    b2 = backends.name("blue-2")
    d = switchyard([service("web", free_address(), blue=[echo], drain_timeout="3s",
                            drain_spread="100ms")], workers=1)
    wait_until(lambda: echo.open_connections == 0, 3, message="readiness probe to end")
    held = connect(d.listen())
    try:
        assert exchange(held, b"ping") == b"ping"
        r = d.admin(f"add web blue {b2.address}")
        assert r["ok"] is True, r
        before = svc(d)
        r = d.admin(f"remove web blue {echo.address}")
        assert r["ok"] is True, r
        assert r["generation"] == before["generation"] + 1
        entry = next(b for b in svc(d)["pools"]["blue"]["backends"] if b["address"] == echo.address)
        assert entry["draining_connections"] == 1 and entry["active"] == 0, entry
        assert entry["admin_state"] != "enabled", entry
        # new connections avoid it; the held one still works
        assert names(d, 6) == {"blue-2": 6}
        assert exchange(held, b"still here") == b"still here"
        gen = svc(d)["generation"]
    finally:
        held.close()
    # the removal completes on its own: revision moves, generation does not
    wait_until(lambda: all(b["address"] != echo.address for b in svc(d)["pools"]["blue"]["backends"]),
               6, message="removed backend to leave the pool")
    assert svc(d)["generation"] == gen
