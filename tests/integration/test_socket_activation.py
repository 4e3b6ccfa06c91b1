"""Socket activation: a restart must not refuse connections. The test plays systemd:
it owns the listening socket and hands it to each daemon as LISTEN_FDS, so
connections that arrive between the old process and the new one wait in the
kernel's backlog."""

import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from clients import http_get
from daemon import service, start_socket_activated, start_with_fds, switchyard_bin
from netutil import free_address, split_address
from notify_socket import NotifySocket
from test_upgrade import Prober
from waiters import wait_until


def test_restart_with_inherited_socket_refuses_no_connection(backends, switchyard):
    blue = backends.name("blue")
    address = free_address()
    host, port, family = split_address(address)
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)

    d = switchyard([service("web", address, blue=[blue], health={"interval": "60s"})], start=False,
                   shutdown_grace="1s")
    start_socket_activated(d, listener)
    assert "inherited from systemd" in d.log()

    results = {"ok": 0, "failed": []}
    lock = threading.Lock()   # four threads count: `+=` on a dict item is not atomic
    stop = threading.Event()

    def load():
        end = time.monotonic() + 15
        while not stop.is_set() and time.monotonic() < end:
            try:
                body = http_get(address, timeout=5)
                with lock:
                    if body == "blue":
                        results["ok"] += 1
                    else:
                        results["failed"].append(body)
            except OSError as exc:
                with lock:
                    results["failed"].append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: results["ok"] > 50, 5, message="traffic through the first process")

    # Restart: the old process stops, the new one takes over the same socket.
    d.send_signal()
    assert d.wait_exit(5) == 0
    before = results["ok"]
    start_socket_activated(d, listener)
    wait_until(lambda: results["ok"] > before + 50, 10, message="traffic through the second process")
    stop.set()
    for t in threads:
        t.join(10)
    listener.close()
    assert results["failed"] == []
    # Every answer came through the backend, and every answer the backend gave reached its client.
    # (Its connection count also holds health checks: how many ran at start depends on timing.)
    wait_until(lambda: blue.responses >= results["ok"], 2, message="the backend to count its last answer")
    assert blue.responses == results["ok"]


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate not installed")
def test_systemd_socket_activate_hands_the_socket_to_every_worker(backends, switchyard):
    blue = backends.name("blue")
    address = free_address()
    d = switchyard([service("web", address, blue=[blue])], start=False, workers=2)
    d._stderr = open(d.stderr_path, "ab")
    d._stdout = open(d.stdout_path, "ab")
    d.proc = subprocess.Popen(["systemd-socket-activate", "-l", address, "--fdname=web",
                               switchyard_bin(), "-c", str(d.config_path)],
                              stdin=subprocess.DEVNULL, stdout=d._stdout, stderr=d._stderr,
                              cwd=str(d.workdir))
    # systemd-socket-activate starts the daemon on the first connection, which
    # then waits in the backlog for it.
    wait_until(lambda: "Listening on" in d.log(), 5, message="systemd-socket-activate listening")
    assert http_get(address, timeout=10) == "blue"
    d.wait_ready()
    assert [http_get(address) for _ in range(20)] == ["blue"] * 20
    assert "inherited from systemd" in d.log()
    # Both workers accept from the one inherited socket (fd 3 and a dup per
    # worker share its inode), and no per-worker SO_REUSEPORT listener exists.
    fds = [os.readlink(f"/proc/{d.pid}/fd/{f}") for f in os.listdir(f"/proc/{d.pid}/fd")]
    inherited = os.readlink(f"/proc/{d.pid}/fd/3")
    assert fds.count(inherited) == 3, fds
    port = split_address(address)[1]
    listening = set()
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                listening.add(fields[9])
    assert listening == {inherited[len("socket:["):-1]}


def test_restart_with_the_listeners_in_systemds_fd_store_refuses_no_connection(backends, switchyard):
    """FileDescriptorStoreMax=: the daemon keeps its listeners in systemd's fd store; a restart
    (stop, then start with what the store passes back) refuses nothing. The test plays systemd."""
    notify = NotifySocket()
    try:
        echo = backends.echo()
        address = free_address()
        options = {"workers": 2, "shutdown_grace": "1s", "env": {"NOTIFY_SOCKET": notify.path}}
        first = switchyard([service("web", address, blue=[echo.address])], **options)
        wait_until(lambda: sorted(notify.stored()) == ["sy-listener-0-web", "sy-listener-1-web"], 5, 0.02,
                   lambda: f"one stored listener per worker, got {notify.all()}")
        prober = Prober(address)
        prober.start()
        wait_until(lambda: prober.ok >= 20, 10, 0.02, "probes before the restart")
        first.stop()
        stopped = prober.ok
        second = switchyard([service("web", address, blue=[echo.address])], start=False, **options)
        start_with_fds(second, notify.stored())
        assert "web: accepting on 2 listener(s) kept in systemd's fd store" in second.log()
        wait_until(lambda: prober.ok >= stopped + 30, 10, 0.02, "probes after the restart")
        prober.finish()
        assert prober.failures == [], prober.failures[:5]
        # The second process stores the very same sockets (systemd keeps one of each).
        assert sorted(notify.stored()) == ["sy-listener-0-web", "sy-listener-1-web"]
        assert any(m.get("FDSTORE") == "1" for m in notify.from_pid(second.pid))
    finally:
        notify.close()
