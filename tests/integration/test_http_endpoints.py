"""The metrics listener's HTTP endpoints: /metrics, /ready, /status and the status page at /.

Also: idle or slow clients never block a scrape (many silent connections held open while
scrapes still answer at once), and the text passes `promtool check metrics`."""

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import time

from clients import echo_roundtrip
from daemon import metrics_daemon, service
from netutil import dead_address, free_address
from waiters import wait_until


def get(address, path, method="GET", timeout=5):
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_ready_answers_200_once_started_and_503_while_stopping(backends, switchyard):
    backend = backends.silent()
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backend])], shutdown_grace="10s")
    status, headers, body = get(d.metrics_address, "/ready")
    assert (status, body) == (200, b"ready\n")
    assert headers["Content-Type"].startswith("text/plain")
    # An open connection keeps the daemon in its shutdown grace: /ready must say 503 meanwhile.
    host, port = d.listen().rsplit(":", 1)
    held = socket.create_connection((host, int(port)))
    try:
        held.sendall(b"x")
        wait_until(lambda: d.admin("status")["services"][0]["pools"]["blue"]["active"] == 1,
                   5, 0.02, "the held connection to reach the backend")
        d.send_signal(signal.SIGTERM)
        got = wait_until(lambda: get(d.metrics_address, "/ready")[0] == 503 and get(d.metrics_address, "/ready"),
                         5, 0.02, "/ready to turn 503 while stopping")
        assert got[2] == b"not ready\n"
        assert d.running()
    finally:
        held.close()
    assert d.stop() == 0


def test_status_is_the_admin_status_reply(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.name("blue")],
                                            green=[backends.name("green")])])
    assert d.admin("split web blue=70 green=30")["ok"] is True
    status, headers, body = get(d.metrics_address, "/status")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    over_http = json.loads(body)
    over_admin = d.admin("status")
    assert over_http["ok"] is True
    assert set(over_http) == set(over_admin)
    web = over_http["services"][0]
    assert web["name"] == "web"
    assert web["split"] == {"blue": 70, "green": 30}
    assert web["generation"] == over_admin["services"][0]["generation"]
    assert [b["address"] for b in web["pools"]["green"]["backends"]] == \
        [b["address"] for b in over_admin["services"][0]["pools"]["green"]["backends"]]
    # Read-only: a query string or another method changes nothing.
    assert get(d.metrics_address, "/status?split=blue")[0] == 200
    assert get(d.metrics_address, "/status", method="POST")[0] == 405
    assert d.admin("status")["services"][0]["generation"] == web["generation"]


def test_status_page_is_self_contained_html(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    status, headers, body = get(d.metrics_address, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    page = body.decode()
    assert page.startswith("<!doctype html>")
    assert '<meta name="viewport"' in page
    # No external asset: nothing is loaded from anywhere but this listener's /status.
    assert not re.search(r'\b(src|href)\s*=', page), "the page loads an external asset"
    assert "http://" not in page and "https://" not in page
    assert 'fetch("/status"' in page
    # Nothing on the page can change traffic.
    assert "<form" not in page and "<button" not in page and "POST" not in page
    # HEAD gives the headers only.
    status, headers, body = get(d.metrics_address, "/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(page.encode())


def test_unknown_paths_are_404_and_other_methods_405(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    status, _, body = get(d.metrics_address, "/nope")
    assert status == 404 and b"/metrics" in body
    status, headers, _ = get(d.metrics_address, "/metrics", method="DELETE")
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_idle_and_slow_clients_never_block_a_scrape(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    host, port = d.metrics_address.rsplit(":", 1)
    held = []
    try:
        # Silent connections, and slow ones stuck halfway through their headers.
        for i in range(20):
            s = socket.create_connection((host, int(port)))
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        for _ in range(10):
            started = time.monotonic()
            status, _, body = get(d.metrics_address, "/metrics", timeout=2)
            assert status == 200 and b"switchyard_build_info" in body
            assert time.monotonic() - started < 1.0
        assert get(d.metrics_address, "/", timeout=2)[0] == 200
        assert get(d.metrics_address, "/status", timeout=2)[0] == 200
        # The held clients are still open (nobody was closed to serve these).
        for s in held:
            s.setblocking(False)
            try:
                assert s.recv(1) != b"", "an idle client was closed"
            except BlockingIOError:
                pass
    finally:
        for s in held:
            s.close()


def test_keep_alive_serves_several_requests_on_one_connection(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    host, port = d.metrics_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for path in ("/ready", "/metrics", "/status", "/"):
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            assert r.status == 200, path
    finally:
        conn.close()


def test_metrics_pass_promtool_check_metrics(backends, switchyard):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: scripts/install-deps.sh installs Debian's prometheus package"
    dead = dead_address()
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo(), dead],
                                            green=[backends.echo()], retries=1,
                                            health={"interval": "100ms", "timeout": "100ms"})])
    for _ in range(6):
        assert echo_roundtrip(d.listen(), b"ping") == b"ping"
    # Wait for checks (the dead backend's failures) so every family has series.
    wait_until(lambda: re.search(rb'switchyard_backend_check_failures_total\{[^}]*reason="refused"\} [1-9]',
                                 get(d.metrics_address, "/metrics")[2]), 5, 0.05, "a failed check to be counted")
    _, _, text = get(d.metrics_address, "/metrics")
    assert b"exposer_" not in text
    assert b"quantile" not in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    # One label set per metric name.
    label_sets = {}
    for line in text.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? ', line)
        names = frozenset(re.findall(r'(\w+)="', m.group(2) or ""))
        label_sets.setdefault(m.group(1), set()).add(names)
    mixed = {name: sets for name, sets in label_sets.items() if len(sets) > 1}
    assert not mixed, mixed


def test_a_crowd_of_silent_clients_cannot_lock_scrapers_out(backends, switchyard):
    # More silent connections than the listener keeps (256): the ones idle longest make room.
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    host, port = d.metrics_address.rsplit(":", 1)
    crowd = []
    try:
        for _ in range(300):
            crowd.append(socket.create_connection((host, int(port))))
        for _ in range(5):
            started = time.monotonic()
            status, _, body = get(d.metrics_address, "/metrics", timeout=2)
            assert status == 200 and b"switchyard_build_info" in body
            assert time.monotonic() - started < 1.0

        def closed(s):
            s.setblocking(False)
            try:
                return s.recv(1) == b""
            except BlockingIOError:
                return False
        # The oldest were closed to make room; the newest are still open.
        wait_until(lambda: closed(crowd[0]), 5, 0.05, "the oldest idle client to be closed")
        assert not closed(crowd[-1])
        assert "closing the one idle longest" in d.log()
    finally:
        for s in crowd:
            s.close()


def test_a_bad_request_gets_400_and_the_connection_closes(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    host, port = d.metrics_address.rsplit(":", 1)
    for junk in (b"HELLO THERE\r\n\r\n", b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(junk)
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:80]
            assert b"Connection: close" in reply
    assert get(d.metrics_address, "/ready")[0] == 200
