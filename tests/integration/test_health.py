"""Active health checks (issue 6): tcp, send_expect and http checks, rise/fall, timeouts,
maintenance, and what `status` and the log say. Health flips move `revision`, never `generation`."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from clients import http_get
from daemon import service
from netutil import dead_address, free_address
from waiters import wait_until

FAST = {"type": "tcp", "interval": "200ms", "timeout": "100ms", "rise": 2, "fall": 3}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class HttpHealthBackend:
    """GET /healthz answers 200 while `healthy`, else 503; any other path answers 200 with the name."""

    def __init__(self, name):
        self.name = name
        self.healthy = True
        self.checks = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/healthz":
                    outer.checks += 1
                    code, body = (200, b"ok") if outer.healthy else (503, b"sick")
                else:
                    code, body = 200, outer.name.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class LineBackend:
    """Reads one line, answers `reply`, closes (a send_expect peer)."""

    def __init__(self, reply):
        self.reply = reply
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\n" not in data:
                    chunk = conn.recv(1024)
                    if not chunk:
                        return
                    data += chunk
                conn.sendall(self.reply)
            except OSError:
                pass

    def stop(self):
        self.listener.close()


def status(d, name="web"):
    reply = d.admin(f"status {name}")
    assert reply["ok"], reply
    return reply["services"][0]


def backend_of(svc, address):
    for pool in svc["pools"].values():
        for b in pool["backends"]:
            if b["address"] == address:
                return b
    raise KeyError(address)


def all_checked(d):
    svc = status(d)
    return all(b["checked"] for p in svc["pools"].values() for b in p["backends"]
               if b["admin_state"] != "disabled")


def test_a_killed_backend_is_down_within_interval_times_fall_and_status_says_why(backends, switchyard):
    a, b = backends.name("a"), backends.name("b")
    d = switchyard([service("web", free_address(), blue=[a, b], health=FAST)])
    wait_until(lambda: all_checked(d), 5, message="every backend checked once")
    before = status(d)
    assert backend_of(before, a.address)["health"] == "up"
    assert backend_of(before, a.address)["last_failure"] is None

    a.kill()
    killed = time.monotonic()
    wait_until(lambda: backend_of(status(d), a.address)["health"] == "down", 5, 0.02, "a to be marked down")
    took = time.monotonic() - killed
    # fall x interval = 0.6 s (checks never come later than the interval); slack for a busy machine.
    assert took < 0.6 + 0.6, took

    after = status(d)
    down = backend_of(after, a.address)
    assert down["last_failure"] == "connect: Connection refused"
    assert down["effective_weight"] == 0
    assert after["generation"] == before["generation"]
    assert after["revision"] > before["revision"]
    assert f"web: backend {a.address} (pool blue) is DOWN after 3 failed check(s): connect: Connection refused" \
        in d.log()

    # An unhealthy backend gets no new connections.
    attempts = down["connect_attempts"]
    assert [http_get(d.listen()) for _ in range(20)] == ["b"] * 20
    assert backend_of(status(d), a.address)["connect_attempts"] == attempts


def test_a_backend_dead_at_start_is_down_after_its_first_check(backends, switchyard):
    live = backends.name("live")
    dead = dead_address()
    d = switchyard([service("web", free_address(), blue=[live, dead],
                            health={"type": "tcp", "interval": "60s", "timeout": "1s", "rise": 2, "fall": 3})])
    # Checked at once (within a second of start), and the first result decides alone.
    wait_until(lambda: backend_of(status(d), dead)["health"] == "down", 3, 0.05, "the dead backend down")
    st = backend_of(status(d), dead)
    assert st["checked"] is True
    assert st["last_failure"] == "connect: Connection refused"
    assert backend_of(status(d), live.address)["health"] == "up"
    assert f"web: backend {dead} (pool blue) is DOWN: its first check failed: connect: Connection refused" in d.log()


def test_a_backend_that_accepts_but_never_answers_is_down_by_the_timeout(backends, switchyard):
    good = HttpHealthBackend("good")
    silent = backends.silent()
    try:
        d = switchyard([service("web", free_address(), blue=[good.address, silent],
                                health={"type": "http", "interval": "500ms", "timeout": "400ms", "rise": 2,
                                        "fall": 2, "http": {"path": "/healthz", "expect_status": 200}})])
        wait_until(lambda: backend_of(status(d), silent.address)["health"] == "down", 8, 0.05, "silent down")
        svc = status(d)
        assert backend_of(svc, silent.address)["last_failure"] == "timeout after 400ms waiting for the HTTP status line"
        assert backend_of(svc, good.address)["health"] == "up"
        assert backend_of(svc, good.address)["last_failure"] is None
        assert good.checks >= 1
    finally:
        good.stop()


def test_send_expect_checks_pass_on_the_expected_reply_and_fail_otherwise(switchyard):
    pong = LineBackend(b"+PONG\r\n")
    nope = LineBackend(b"NOPE\r\n")
    try:
        d = switchyard([service("web", free_address(), blue=[pong.address, nope.address],
                                health={"type": "send_expect", "interval": "200ms", "timeout": "150ms",
                                        "rise": 2, "fall": 2, "send_expect": {"send": "PING\r\n", "expect": "PONG"}})])
        wait_until(lambda: backend_of(status(d), nope.address)["health"] == "down", 5, 0.05, "nope down")
        wait_until(lambda: all_checked(d), 5, message="every backend checked once")
        svc = status(d)
        assert backend_of(svc, pong.address)["health"] == "up"
        assert backend_of(svc, pong.address)["last_failure"] is None
        assert backend_of(svc, nope.address)["last_failure"] == 'closed before "PONG" came; got "NOPE\\r\\n"'
    finally:
        pong.stop()
        nope.stop()


def test_http_checks_compare_the_status_and_a_backend_rises_again(switchyard):
    good, sick = HttpHealthBackend("good"), HttpHealthBackend("sick")
    sick.healthy = False
    try:
        d = switchyard([service("web", free_address(), blue=[good.address, sick.address],
                                health={"type": "http", "interval": "200ms", "timeout": "150ms", "rise": 2,
                                        "fall": 2, "http": {"path": "/healthz", "expect_status": 200}})])
        wait_until(lambda: backend_of(status(d), sick.address)["health"] == "down", 5, 0.05, "sick down")
        before = status(d)
        assert backend_of(before, sick.address)["last_failure"] == "HTTP status 503, expected 200"
        assert backend_of(before, good.address)["health"] == "up"

        sick.healthy = True
        wait_until(lambda: backend_of(status(d), sick.address)["health"] == "up", 5, 0.05, "sick up again")
        after = status(d)
        # The last failure stays visible after recovery; the flip moved revision only.
        assert backend_of(after, sick.address)["last_failure"] == "HTTP status 503, expected 200"
        assert after["generation"] == before["generation"]
        assert after["revision"] > before["revision"]
        assert f"web: backend {sick.address} (pool blue) is UP after 2 passed check(s)" in d.log()
        answers = {http_get(d.listen()) for _ in range(20)}
        assert answers == {"good", "sick"}
    finally:
        good.stop()
        sick.stop()


def test_disabled_backends_are_not_checked_and_drained_ones_are(switchyard):
    a, b = HttpHealthBackend("a"), HttpHealthBackend("b")
    try:
        d = switchyard([service("web", free_address(), blue=[a.address, b.address],
                                health={"type": "http", "interval": "100ms", "timeout": "100ms",
                                        "http": {"path": "/healthz", "expect_status": 200}})])
        wait_until(lambda: all_checked(d), 5, message="every backend checked once")
        assert d.admin(f"backend web blue {a.address} disable")["ok"]
        assert d.admin(f"backend web blue {b.address} drain force")["ok"]   # no routable weight left
        # A check of a already under way has landed once b had three more.
        b0 = b.checks
        wait_until(lambda: b.checks >= b0 + 3, 5, 0.02, "three more checks of the drained backend")
        a_checks = a.checks
        b_checks = b.checks
        wait_until(lambda: b.checks >= b_checks + 5, 5, 0.02, "five more checks of the drained backend")
        assert a.checks == a_checks
        assert backend_of(status(d), a.address)["checked"] is False

        assert d.admin(f"backend web blue {a.address} enable")["ok"]
        wait_until(lambda: a.checks > a_checks, 5, 0.02, "a checked again once enabled")
        wait_until(lambda: backend_of(status(d), a.address)["checked"], 5, 0.02, "a checked in status")
    finally:
        a.stop()
        b.stop()
