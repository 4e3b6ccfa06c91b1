"""Per-backend max_connections (excess goes to the pool's other backends) and the
service-level limit, both visible in status."""

from clients import connect, exchange, wait_closed
from daemon import service
from netutil import free_address
from waiters import wait_until


def status(d):
    reply = d.admin("status web")
    assert reply["ok"], reply
    return reply["services"][0]


def backend(svc, address):
    for pool in svc["pools"].values():
        for b in pool["backends"]:
            if b["address"] == address:
                return b
    raise AssertionError(address)


def limit(svc, *pairs):
    """Sets max_connections on backends of a service() entry: limit(svc, (address, n), ...)."""
    for address, n in pairs:
        for pool in svc["pools"].values():
            for b in pool:
                if b["address"] == address:
                    b["max_connections"] = n
    return svc


def idle(d):
    """No session open (the readiness probe's may linger a moment)."""
    wait_until(lambda: status(d)["active_connections"] == 0, 5, message="no open sessions")


def hold(d, n):
    """n connections, each carried one echo exchange (so each has its backend)."""
    held = []
    for i in range(n):
        s = connect(d.listen())
        assert exchange(s, b"%d" % i) == b"%d" % i
        held.append(s)
    return held


def test_a_full_backend_sends_the_excess_to_the_other_backend(backends, switchyard):
    e1, e2 = backends.echo(), backends.echo()
    d = switchyard([limit(service("web", free_address(), blue=[e1, e2]), (e1.address, 2))], workers=1)
    idle(d)
    held = hold(d, 8)
    try:
        svc = status(d)
        b1, b2 = backend(svc, e1.address), backend(svc, e2.address)
        assert (b1["active"], b2["active"]) == (2, 6), svc
        assert b1["max_connections"] == 2 and b2["max_connections"] is None
        assert b1["limit_skips"] > 0
        assert svc["backends_full"] == 0
    finally:
        for s in held:
            s.close()
    # Below the limit again, the backend takes its round-robin share.
    idle(d)
    held = hold(d, 2)
    try:
        svc = status(d)
        assert (backend(svc, e1.address)["active"], backend(svc, e2.address)["active"]) == (1, 1)
    finally:
        for s in held:
            s.close()


def test_when_every_backend_is_full_the_connection_is_closed_and_counted(backends, switchyard):
    e1, e2 = backends.echo(), backends.echo()
    d = switchyard([limit(service("web", free_address(), blue=[e1, e2]), (e1.address, 1), (e2.address, 1))],
                   workers=1)
    idle(d)
    held = hold(d, 2)
    try:
        with connect(d.listen()) as third:
            how, waited = wait_closed(third, 2.0)
        svc = status(d)
        assert svc["backends_full"] >= 1
        assert exchange(held[0], b"still") == b"still"
    finally:
        for s in held:
            s.close()


def test_a_full_pool_overflows_to_the_other_pool(backends, switchyard):
    blue, green = backends.echo(), backends.echo()
    # Green's small weight takes none of the first few connections (smooth WRR, one worker).
    d = switchyard([limit(service("web", free_address(), blue=[blue], green=[green],
                                  split={"blue": 100, "green": 1}), (blue.address, 1))], workers=1)
    idle(d)
    held = hold(d, 3)
    try:
        svc = status(d)
        assert (backend(svc, blue.address)["active"], backend(svc, green.address)["active"]) == (1, 2)
    finally:
        for s in held:
            s.close()


def test_service_limit_and_refusals_show_in_status(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("web", free_address(), blue=[echo], max_connections=1)], workers=1)
    idle(d)
    held = hold(d, 1)
    try:
        with connect(d.listen()) as second:
            wait_closed(second, 2.0)
        svc = status(d)
        assert svc["max_connections"] == 1
        assert svc["refused_at_limit"] >= 1
    finally:
        for s in held:
            s.close()
