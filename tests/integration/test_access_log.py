"""Access log: off by default; one line per closed connection, matching what the client did."""

import re

from clients import connect, echo_roundtrip, recv_all
from daemon import service
from netutil import dead_address, free_address
from waiters import wait_until

LINE = re.compile(r"^accepted=(?P<accepted>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d) "
                  r"client=(?P<client>\S+) listener=(?P<listener>\S+) service=(?P<service>\S+) pool=(?P<pool>\S+) "
                  r"backend=(?P<backend>\S+) retries=(?P<retries>\d+) "
                  r"bytes_in=(?P<bytes_in>\d+) bytes_out=(?P<bytes_out>\d+) duration_ms=(?P<duration>[\d.]+) "
                  r"connect_ms=(?P<connect>[\d.]+|-) ttfb_ms=(?P<ttfb>[\d.]+|-) reason=(?P<reason>\w+)$")


def records(text):
    return [m.groupdict() for m in (LINE.search(line) for line in text.splitlines()) if m]


def roundtrip_from_known_port(address, payload):
    """An echo round trip; returns the client's own address as the log prints it."""
    s = connect(address)
    try:
        host, port = s.getsockname()[:2]
        s.sendall(payload)
        s.shutdown(1)
        assert recv_all(s) == payload
    finally:
        s.close()
    return f"{host}:{port}"


def test_access_log_is_off_by_default(backends, switchyard):
    d = switchyard([service("web", free_address(), blue=[backends.echo()])])
    assert echo_roundtrip(d.listen(), b"hello") == b"hello"
    d.stop()
    assert records(d.log()) == []


def test_each_closed_connection_writes_one_line_to_the_access_log_file(backends, switchyard, tmp_path):
    blue, green = backends.echo(), backends.echo()
    path = tmp_path / "access.log"
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])],
                   extra={"log": {"level": "info", "access_log": True, "access_log_path": str(path)}})
    made = {}
    for n in (10, 2000, 70000):
        made[roundtrip_from_known_port(d.listen(), b"a" * n)] = ("blue", blue.address, n)
    assert d.admin("cutover web green")["ok"]
    made[roundtrip_from_known_port(d.listen(), b"z" * 321)] = ("green", green.address, 321)

    def logged():
        got = {r["client"]: r for r in records(path.read_text()) if r["client"] in made}
        return got if len(got) == len(made) else None
    got = wait_until(logged, 5, 0.05, "a line for every connection")
    for client, (pool, backend, n) in made.items():
        r = got[client]
        assert r["service"] == "web"
        assert r["pool"] == pool
        assert r["backend"] == backend
        assert int(r["bytes_in"]) == n
        assert int(r["bytes_out"]) == n
        assert r["reason"] == "client_close"
        assert r["connect"] != "-"
        assert float(r["connect"]) <= float(r["duration"])
    # Exactly one line per connection.
    clients = [r["client"] for r in records(path.read_text())]
    for client in made:
        assert clients.count(client) == 1


def test_a_connection_that_reaches_no_backend_is_logged_with_its_reason(backends, switchyard, tmp_path):
    path = tmp_path / "access.log"
    svc = service("web", free_address(), blue=[dead_address()], retries=0,
                  health={"interval": "60s", "timeout": "1s", "fall": 3, "rise": 2})
    d = switchyard([svc], extra={"log": {"level": "info", "access_log": True, "access_log_path": str(path)}})
    s = connect(d.listen())
    client = "%s:%d" % s.getsockname()[:2]
    try:
        recv_all(s, 5)
    except OSError:
        pass
    finally:
        s.close()
    r = wait_until(lambda: next((r for r in records(path.read_text()) if r["client"] == client), None), 5, 0.05,
                   "the failed connection's line")
    assert r["reason"] == "connect_failed"
    assert r["pool"] == "-" and r["backend"] == "-" and r["connect"] == "-"
    assert r["bytes_in"] == "0" and r["bytes_out"] == "0"


def test_without_a_path_the_access_log_goes_to_stderr(backends, switchyard):
    d = switchyard([service("web", free_address(), blue=[backends.echo()])],
                   extra={"log": {"level": "info", "access_log": True}})
    client = roundtrip_from_known_port(d.listen(), b"ping")
    wait_until(lambda: any(r["client"] == client for r in records(d.log())), 5, 0.05, "the line on stderr")
    # The same line as in a file: one format on every sink.
    line = next(line for line in d.log().splitlines() if f"client={client} " in line)
    assert line.startswith("accepted=") and f"listener={d.listen()} " in line


def test_reload_turns_the_access_log_on(backends, switchyard, tmp_path):
    import signal
    path = tmp_path / "access.log"
    d = switchyard([service("web", free_address(), blue=[backends.echo()])],
                   extra={"log": {"level": "info", "access_log": False, "access_log_path": str(path)}})
    first = roundtrip_from_known_port(d.listen(), b"one")
    d.config["log"] = {"level": "info", "access_log": True, "access_log_path": str(path)}
    d.write_config()
    d.send_signal(signal.SIGHUP)

    def second_logged():
        c = roundtrip_from_known_port(d.listen(), b"two")
        return path.exists() and any(r["client"] == c for r in records(path.read_text()))
    wait_until(second_logged, 5, 0.2, "a line once the reload turned the log on")
    assert all(r["client"] != first for r in records(path.read_text()))


def test_with_accept_proxy_the_access_log_names_the_client_from_the_header(backends, switchyard, tmp_path):
    echo = backends.echo()
    path = tmp_path / "access.log"
    d = switchyard([service("web", free_address(), blue=[echo], accept_proxy=True)],
                   extra={"log": {"level": "info", "access_log": True, "access_log_path": str(path)}})
    s = connect(d.listen())
    try:
        # The balancer in front says the client was 203.0.113.7:4242.
        s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 80\r\nhello")
        s.shutdown(1)
        assert recv_all(s) == b"hello"
    finally:
        s.close()
    got = wait_until(lambda: [r for r in records(path.read_text()) if r["client"] == "203.0.113.7:4242"] or None,
                     5, 0.05, "the access line with the header's client")
    assert got[0]["bytes_in"] == "5" and got[0]["bytes_out"] == "5"


def test_access_lines_carry_listener_retries_and_time_to_first_byte(backends, switchyard, tmp_path):
    path = tmp_path / "access.log"
    alive, dead = backends.echo(), dead_address()
    d = switchyard([service("web", free_address(), blue=[dead, alive], retries=1,
                            health={"interval": "60s", "timeout": "1s"})],
                   extra={"log": {"level": "info", "access_log": True, "access_log_path": str(path)}})
    clients = [roundtrip_from_known_port(d.listen(), b"x" * 10) for _ in range(4)]
    got = wait_until(lambda: (lambda rs: rs if len(rs) == 4 else None)(
        [r for r in records(path.read_text()) if r["client"] in clients]), 5, 0.05, "four lines")
    assert {r["listener"] for r in got} == {d.listen()}
    assert {r["backend"] for r in got} == {alive.address}
    # Round robin starts some clients on the dead backend: those were retried once.
    assert sorted(int(r["retries"]) for r in got) in ([0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1])
    assert any(int(r["retries"]) == 1 for r in got)
    for r in got:
        assert float(r["ttfb"]) >= 0 and float(r["connect"]) <= float(r["duration"])


def test_json_access_log_has_one_object_per_line(backends, switchyard, tmp_path):
    import json
    path = tmp_path / "access.json"
    d = switchyard([service("web", free_address(), blue=[backends.echo()])],
                   extra={"log": {"level": "info", "access_log": True, "access_log_path": str(path),
                                  "access_log_format": "json"}})
    client = roundtrip_from_known_port(d.listen(), b"hello")

    def line():
        for text in path.read_text().splitlines():
            obj = json.loads(text)
            if obj["client"] == client:
                return obj
        return None
    obj = wait_until(line, 5, 0.05, "the JSON line")
    assert set(obj) == {"accepted", "client", "listener", "service", "pool", "backend", "retries", "bytes_in",
                        "bytes_out", "duration_ms", "connect_ms", "ttfb_ms", "reason"}
    assert (obj["service"], obj["pool"], obj["listener"], obj["retries"]) == ("web", "blue", d.listen(), 0)
    assert (obj["bytes_in"], obj["bytes_out"], obj["reason"]) == (5, 5, "client_close")


def test_sigusr1_reopens_the_access_log_file_after_logrotate_moved_it(backends, switchyard, tmp_path):
    import signal
    path = tmp_path / "access.log"
    d = switchyard([service("web", free_address(), blue=[backends.echo()])],
                   extra={"log": {"level": "info", "access_log": True, "access_log_path": str(path)}})
    first = roundtrip_from_known_port(d.listen(), b"one")
    wait_until(lambda: any(r["client"] == first for r in records(path.read_text())), 5, 0.05, "the first line")
    rotated = tmp_path / "access.log.1"
    path.rename(rotated)   # what logrotate does, then it sends SIGUSR1
    d.send_signal(signal.SIGUSR1)
    wait_until(lambda: path.exists() and "SIGUSR1: access log reopened" in d.log(), 5, 0.05, "the file reopened")
    second = roundtrip_from_known_port(d.listen(), b"two")
    wait_until(lambda: any(r["client"] == second for r in records(path.read_text())), 5, 0.05, "a line in the new file")
    old = [r["client"] for r in records(rotated.read_text())]
    assert first in old and second not in old   # (the readiness probe's line is there too)
    assert d.running()


def test_under_the_journal_log_lines_carry_their_syslog_priority(backends, switchyard):
    # journald reads "<N>" at the start of a line (SyslogLevelPrefix=), so `journalctl -p warning` finds warnings.
    d = switchyard([service("web", free_address(), blue=[backends.echo(), dead_address()],
                            health={"interval": "100ms", "timeout": "100ms"})],
                   extra={"log": {"level": "info", "access_log": True}}, env={"JOURNAL_STREAM": "8:12345"})
    roundtrip_from_known_port(d.listen(), b"ping")
    wait_until(lambda: "<4>warning health: web: backend" in d.log(), 5, 0.05, "the DOWN warning")
    lines = d.log().splitlines()
    assert any(line.startswith("<6>info daemon: switchyard ") and " ready: " in line for line in lines)
    assert any(line.startswith("<4>warning health: web: backend ") and "is DOWN" in line for line in lines)
    access = [line for line in lines if "accepted=" in line]
    assert access and all(line.startswith("<6>accepted=") for line in access)
    assert all(re.match(r"^<[0-7]>", line) for line in lines), [l for l in lines if not re.match(r"^<[0-7]>", l)]
