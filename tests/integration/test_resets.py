"""A reset on one side reaches the other side as a reset (both directions, both engines):
a client must tell a crashed backend (RST) from a finished response (FIN). The session is
counted under backend_reset / client_reset, even when the other side had half-closed."""

import socket
import struct
import threading

import pytest

from clients import abort, connect
from daemon import service
from netutil import free_address
from test_access_log import records
from waiters import wait_until


class OneShotBackend:
    """Accepts connections and runs `script(conn)` on each in its own thread; a connection
    that sends nothing (a health check) is closed without running it."""

    def __init__(self, script):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.script = script
        self.outcomes = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        conn.settimeout(10)
        try:
            first = conn.recv(100)
            if first:
                self.outcomes.append(self.script(conn, first))
        except Exception as exc:   # noqa: BLE001 - reported through outcomes
            self.outcomes.append(repr(exc))
        finally:
            conn.close()

    def close(self):
        self.listener.close()


@pytest.fixture
def one_shot():
    made = []

    def make(script):
        b = OneShotBackend(script)
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()


def read_until_closed(sock, timeout=5.0):
    """Reads everything; returns (bytes, "reset" | "eof")."""
    sock.settimeout(timeout)
    got = b""
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            return got, "reset"
        if not chunk:
            return got, "eof"
        got += chunk


def start(switchyard, backend, tmp_path):
    path = tmp_path / "access.log"
    d = switchyard([service("web", free_address(), blue=[backend.address])],
                   extra={"log": {"level": "info", "access_log": True, "access_log_path": str(path)}})
    return d, path


def reasons(path, n):
    """The close reasons of the test's own connections (the readiness probe sends nothing)."""
    def logged():
        got = [r["reason"] for r in records(path.read_text()) if int(r["bytes_in"]) > 0]
        return got if len(got) >= n else None
    return wait_until(logged, 5)


@pytest.mark.parametrize("size,client_half_closed", [(7, False), (7, True), (4 << 20, False)],
                         ids=["small", "after-client-fin", "bulk-splice"])
def test_a_backend_reset_reaches_the_client_as_a_reset(one_shot, switchyard, tmp_path, size, client_half_closed):
    def crash_after_answer(conn, first):
        assert first == b"request"
        if client_half_closed:
            assert conn.recv(100) == b""   # the client's FIN, passed on
        conn.sendall(b"r" * size)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return "reset sent"

    backend = one_shot(crash_after_answer)
    d, log = start(switchyard, backend, tmp_path)
    for _ in range(3):
        with connect(d.listen()) as s:
            s.sendall(b"request")
            if client_half_closed:
                s.shutdown(socket.SHUT_WR)
            got, how = read_until_closed(s)
            assert how == "reset", f"the backend's reset arrived as a clean close after {len(got)} bytes"
            assert b"r" * len(got) == got
    assert reasons(log, 3) == ["backend_reset"] * 3


def test_a_client_reset_reaches_the_backend_as_a_reset(one_shot, switchyard, tmp_path):
    got_request = threading.Event()

    def wait_for_more(conn, first):
        assert first == b"hello"
        got_request.set()
        try:
            data = conn.recv(100)
        except ConnectionResetError:
            return "reset"
        return "eof" if not data else repr(data)

    backend = one_shot(wait_for_more)
    d, log = start(switchyard, backend, tmp_path)
    for i in range(3):
        got_request.clear()
        s = connect(d.listen())
        s.sendall(b"hello")
        assert got_request.wait(5)
        abort(s)   # the client vanishes with an RST
        wait_until(lambda: len(backend.outcomes) > i, 5)
    assert backend.outcomes == ["reset"] * 3, backend.outcomes
    assert reasons(log, 3) == ["client_reset"] * 3
