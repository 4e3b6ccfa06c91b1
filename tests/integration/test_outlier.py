"""Passive outlier detection (issue 6): consecutive connect failures seen on real traffic eject a
backend at once — within 6 connections even with a 60 s active interval — for base_ejection,
doubling on repeat, never more than max_ejection_percent of a pool. Ejections move `revision`,
never `generation`."""

from clients import http_get
from daemon import service
from netutil import free_address
from test_health import all_checked, backend_of, status
from waiters import wait_until

SLOW = {"type": "tcp", "interval": "60s", "timeout": "1s", "rise": 2, "fall": 3}


def _daemon_with_a_refusing_backend(backends, switchyard, extra_bad=0, **outlier):
    """green: bad backend(s) with weight 1000 (picked first nearly always) and one good one with
    weight 1. The bad ones pass their first check, then die: only real traffic can tell."""
    bad = [backends.name(f"bad-{i}") for i in range(1 + extra_bad)]
    good = backends.name("good")
    svc = service("web", free_address(), green=[*[(b, 1000) for b in bad], (good, 1)],
                  split={"blue": 0, "green": 100}, health=SLOW, retries=len(bad) + 1)
    if outlier:
        svc["outlier_detection"] = outlier
    d = switchyard([svc])
    wait_until(lambda: all_checked(d), 5, message="every backend checked once")
    for b in bad:
        b.kill()
    return d, bad, good


def test_a_refusing_backend_is_ejected_within_six_connections_despite_a_60s_interval(backends, switchyard):
    d, (bad,), good = _daemon_with_a_refusing_backend(backends, switchyard)
    before = status(d)
    # Five connections each fail on bad first, then retry onto good; bad is ejected by the fifth.
    assert [http_get(d.listen()) for _ in range(6)] == ["good"] * 6
    st = backend_of(status(d), bad.address)
    assert st["ejected"] is True
    assert st["connect_failures"] == 5
    # The sixth and later connections do not touch it.
    assert [http_get(d.listen()) for _ in range(10)] == ["good"] * 10
    st = backend_of(status(d), bad.address)
    assert st["connect_failures"] == 5
    assert st["health"] == "up"                   # the active check has not run again
    # The control thread records it: logged, counted, published (revision, not generation).
    wait_until(lambda: backend_of(status(d), bad.address)["ejections"] == 1, 2, 0.02, "the formal ejection")
    after = status(d)
    assert after["generation"] == before["generation"]
    assert after["revision"] > before["revision"]
    assert f"web: backend {bad.address} (pool green) EJECTED for 10s after 5 consecutive failure(s) on real " \
           f"traffic (ejection #1)" in d.log()


def test_an_ejection_ends_after_base_ejection_and_doubles_on_repeat(backends, switchyard):
    d, (bad,), good = _daemon_with_a_refusing_backend(backends, switchyard, base_ejection="500ms")
    assert [http_get(d.listen()) for _ in range(5)] == ["good"] * 5
    wait_until(lambda: backend_of(status(d), bad.address)["ejections"] == 1, 2, 0.02, "the first ejection")
    wait_until(lambda: not backend_of(status(d), bad.address)["ejected"], 3, 0.02, "the ejection to end")
    assert f"web: backend {bad.address} (pool green) is back from its outlier ejection" in d.log()
    # Back with a fresh run: five more failures eject it again, for twice as long.
    assert [http_get(d.listen()) for _ in range(5)] == ["good"] * 5
    st = backend_of(status(d), bad.address)
    assert st["ejected"] is True
    assert st["connect_failures"] == 10
    wait_until(lambda: backend_of(status(d), bad.address)["ejections"] == 2, 2, 0.02, "the second ejection")
    assert f"web: backend {bad.address} (pool green) EJECTED for 1s after 5 consecutive failure(s) on real " \
           f"traffic (ejection #2)" in d.log()


def test_never_more_than_half_of_a_pool_is_ejected(backends, switchyard):
    # Three of four refuse: only two may be ejected at once.
    d, bad, good = _daemon_with_a_refusing_backend(backends, switchyard, extra_bad=2)
    assert [http_get(d.listen()) for _ in range(30)] == ["good"] * 30
    svc = status(d)
    assert sorted(backend_of(svc, b.address)["ejected"] for b in bad) == [False, True, True]
    assert backend_of(svc, good.address)["ejected"] is False


def test_outlier_detection_can_be_switched_off(backends, switchyard):
    d, (bad,), good = _daemon_with_a_refusing_backend(backends, switchyard, enabled=False)
    assert [http_get(d.listen()) for _ in range(10)] == ["good"] * 10
    st = backend_of(status(d), bad.address)
    assert st["ejected"] is False
    assert st["ejections"] == 0
    assert st["connect_failures"] == 10
