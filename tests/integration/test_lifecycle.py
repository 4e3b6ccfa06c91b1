"""Start-up and graceful shutdown (SIGTERM, SIGINT, shutdown_grace)."""

import signal
import socket
import time

from clients import connect, exchange, wait_closed
from daemon import run_switchyard, service
from netutil import free_address, split_address
from waiters import wait_until


def refuses(address):
    host, port, family = split_address(address)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


def test_sigterm_lets_an_open_stream_finish_and_refuses_new_connections(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo])], shutdown_grace="20s")
    stream = connect(d.listen())
    try:
        assert exchange(stream, b"before") == b"before"
        d.send_signal(signal.SIGTERM)
        wait_until(lambda: refuses(d.listen()), 2, message="new connections to be refused")
        for i in range(5):
            msg = b"during shutdown %d" % i * 1000
            assert exchange(stream, msg) == msg
        assert d.running(), "exited while a connection was still open"
    finally:
        stream.close()
    start = time.monotonic()
    assert d.wait_exit(timeout=5) == 0
    assert time.monotonic() - start < 2.0


def test_sigterm_cuts_a_stuck_connection_at_shutdown_grace_and_exits_zero(backends, switchyard):
    silent = backends.silent()
    d = switchyard([service("web", free_address(), blue=[silent])], shutdown_grace="1s")
    with connect(d.listen()) as stuck:
        stuck.sendall(b"no answer will come")
        wait_until(lambda: silent.open_connections >= 1, 3)
        start = time.monotonic()
        d.send_signal(signal.SIGTERM)
        assert d.wait_exit(timeout=5) == 0
        took = time.monotonic() - start
        wait_closed(stuck, timeout=1.0)
    assert 0.9 <= took <= 1.6, f"exited {took:.2f}s after SIGTERM with shutdown_grace 1s"


def test_sigterm_with_no_connections_exits_zero_promptly(backends, switchyard):
    d = switchyard([service("web", free_address(), blue=[backends.echo()])], shutdown_grace="10s")
    start = time.monotonic()
    d.stop(expect=0, timeout=5)
    assert time.monotonic() - start < 1.0


def test_sigint_shuts_down_like_sigterm(backends, switchyard):
    d = switchyard([service("web", free_address(), blue=[backends.echo()])])
    d.stop(expect=0, timeout=5, sig=signal.SIGINT)


def test_second_sigterm_exits_at_once(backends, switchyard):
    silent = backends.silent()
    d = switchyard([service("web", free_address(), blue=[silent])], shutdown_grace="30s")
    with connect(d.listen()) as stuck:
        stuck.sendall(b"x")
        wait_until(lambda: silent.open_connections >= 1, 3)
        d.send_signal(signal.SIGTERM)
        wait_until(lambda: refuses(d.listen()), 2, message="the listener to close")
        assert d.running()
        start = time.monotonic()
        d.send_signal(signal.SIGTERM)
        d.wait_exit(timeout=5)
        assert time.monotonic() - start < 1.0


def test_logs_ready_and_serves_on_every_listener(backends, switchyard):
    services = [service(f"s{i}", free_address(), blue=[backends.echo()]) for i in range(3)]
    d = switchyard(services)
    assert "ready" in d.log()
    for s in services:
        with connect(s["listen"]) as c:
            assert exchange(c, b"hi") == b"hi"


def test_a_busy_listen_port_fails_start_with_exit_1(backends, switchyard):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        d = switchyard([service("web", address, blue=[backends.echo()])], start=False)
        proc = run_switchyard("-c", str(d.config_path), timeout=10)
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert address in proc.stderr
    finally:
        taken.close()


def test_a_second_copy_is_refused_before_it_binds_a_listener(backends, switchyard):
    """A copy started by mistake must stop at the admin socket (or the metrics port) of the
    running one before its SO_REUSEPORT listeners take connections from the running daemon's
    queues (they were reset when it exited). The copy's own listen port is held here by a plain
    socket: a copy that tried to bind first would fail on that port instead."""
    import threading
    from netutil import free_port
    metrics = f"127.0.0.1:{free_port()}"
    d = switchyard([service("web", free_address(), blue=[backends.echo()])], extra={"metrics": {"listen": metrics}})
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    held = "127.0.0.1:%d" % taken.getsockname()[1]
    failures, served, stop = [], [0], threading.Event()

    def traffic():
        while not stop.is_set():
            try:
                with connect(d.listen()) as c:
                    assert exchange(c, b"ping") == b"ping"
                served[0] += 1
            except (OSError, AssertionError) as exc:
                failures.append(repr(exc))

    t = threading.Thread(target=traffic)
    t.start()
    try:
        same_socket = dict(d.config, services=[service("web", held, blue=[backends.echo()])])
        same_metrics = dict(same_socket, admin={"socket": str(d.workdir / "other.sock")})
        for copy, words in ((same_socket, "another process is serving the admin socket"),
                            (same_metrics, f"metrics.listen {metrics}: Address already in use")):
            path = d.workdir / "copy.yaml"
            d.write_config(copy)
            d.config_path.rename(path)
            proc = run_switchyard("-c", str(path), timeout=10)
            assert proc.returncode == 1, proc.stderr[-2000:]
            assert words in proc.stderr and "is switchyard already running?" in proc.stderr, proc.stderr[-2000:]
            assert held not in proc.stderr, "the copy bound a listener before it was refused"
        # The real mistake: the very same config, ten times, while clients connect.
        d.write_config()
        for _ in range(10):
            proc = run_switchyard("-c", str(d.config_path), timeout=10)
            assert proc.returncode == 1 and "already running" in proc.stderr, proc.stderr[-2000:]
    finally:
        stop.set()
        t.join()
        taken.close()
    assert not failures, failures[:5]
    assert served[0] > 0 and d.running()
    assert d.admin("status web")["ok"] is True


def connections_accepted_within(address, seconds):
    """Connects again and again for `seconds`; returns how many the kernel accepted."""
    host, port, family = split_address(address)
    accepted, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            try:
                s.connect((host, port))
                accepted += 1
            except ConnectionRefusedError:
                pass
        time.sleep(0.002)
    return accepted


def test_after_a_kill_9_the_listeners_die_with_the_process(backends, switchyard):
    """Once a daemon killed with SIGKILL has exited, nothing may accept a connection it cannot
    serve: a client is refused (and retries) until the next process listens, which then serves it.
    (On io_uring, accepts in flight kept the listening sockets open for tens of ms after the exit
    while the kernel tore the ring down: connections accepted then were reset.)"""
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo])], workers=2)
    for _ in range(3):
        with connect(d.listen()) as c:
            assert exchange(c, b"before") == b"before"
        d.send_signal(signal.SIGKILL)
        d.proc.wait(5)
        d._close_files()
        assert connections_accepted_within(d.listen(), 0.3) == 0, "a dead daemon's listener accepted"
        d.start()
        with connect(d.listen()) as c:
            assert exchange(c, b"after") == b"after"
