"""Prometheus metrics: after known traffic, /metrics shows exact counters and labels."""

import os
import re
import signal
import time
import urllib.request

from clients import connect, echo_roundtrip, exchange, recv_exactly, wait_closed
from daemon import metrics_daemon, service
from netutil import dead_address, free_address
from waiters import wait_until

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(address):
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def parse(text):
    """{(name, frozenset(labels)): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def total(samples, name, **labels):
    """Sum of every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def ended(samples, svc):
    """Client connections of `svc` that ended: after a backend, or before any."""
    return total(samples, "switchyard_connections_closed_total", service=svc) + \
        total(samples, "switchyard_connections_unserved_total", service=svc)


def settled(d, svc):
    """Scrape once the readiness probe's connection has ended (every accepted one is closed)."""
    def done():
        s = parse(scrape(d.metrics_address))
        accepted = value(s, "switchyard_connections_accepted_total", service=svc) or 0
        closed = ended(s, svc)
        active = value(s, "switchyard_connections_active", service=svc)
        return s if accepted >= 1 and closed == accepted and active == 0 else None
    return wait_until(done, 5, 0.05, "the readiness probe's connection to end")


def test_scrape_shows_per_pool_and_per_backend_traffic_exactly(backends, switchyard):
    blue = [backends.echo(), backends.echo()]
    green = [backends.echo()]
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=blue, green=green)])
    before = settled(d, "web")

    blue_sizes = [100, 2000, 30000, 7, 65536, 1]
    green_sizes = [5000, 12, 999, 250000]
    for n in blue_sizes:
        assert echo_roundtrip(d.listen(), b"b" * n) == b"b" * n
    assert d.admin("cutover web green")["ok"]
    for n in green_sizes:
        assert echo_roundtrip(d.listen(), b"g" * n) == b"g" * n

    def after_traffic():
        s = parse(scrape(d.metrics_address))
        return s if value(s, "switchyard_connections_active", service="web") == 0 and \
            ended(s, "web") == \
            value(s, "switchyard_connections_accepted_total", service="web") else None
    after = wait_until(after_traffic, 5, 0.05, "every connection to be counted as closed")

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("switchyard_connections_accepted_total", service="web") == 10
    for pool, sizes in (("blue", blue_sizes), ("green", green_sizes)):
        n = len(sizes)
        assert delta("switchyard_pool_connect_attempts_total", service="web", pool=pool) == n
        assert delta("switchyard_pool_connections_total", service="web", pool=pool) == n
        assert delta("switchyard_pool_connect_failures_total", service="web", pool=pool) == 0
        assert delta("switchyard_pool_in_bytes_total", service="web", pool=pool) == sum(sizes)
        assert delta("switchyard_pool_out_bytes_total", service="web", pool=pool) == sum(sizes)
        # The same figures summed over the pool's backends.
        assert delta("switchyard_upstream_connections_total", service="web", pool=pool) == n
        assert delta("switchyard_in_bytes_total", service="web", pool=pool) == sum(sizes)
        assert delta("switchyard_out_bytes_total", service="web", pool=pool) == sum(sizes)
        # The client half-closes first in every round trip.
        assert delta("switchyard_connections_closed_total", service="web", pool=pool, reason="client_close") == n
        assert delta("switchyard_connections_closed_total", service="web", pool=pool) == n
        assert delta("switchyard_upstream_connect_seconds_count", service="web", pool=pool) == n
        assert delta("switchyard_upstream_connect_seconds_bucket", service="web", pool=pool, le="+Inf") == n
        assert delta("switchyard_upstream_ttfb_seconds_count", service="web", pool=pool) == n
    # Every backend of the service is labelled, with its address.
    for b, pool in [(blue[0], "blue"), (blue[1], "blue"), (green[0], "green")]:
        assert value(after, "switchyard_backend_up", service="web", pool=pool, backend=b.address) == 1
        assert value(after, "switchyard_backend_weight", service="web", pool=pool, backend=b.address) == 100
        assert value(after, "switchyard_upstream_connections_active", service="web", pool=pool,
                     backend=b.address) == 0
    # Intent and effective weights after the cutover; generation moved once.
    assert value(after, "switchyard_pool_weight", service="web", pool="blue") == 0
    assert value(after, "switchyard_pool_weight", service="web", pool="green") == 100
    assert value(after, "switchyard_pool_effective_weight", service="web", pool="green") == 100
    assert value(after, "switchyard_generation", service="web") == value(before, "switchyard_generation",
                                                                          service="web") + 1
    assert value(after, "switchyard_revision", service="web") > value(before, "switchyard_revision", service="web")
    assert value(after, "switchyard_fallback_active", service="web") == 0
    assert value(after, "switchyard_rollout_step", service="web") == 0
    # The engine the daemon runs, as status names it (SWITCHYARD_TEST_ENGINE picks it).
    engine = d.admin("status")["engine"]
    assert engine == (os.environ.get("SWITCHYARD_TEST_ENGINE") or engine)
    assert re.search(r'^switchyard_build_info\{version="[0-9][^"]*",engine="' + re.escape(engine) + r'"\} 1$',
                     scrape(d.metrics_address), re.M)
    assert value(after, "switchyard_reloads_total", result="ok") == 0
    assert value(after, "switchyard_state_save_failures_total") == 0


def test_connect_failures_are_counted_against_the_backend_and_the_close_reason(backends, switchyard):
    dead = dead_address()
    # A long health interval keeps the dead backend routable for the whole test.
    svc = service("web", free_address(), blue=[dead], retries=0,
                  health={"interval": "60s", "timeout": "1s", "fall": 3, "rise": 2})
    d = metrics_daemon(switchyard, [svc])
    before = settled(d, "web")
    # Two, so that with the readiness probe's failure passive outlier detection
    # (5 in a row by default) does not eject the backend meanwhile.
    for _ in range(2):
        try:
            echo_roundtrip(d.listen(), b"x", timeout=5)
        except OSError:
            pass

    def counted():
        s = parse(scrape(d.metrics_address))
        return s if total(s, "switchyard_connections_unserved_total", service="web", reason="connect_failed") - \
            total(before, "switchyard_connections_unserved_total", service="web", reason="connect_failed") >= 2 else None
    after = wait_until(counted, 5, 0.05, "two connect failures to be counted")

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)
    assert delta("switchyard_connections_unserved_total", service="web", reason="connect_failed") == 2
    assert delta("switchyard_upstream_connect_attempts_total", service="web", pool="blue", backend=dead) == 2
    assert delta("switchyard_upstream_connect_failures_total", service="web", pool="blue", backend=dead) == 2
    # A dead port on loopback refuses: the breakdown says so, and nothing is blamed on this host.
    assert delta("switchyard_upstream_connect_errors_total", service="web", pool="blue", backend=dead,
                 reason="refused") == 2
    assert delta("switchyard_upstream_connect_errors_total", service="web", pool="blue", backend=dead,
                 reason="timeout") == 0
    assert delta("switchyard_upstream_connect_errors_total", service="web", pool="blue", backend=dead,
                 reason="local") == 0
    assert delta("switchyard_pool_connect_failures_total", service="web", pool="blue") == 2
    assert delta("switchyard_upstream_connections_total", service="web", pool="blue") == 0


def test_reloads_are_counted_by_result(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: value(parse(scrape(d.metrics_address)), "switchyard_reloads_total", result="ok") == 1,
               5, 0.05, "a successful reload to be counted")
    d.config_path.write_text("services: [ {\n")   # broken YAML
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: value(parse(scrape(d.metrics_address)), "switchyard_reloads_total", result="failed") == 1,
               5, 0.05, "a failed reload to be counted")
    assert value(parse(scrape(d.metrics_address)), "switchyard_reloads_total", result="ok") == 1
    assert d.running()


def test_process_metrics_describe_the_daemon(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    s = parse(scrape(d.metrics_address))
    assert value(s, "process_open_fds") > 3
    assert value(s, "process_resident_memory_bytes") > 1_000_000
    assert value(s, "process_cpu_seconds_total") >= 0
    assert abs(value(s, "process_start_time_seconds") - time.time()) < 120
    assert value(s, "switchyard_access_log_dropped_total") == 0


def test_metrics_text_follows_prometheus_conventions(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    text = scrape(d.metrics_address)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    for name, kind in types.items():
        if kind == "counter":
            assert name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        if name.startswith("switchyard_") and "bytes" in name:
            assert name.endswith("_bytes_total"), name
    assert types["switchyard_upstream_connect_seconds"] == "histogram"
    assert types["switchyard_upstream_ttfb_seconds"] == "histogram"
    assert types["switchyard_build_info"] == "gauge"


def test_rollout_step_and_outcome_are_exported(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[blue], green=[green])])
    before = parse(scrape(d.metrics_address))
    assert value(before, "switchyard_rollouts_total", service="web", outcome="promoted") == 0
    # A canary at 50% waits for promote: its step and share are visible meanwhile.
    assert d.admin("rollout web to=green steps=50 hold=200ms min_connections=1")["ok"] is True
    wait_until(lambda: value(parse(scrape(d.metrics_address)), "switchyard_rollout_active", service="web") == 1, 5)
    during = parse(scrape(d.metrics_address))
    assert value(during, "switchyard_rollout_step", service="web") == 1
    assert value(during, "switchyard_rollout_target_weight", service="web") == 50
    assert d.admin("rollout-abort web")["ok"] is True
    wait_until(lambda: value(parse(scrape(d.metrics_address)), "switchyard_rollout_active", service="web") == 0, 5)
    after = parse(scrape(d.metrics_address))
    assert value(after, "switchyard_rollout_step", service="web") == 0
    assert value(after, "switchyard_rollouts_total", service="web", outcome="aborted") == 1
    assert value(after, "switchyard_rollouts_total", service="web", outcome="promoted") == 0


def scraped(d):
    return parse(scrape(d.metrics_address))


def test_health_checks_are_counted_with_their_failure_reason_and_duration(backends, switchyard):
    alive, dead = backends.echo(), dead_address()
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[alive, dead],
                                            health={"interval": "200ms", "timeout": "200ms"})])
    labels = dict(service="web", pool="blue")
    s = wait_until(lambda: (lambda s: s if value(s, "switchyard_backend_checks_total", backend=dead, **labels) >= 3
                            and value(s, "switchyard_backend_checks_total", backend=alive.address, **labels) >= 3
                            else None)(scraped(d)), 5, 0.05, "three checks of each backend")
    checks_dead = value(s, "switchyard_backend_checks_total", backend=dead, **labels)
    # Every check of the dead backend failed, refused; none for another reason.
    assert value(s, "switchyard_backend_check_failures_total", backend=dead, reason="refused", **labels) == checks_dead
    assert total(s, "switchyard_backend_check_failures_total", backend=dead, **labels) == checks_dead
    assert total(s, "switchyard_backend_check_failures_total", backend=alive.address, **labels) == 0
    for b in (dead, alive.address):
        checks = value(s, "switchyard_backend_checks_total", backend=b, **labels)
        assert value(s, "switchyard_backend_check_duration_seconds_count", backend=b, **labels) == checks
        assert value(s, "switchyard_backend_check_duration_seconds_bucket", backend=b, le="+Inf", **labels) == checks
        # Loopback answers (or refuses) in well under the 200 ms timeout.
        assert value(s, "switchyard_backend_check_duration_seconds_bucket", backend=b, le="0.1", **labels) == checks


def test_retries_and_connect_errors_by_reason_are_counted(backends, switchyard):
    alive, dead = backends.echo(), dead_address()
    # Checks far apart keep the dead backend routable; retries=1 sends a refused client to the live one.
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[dead, alive], retries=1,
                                            health={"interval": "60s", "timeout": "1s"})])
    before = settled(d, "web")
    for _ in range(4):
        assert echo_roundtrip(d.listen(), b"hello") == b"hello"
    after = wait_until(lambda: (lambda s: s if value(s, "switchyard_connections_active", service="web") == 0
                                else None)(scraped(d)), 5, 0.05, "the connections to end")

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)
    refused = delta("switchyard_upstream_connect_errors_total", service="web", backend=dead, reason="refused")
    assert refused >= 1   # round robin starts some clients on the dead backend
    # Each refused connect was followed by exactly one retry, on the live backend.
    assert delta("switchyard_upstream_retries_total", service="web", backend=alive.address) == refused
    assert delta("switchyard_upstream_retries_total", service="web", backend=dead) == 0
    assert delta("switchyard_pool_retries_total", service="web", pool="blue") == refused
    assert delta("switchyard_upstream_connect_errors_total", service="web", backend=dead, reason="timeout") == 0
    assert delta("switchyard_upstream_connect_errors_total", service="web", backend=dead, reason="other") == 0
    assert delta("switchyard_upstream_connect_failures_total", service="web", backend=dead) == refused


def test_connection_durations_are_a_histogram_per_pool(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()])])
    before = settled(d, "web")
    with connect(d.listen()) as s:
        assert exchange(s, b"ping") == b"ping"
        held_from = time.monotonic()
        wait_until(lambda: time.monotonic() - held_from >= 0.3, 2, 0.05, "0.3 s to pass")
    after = wait_until(lambda: (lambda s: s if value(s, "switchyard_upstream_connection_duration_seconds_count",
                                                     service="web", pool="blue") ==
                                1 + value(before, "switchyard_upstream_connection_duration_seconds_count",
                                          service="web", pool="blue") else None)(scraped(d)),
                       5, 0.05, "the held connection's duration to be recorded")
    labels = dict(service="web", pool="blue")
    lived = value(after, "switchyard_upstream_connection_duration_seconds_sum", **labels) - \
        value(before, "switchyard_upstream_connection_duration_seconds_sum", **labels)
    assert 0.3 <= lived < 5
    assert value(after, "switchyard_upstream_connection_duration_seconds_bucket", le="0.1", **labels) == \
        value(before, "switchyard_upstream_connection_duration_seconds_bucket", le="0.1", **labels)


def test_panic_mode_and_limits_are_exported(backends, switchyard):
    dead_blue, dead_green = dead_address(), dead_address()
    limited = {"address": dead_green, "max_connections": 7}
    svc = service("web", free_address(), blue=[dead_blue], green=[dead_green], max_connections=3,
                  health={"interval": "100ms", "timeout": "100ms", "fall": 1})
    svc["pools"]["green"] = [limited]
    d = metrics_daemon(switchyard, [svc])
    s = wait_until(lambda: (lambda s: s if value(s, "switchyard_panic_active", service="web") == 1 else None)(
        scraped(d)), 5, 0.05, "panic mode")
    assert value(s, "switchyard_max_connections", service="web") == 3
    assert value(s, "switchyard_backend_max_connections", service="web", pool="green", backend=dead_green) == 7
    assert value(s, "switchyard_backend_max_connections", service="web", pool="blue", backend=dead_blue) is None
    assert value(s, "switchyard_connections_limit_refused_total", service="web") == 0


def test_connections_over_max_connections_are_counted_as_refused(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()], max_connections=1)])
    before = settled(d, "web")
    with connect(d.listen()) as held:
        assert exchange(held, b"a") == b"a"
        with connect(d.listen()) as extra:
            wait_closed(extra)
        after = wait_until(lambda: (lambda s: s if value(s, "switchyard_connections_limit_refused_total",
                                                         service="web") == 1 else None)(scraped(d)),
                           5, 0.05, "the refusal to be counted")
    assert value(before, "switchyard_connections_limit_refused_total", service="web") == 0
    assert value(after, "switchyard_connections_unserved_total", service="web", reason="connection_limit") == 1


def test_proxy_header_errors_are_counted(backends, switchyard):
    d = metrics_daemon(switchyard, [service("web", free_address(), blue=[backends.echo()], accept_proxy=True)])
    with connect(d.listen()) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")   # not a PROXY header
        wait_closed(s)
    s = wait_until(lambda: (lambda s: s if value(s, "switchyard_proxy_header_errors_total", service="web") == 1
                            else None)(scraped(d)), 5, 0.05, "the bad header to be counted")
    assert value(s, "switchyard_proxy_header_timeouts_total", service="web") == 0


def test_splice_pipes_in_use_are_shown_per_worker(backends, switchyard):
    payload = os.urandom(24 * 1024 * 1024)
    d = metrics_daemon(switchyard, [service("bulk", free_address(), blue=[backends.sending(payload)])])
    assert total(scraped(d), "switchyard_worker_splice_pipes_in_use") == 0
    assert {dict(ls)["worker"] for (n, ls) in scraped(d) if n == "switchyard_worker_splice_pipes_in_use"} == {"0", "1"}
    with connect(d.listen()) as s:
        head = recv_exactly(s, 1024 * 1024, timeout=10)
        # The client stops reading: the flow waits in a splice pipe.
        wait_until(lambda: total(scraped(d), "switchyard_worker_splice_pipes_in_use") == 1, 5, 0.05,
                   "a splice pipe in use")
        recv_exactly(s, len(payload) - len(head), timeout=60)
    wait_until(lambda: total(scraped(d), "switchyard_worker_splice_pipes_in_use") == 0, 5, 0.05,
               "the pipe given back")
