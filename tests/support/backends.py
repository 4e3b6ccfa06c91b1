"""Threaded TCP backends on loopback ephemeral ports for integration tests.

NameBackend  answers any request with a short HTTP/1.1 response whose body is its name.
EchoBackend  echoes everything; on client EOF it finishes sending, then shuts down its write side.
SilentBackend accepts and then never reads or writes.

Each listens on 127.0.0.1 (or ::1) port 0 and exposes `.address` in switchyard's
"HOST:PORT" / "[V6]:PORT" form. `stop()` closes gracefully, `kill()` resets every open
connection (RST) and stops listening, so the port then refuses connections.
"""

import re
import select
import socket
import struct
import threading

from netutil import join_address

_HTTP_START = re.compile(rb"[A-Z]{1,10}( |$)")


class Backend:
    def __init__(self, host="127.0.0.1", backlog=512):
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(backlog)
        self.port = self._listener.getsockname()[1]
        self.address = join_address(host, self.port)
        self._lock = threading.Lock()
        self._open = set()
        self._stopped = False
        self._killed = False
        self.connections = 0          # accepted connections, health checks included
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"{type(self).__name__}:{self.port}")
        self._thread.start()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return   # listener shut down by stop()/kill()
            with self._lock:
                if self._stopped:
                    conn.close()
                    return
                self.connections += 1
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def handle(self, conn):
        raise NotImplementedError

    @property
    def open_connections(self):
        with self._lock:
            return len(self._open)

    def _close_listener(self):
        with self._lock:
            self._stopped = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)   # wakes a blocked accept() on Linux
        except OSError:
            pass
        self._listener.close()

    def stop(self):
        """Stop listening and close open connections with a normal FIN."""
        self._close_listener()
        with self._lock:
            conns = list(self._open)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=2)

    def kill(self):
        """Stop listening and reset every open connection (SO_LINGER 0 -> RST)."""
        self._killed = True
        self._close_listener()
        with self._lock:
            conns = list(self._open)
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # SHUT_RD wakes the handler's recv without sending a FIN; its close then resets.
                c.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        self._thread.join(timeout=2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class NameBackend(Backend):
    """Answers the first request on a connection with `HTTP/1.1 200` and body = name."""

    def __init__(self, name, host="127.0.0.1", **kw):
        self.name = name
        self.responses = 0
        self.after_response = b""   # bytes clients sent after the response (half-open path)
        super().__init__(host, **kw)

    def handle(self, conn):
        conn.settimeout(10)
        data = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                if not data:
                    return   # connected and left (a health check): nothing to answer
                break
            data += chunk
            # A whole HTTP request head, or any bytes that are not HTTP: answer now.
            if b"\r\n\r\n" in data or not _HTTP_START.match(data):
                break
        if self._killed:
            return
        body = self.name.encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body))
        with self._lock:
            self.responses += 1
        # Half-close and drain so unread request bytes never turn our close into an RST
        # that could overtake the response.
        conn.shutdown(socket.SHUT_WR)
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            with self._lock:
                self.after_response += chunk


class EchoBackend(Backend):
    """Echoes everything; honours half-close."""

    def __init__(self, host="127.0.0.1", **kw):
        self.bytes_echoed = 0
        self.eof_sizes = []   # per connection that ended with the client's EOF: bytes echoed
        super().__init__(host, **kw)

    def handle(self, conn):
        total = 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            if self._killed:
                return
            conn.sendall(chunk)
            total += len(chunk)
        if self._killed:
            return
        conn.shutdown(socket.SHUT_WR)
        with self._lock:
            self.bytes_echoed += total
            self.eof_sizes.append(total)


class SendingBackend(Backend):
    """To every connection sends `payload`, then closes (FIN); never reads."""

    def __init__(self, payload, host="127.0.0.1", **kw):
        self.payload = payload
        self.sent = 0   # bytes handed to the kernel, over all connections
        super().__init__(host, **kw)

    def handle(self, conn):
        conn.sendall(self.payload)
        with self._lock:
            self.sent += len(self.payload)
        conn.close()


class SilentBackend(Backend):
    """Accepts and then does nothing until stopped."""

    def __init__(self, host="127.0.0.1", **kw):
        self._release = threading.Event()
        super().__init__(host, **kw)

    def handle(self, conn):
        # Watch for the peer closing (POLLRDHUP) without reading a byte, so that
        # open_connections tells whether the daemon let go of its side.
        p = select.poll()
        p.register(conn, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        while not self._release.is_set():
            if p.poll(50):
                return

    def stop(self):
        super().stop()
        self._release.set()

    def kill(self):
        super().kill()
        self._release.set()
