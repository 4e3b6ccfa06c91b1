"""Connect failures, retries, dead pools, timeouts, and resilience to bad peers."""

import socket
import time

from clients import abort, connect, echo_roundtrip, exchange, http_get, wait_closed
from daemon import service
from netutil import dead_address, free_address
from waiters import wait_until


def test_connect_failure_is_retried_onto_a_live_backend_without_client_errors(backends, switchyard):
    live = backends.name("live")
    d = switchyard([service("web", free_address(), blue=[dead_address(), live], retries=2)])
    errors = []
    answers = []
    for _ in range(200):
        try:
            answers.append(http_get(d.listen(), timeout=5))
        except Exception as exc:  # every failure is a client-visible error
            errors.append(repr(exc))
    assert errors == []
    assert answers == ["live"] * 200


def test_connect_failure_in_the_chosen_pool_falls_over_to_the_other_pool(backends, switchyard):
    green = backends.name("green")
    d = switchyard([service("web", free_address(), blue=[dead_address()], green=[green],
                            split={"blue": 99, "green": 1}, retries=1)])
    answers = [http_get(d.listen(), timeout=5) for _ in range(50)]
    assert answers == ["green"] * 50


def test_all_backends_down_gives_the_client_a_prompt_close(switchyard):
    d = switchyard([service("web", free_address(), blue=[dead_address(), dead_address()],
                            green=[dead_address()], split={"blue": 50, "green": 50}, retries=2)])
    for _ in range(3):
        start = time.monotonic()
        with connect(d.listen()) as s:
            try:
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            except OSError:
                pass
            wait_closed(s, timeout=3.0)
        assert time.monotonic() - start < 3.0
    assert d.running()


def test_connect_timeout_closes_the_client_instead_of_hanging(switchyard):
    # 192.0.2.0/24 (TEST-NET-1) is never routed: the connect either times out or fails at once.
    d = switchyard([service("web", free_address(), blue=["192.0.2.1:9"], retries=0,
                            timeouts={"connect": "300ms", "idle": "300s"})])
    start = time.monotonic()
    with connect(d.listen()) as s:
        wait_closed(s, timeout=3.0)
    assert time.monotonic() - start < 2.0


def test_idle_connection_is_closed_after_the_idle_timeout(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo],
                            timeouts={"connect": "2s", "idle": "500ms"})])
    with connect(d.listen()) as s:
        assert exchange(s, b"hello") == b"hello"
        start = time.monotonic()
        how, _ = wait_closed(s, timeout=3.0)
        idle_for = time.monotonic() - start
    assert 0.35 <= idle_for <= 1.5, f"closed ({how}) after {idle_for:.2f}s of idleness"


def test_a_busy_connection_outlives_the_idle_timeout(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo],
                            timeouts={"connect": "2s", "idle": "500ms"})])
    with connect(d.listen()) as s:
        deadline = time.monotonic() + 1.5
        n = 0
        while time.monotonic() < deadline:
            assert exchange(s, b"tick %d" % n) == b"tick %d" % n
            n += 1
            time.sleep(0.2)   # pacing the traffic, not waiting for a condition
    assert n >= 6


def test_idle_timeout_also_closes_a_silent_backend(backends, switchyard):
    silent = backends.silent()
    d = switchyard([service("web", free_address(), blue=[silent],
                            timeouts={"connect": "2s", "idle": "500ms"})])
    with connect(d.listen()) as s:
        s.sendall(b"anyone there?")
        how, waited = wait_closed(s, timeout=3.0)
    assert waited <= 1.5
    wait_until(lambda: silent.open_connections == 0, 3,
               message="the daemon to close its side toward the silent backend")


def test_backend_reset_mid_stream_closes_the_client(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo])])
    with connect(d.listen()) as s:
        assert exchange(s, b"before") == b"before"
        echo.kill()
        wait_closed(s, timeout=3.0)
    assert d.running()


def test_vanishing_clients_and_refusing_backends_leak_no_file_descriptors(backends, switchyard):
    echo = backends.echo()
    silent = backends.silent()
    d = switchyard([
        service("echo", free_address(), blue=[echo]),
        service("refused", free_address(), blue=[dead_address()], retries=1),
        service("silent", free_address(), blue=[silent]),
    ])
    assert echo_roundtrip(d.listen("echo"), b"warm-up") == b"warm-up"
    wait_until(lambda: echo.open_connections == 0 and silent.open_connections == 0, 3)
    baseline = d.fd_count()

    for i in range(30):
        # connects and vanishes at once, with a FIN or an RST
        s = connect(d.listen("echo"))
        abort(s) if i % 2 else s.close()
        # sends half a request, then resets
        s = connect(d.listen("echo"))
        s.sendall(b"partial")
        abort(s)
        # a backend that refuses
        s = connect(d.listen("refused"))
        try:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        except OSError:
            pass
        s.close()
        # a backend that never answers, and a client that gives up
        s = connect(d.listen("silent"))
        s.sendall(b"hello?")
        abort(s)

    assert d.running()
    assert echo_roundtrip(d.listen("echo"), b"still serving") == b"still serving"
    wait_until(lambda: d.fd_count() <= baseline, 10,
               message=f"the daemon's fd count to return to its baseline of {baseline}")
    wait_until(lambda: silent.open_connections == 0, 10,
               message="connections toward the silent backend to be closed")


def test_durations_at_the_cap_mean_a_long_time_not_at_once(backends, switchyard):
    """365 days is the cap: an idle timeout, drain_timeout and shutdown_grace at the cap must
    mean "a very long time", never wrap around into "at once" (they did past ~106 days)."""
    import signal
    blue, green = backends.echo(), backends.echo()
    d = switchyard([service("echo", free_address(), blue=[blue], green=[green], drain_timeout="8760h",
                            timeouts={"connect": "2s", "idle": "8760h"})], shutdown_grace="8760h")

    def still_open(s):
        s.settimeout(0.5)
        try:
            got = s.recv(1)
        except socket.timeout:
            return True
        raise AssertionError(f"the connection was closed ({got!r})")

    with connect(d.listen()) as s:
        assert exchange(s, b"hello") == b"hello"
        assert still_open(s)
        assert d.admin("cutover echo green")["ok"] is True   # blue drains for a year
        assert still_open(s) and exchange(s, b"draining") == b"draining"
        d.send_signal(signal.SIGTERM)                       # open connections may finish for a year
        assert still_open(s) and exchange(s, b"stopping") == b"stopping"
    d.kill()


def test_a_half_closed_connection_is_closed_after_timeouts_half_closed(switchyard):
    """Once the client has sent its FIN, a backend that never answers nor closes holds the
    session for timeouts.half_closed (default 30 s, HAProxy's client-fin), not for the
    much longer timeouts.idle."""
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []

    def hold():   # accepts (health checks too) and never reads, answers nor closes
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return
    threading.Thread(target=hold, daemon=True).start()

    def ours():
        for c in list(held):
            try:
                if c.recv(100, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"request":
                    return c
            except BlockingIOError:
                pass
        return None
    d = switchyard([service("web", free_address(), blue=["127.0.0.1:%d" % listener.getsockname()[1]],
                            health={"type": "tcp", "interval": "60s", "timeout": "1s"},
                            timeouts={"connect": "2s", "idle": "300s", "half_closed": "30s"})])
    try:
        with connect(d.listen()) as s:
            s.sendall(b"request")
            backend = wait_until(ours, 5)
            s.shutdown(socket.SHUT_WR)
            how, waited = wait_closed(s, timeout=45)
        assert 28 <= waited <= 36, f"closed ({how}) {waited:.1f}s after the client's FIN"
        backend.settimeout(5)
        assert backend.recv(100) == b"request" and backend.recv(100) == b"", "the backend side is closed too"
        assert d.admin("status web")["services"][0]["active_connections"] == 0
    finally:
        for c in held:
            c.close()
        listener.close()
