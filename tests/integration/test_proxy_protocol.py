"""PROXY protocol toward backends (proxy_protocol: v1|v2) and from a balancer in front
(accept_proxy). The backend parses the header with its own parser and the test compares it
with the client's real address."""

import socket
import time

import pytest

from clients import wait_closed
from daemon import service
from netutil import free_address, split_address
from source_clients import (ProxyHeaderBackend, connect_from, http_get_from, loopback_sources,
                            proxy_v1, proxy_v2, read_http_body)
from waiters import wait_until

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def status(d):
    reply = d.admin("status web")
    assert reply["ok"], reply
    return reply["services"][0]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_backend_receives_the_real_client_address_in_the_proxy_header(backends, switchyard, version):
    b = backends._keep(ProxyHeaderBackend("app"))
    listen = free_address()
    d = switchyard([service("web", listen, blue=[b], proxy_protocol=version)])
    for src in loopback_sources(5, block=7):
        body, port = http_get_from(src, d.listen())
        assert body == "app"
        # (The readiness probe's session sends a header too, at a time of its own.)
        mine = [(h, p) for h, p in zip(b.headers, b.payloads) if (h.get("src"), h.get("sport")) == (src, port)]
        assert len(mine) == 1, b.headers
        header, payload = mine[0]
        assert header["version"] == (1 if version == "v1" else 2)
        assert header["proto"] == "TCP4"
        assert (header["dst"], header["dport"]) == split_address(listen)[:2]
        # The request follows the header untouched.
        assert payload == REQUEST
    assert b.bad == []


def test_health_checks_do_not_send_the_header(backends, switchyard):
    b = backends._keep(ProxyHeaderBackend("app"))
    d = switchyard([service("web", free_address(), blue=[b], proxy_protocol="v2",
                            health={"type": "tcp", "interval": "100ms", "timeout": "100ms"})])
    wait_until(lambda: b.connections >= 5, 5, message="a few health checks")
    assert http_get_from("127.0.0.1", d.listen())[0] == "app"
    # Every connection that sent bytes started with a valid header; the checks sent nothing.
    # (The readiness probe's session also sends a header, then closes without a request.)
    assert b.bad == []
    assert [p for p in b.payloads if p] == [REQUEST]


@pytest.mark.parametrize("front", ["v1", "v2"])
@pytest.mark.parametrize("toward", ["v1", "v2"])
def test_accept_proxy_takes_the_client_address_from_the_header_and_passes_it_on(backends, switchyard,
                                                                                 front, toward):
    b = backends._keep(ProxyHeaderBackend("app"))
    d = switchyard([service("web", free_address(), blue=[b], accept_proxy=True, proxy_protocol=toward)])
    encode = proxy_v1 if front == "v1" else proxy_v2
    body, _ = http_get_from("127.0.0.1", d.listen(), prefix=encode("203.0.113.7", "198.51.100.1", 55555, 443))
    assert body == "app"
    header = b.headers[-1]
    assert (header["src"], header["sport"], header["dst"], header["dport"]) == \
        ("203.0.113.7", 55555, "198.51.100.1", 443)
    assert b.payloads[-1] == REQUEST
    # IPv6 client addresses from the front pass through too.
    body, _ = http_get_from("127.0.0.1", d.listen(), prefix=encode("2001:db8::7", "2001:db8::1", 1234, 80))
    assert body == "app"
    assert (b.headers[-1]["proto"], b.headers[-1]["src"], b.headers[-1]["sport"]) == ("TCP6", "2001:db8::7", 1234)
    assert status(d)["proxy_header_errors"] == 0


def test_accept_proxy_header_split_over_many_writes_with_payload_in_the_same_segment(backends, switchyard):
    b = backends._keep(ProxyHeaderBackend("app"))
    d = switchyard([service("web", free_address(), blue=[b], accept_proxy=True, proxy_protocol="v1")])
    header = proxy_v2("192.0.2.1", "192.0.2.2", 1000, 2000)
    with connect_from("127.0.0.1", d.listen()) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, 20, 5):
            s.sendall(header[i:i + 5])
            time.sleep(0.02)
        s.sendall(header[20:] + REQUEST)
        assert read_http_body(s) == "app"
    assert b.headers[-1]["src"] == "192.0.2.1"
    assert b.payloads[-1] == REQUEST


def test_v2_local_from_the_front_uses_the_real_address(backends, switchyard):
    b = backends._keep(ProxyHeaderBackend("app"))
    d = switchyard([service("web", free_address(), blue=[b], accept_proxy=True, proxy_protocol="v1")])
    local = proxy_v2("0.0.0.0", "0.0.0.0", 0, 0, command=0)
    body, port = http_get_from("127.0.8.9", d.listen(), prefix=local)
    assert body == "app"
    assert (b.headers[-1]["src"], b.headers[-1]["sport"]) == ("127.0.8.9", port)


@pytest.mark.parametrize("garbage", [
    REQUEST,                                                 # no header at all
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n" + REQUEST,     # port out of range
    b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n" + REQUEST,              # wrong family
    b"PROXY TCP4 " + b"1" * 200 + b"\r\n",                   # longer than 107 bytes
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff",              # v2 over the size limit
    b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c" + b"\0" * 12,  # bad signature
])
def test_a_malformed_header_closes_the_connection_is_counted_and_never_reaches_a_backend(
        backends, switchyard, garbage):
    b = backends.name("app")
    d = switchyard([service("web", free_address(), blue=[b], accept_proxy=True)])
    before = b.connections
    with connect_from("127.0.0.1", d.listen()) as s:
        s.sendall(garbage)
        kind, _ = wait_closed(s, 3)
        assert kind in ("eof", "reset")
    wait_until(lambda: status(d)["proxy_header_errors"] == 1, 3, message="proxy_header_errors == 1")
    assert b.responses == 0
    # Only health checks (and the readiness probe's session) reached the backend.
    assert b.connections - before <= 3
    # The daemon is fine: a good client still gets through.
    body, _ = http_get_from("127.0.0.1", d.listen(), prefix=proxy_v1("10.0.0.1", "10.0.0.2", 1, 2))
    assert body == "app"


def test_a_header_that_does_not_arrive_in_time_closes_the_connection_and_counts_a_timeout(
        backends, switchyard):
    b = backends.name("app")
    d = switchyard([service("web", free_address(), blue=[b], accept_proxy=True,
                            accept_proxy_timeout="300ms")])
    with connect_from("127.0.0.1", d.listen()) as s:
        s.sendall(b"PROXY TCP4 ")
        kind, waited = wait_closed(s, 3)
        assert 0.2 <= waited <= 2.0, waited
    st = wait_until(lambda: (lambda x: x if x["proxy_header_timeouts"] == 1 else None)(status(d)), 3)
    assert st["proxy_header_errors"] == 1
    # Silent clients time out too (nothing sent at all).
    with connect_from("127.0.0.1", d.listen()) as s:
        wait_closed(s, 3)
    wait_until(lambda: status(d)["proxy_header_timeouts"] == 2, 3)


def test_a_client_that_leaves_before_any_byte_is_not_an_error(backends, switchyard):
    b = backends.name("app")
    d = switchyard([service("web", free_address(), blue=[b], accept_proxy=True)])
    for _ in range(3):
        connect_from("127.0.0.1", d.listen()).close()
    http_get_from("127.0.0.1", d.listen(), prefix=proxy_v1("10.0.0.1", "10.0.0.2", 1, 2))
    assert status(d)["proxy_header_errors"] == 0


def test_affinity_follows_the_address_in_the_header(backends, switchyard):
    """A client announced by the front balancer gets the colour it would get connecting directly."""
    blue, green = backends.name("blue"), backends.name("green")
    direct, fronted = free_address(), free_address()
    pools = dict(blue=[blue], green=[green], affinity="client", split={"blue": 50, "green": 50})
    d = switchyard([service("direct", direct, **pools), service("fronted", fronted, accept_proxy=True, **pools)])
    sources = loopback_sources(40, block=9)
    for src in sources:
        want, _ = http_get_from(src, direct)
        got, _ = http_get_from("127.0.0.1", fronted, prefix=proxy_v1(src, "127.0.0.1", 40000, 80))
        assert got == want, src
