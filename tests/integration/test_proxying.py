"""Payload integrity, concurrency, half-close, several services, max_connections."""

import os
import socket
import threading

from clients import connect, echo_roundtrip, exchange, http_get, recv_all, sha256, wait_closed
from daemon import service
from netutil import free_address
from waiters import wait_until

MiB = 1024 * 1024


def test_eight_mebibytes_each_way_arrive_intact(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo])])
    payload = os.urandom(8 * MiB)
    received = echo_roundtrip(d.listen(), payload, timeout=60)
    assert len(received) == len(payload)
    assert sha256(received) == sha256(payload)
    assert echo.bytes_echoed == len(payload)


def test_fifty_concurrent_connections_each_get_their_own_bytes_back(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo])])
    results = {}
    errors = []
    barrier = threading.Barrier(50)

    def client(i):
        payload = os.urandom(256 * 1024 + i)
        try:
            barrier.wait(10)
            got = echo_roundtrip(d.listen(), payload, timeout=60)
            results[i] = (sha256(payload), sha256(got), len(got))
        except Exception as exc:  # collected and asserted below
            errors.append((i, repr(exc)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert errors == []
    assert len(results) == 50
    for i, (want, got, n) in results.items():
        assert got == want, f"connection {i}: {n} bytes with a different checksum"


def test_client_half_close_still_receives_whole_reply(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo])])
    payload = os.urandom(2 * MiB)
    with connect(d.listen()) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)          # client is done sending, keeps reading
        received = recv_all(s, timeout=30)  # the reply, then EOF passed on from the backend
    assert sha256(received) == sha256(payload)
    wait_until(lambda: len(payload) in echo.eof_sizes, 3,
               message="the backend to see the client's EOF after the whole payload")


def test_backend_half_close_passes_eof_and_client_can_still_send(backends, switchyard):
    """NameBackend answers, shuts down its write side and keeps reading until the
    client closes: the client must see the response and EOF, and its later bytes
    must still reach the backend (the other direction stays open)."""
    web = backends.name("web-1")
    d = switchyard([service("web", free_address(), blue=[web])])
    with connect(d.listen()) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        response = recv_all(s, timeout=5)
        assert response.endswith(b"web-1")
        s.sendall(b"more bytes after the server's EOF\n")
        wait_until(lambda: web.after_response == b"more bytes after the server's EOF\n", 3,
                   message="bytes sent after the backend's EOF to reach the backend")
    assert web.responses == 1


def test_several_services_each_route_to_their_own_pools(backends, switchyard):
    names = ["alpha", "beta", "gamma"]
    services = []
    for n in names:
        services.append(service(n, free_address(), blue=[backends.name(f"{n}-blue")],
                                green=[backends.name(f"{n}-green")], split={"blue": 0, "green": 100}
                                if n == "beta" else {"blue": 100, "green": 0}))
    d = switchyard(services)
    for _ in range(5):
        assert http_get(d.listen("alpha")) == "alpha-blue"
        assert http_get(d.listen("beta")) == "beta-green"
        assert http_get(d.listen("gamma")) == "gamma-blue"


def test_max_connections_closes_the_third_promptly_and_keeps_the_first_two(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo], max_connections=2)])
    # The readiness probe's session may take a moment to end, so the first two
    # connections are opened by polling until each one is served.
    first = open_served(d.listen(), b"one")
    second = open_served(d.listen(), b"two")
    try:
        with connect(d.listen()) as third:
            try:
                third.sendall(b"three")
            except OSError:
                pass   # already reset: also a prompt close
            how, waited = wait_closed(third, timeout=2.0)
        assert waited < 2.0
        assert exchange(first, b"still one") == b"still one"
        assert exchange(second, b"still two") == b"still two"
    finally:
        first.close()
        second.close()
    # Once one of the two closes, a new connection is served again.
    wait_until(lambda: echo_roundtrip(d.listen(), b"again", timeout=2) == b"again", 5,
               message="a new connection to be served after the others closed")


def open_served(address, probe, timeout=3.0):
    """A connection that has carried one echo exchange (retried until one does)."""
    def attempt():
        s = connect(address)
        try:
            if exchange(s, probe, timeout=1.0) == probe:
                return s
        except (OSError, AssertionError):
            pass
        s.close()
        return None
    return wait_until(attempt, timeout, message=f"a served connection to {address}")
