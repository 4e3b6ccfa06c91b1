"""Client helpers: HTTP GET for name counting, echo round trips, close detection."""

import hashlib
import socket
import threading
import time

from netutil import split_address


def connect(address, timeout=5.0):
    host, port, _ = split_address(address)
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_all(sock, timeout=10.0):
    """Read until EOF; returns the bytes. A reset raises ConnectionResetError."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def http_get(address, path="/", timeout=5.0):
    """One HTTP/1.1 GET on a fresh connection; returns the response body as str.
    Reads Content-Length bytes of body when given (a server may keep the connection
    open), otherwise until EOF."""
    with connect(address, timeout) as s:
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: switchyard-test\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        head, sep, body = raw.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"HTTP/1.1 200"):
            raise AssertionError(f"not an HTTP 200 response from {address}: {raw[:200]!r}")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is None:
            body += recv_all(s, timeout)
        else:
            while len(body) < length:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError(f"EOF after {len(body)} of {length} body bytes from {address}")
                body += chunk
    return body.decode()


def echo_roundtrip(address, payload, timeout=30.0, half_close=True):
    """Send `payload` while reading concurrently (so big payloads cannot deadlock),
    then shut down the write side and read until EOF. Returns the bytes received."""
    with connect(address, timeout) as s:
        s.settimeout(timeout)
        errors = []

        def sender():
            try:
                view = memoryview(payload)
                for i in range(0, len(view), 65536):
                    s.sendall(view[i:i + 65536])
                if half_close:
                    s.shutdown(socket.SHUT_WR)
            except OSError as exc:
                errors.append(exc)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        if half_close:
            received = recv_all(s, timeout)
        else:
            received = recv_exactly(s, len(payload), timeout)
        t.join(timeout)
        if errors:
            raise errors[0]
        return received


def recv_exactly(sock, n, timeout=10.0):
    sock.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def exchange(sock, data, timeout=5.0):
    """Send data on an open echo stream and read the same number of bytes back."""
    sock.sendall(data)
    return recv_exactly(sock, len(data), timeout)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def wait_closed(sock, timeout=3.0):
    """Wait until the peer closes `sock`. Returns ("eof"|"reset", seconds waited).
    Raises AssertionError if it stays open past `timeout` or sends data."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return "reset", time.monotonic() - start
    except socket.timeout:
        raise AssertionError(f"connection still open after {timeout:.1f}s") from None
    if data:
        raise AssertionError(f"expected a close, received {data[:100]!r}")
    return "eof", time.monotonic() - start


def close_times(socks, timeout=5.0):
    """Watch every socket at once until its peer closes it; returns the time.monotonic() of each
    close that came within `timeout` (a socket still open then is left out)."""
    closes = []
    lock = threading.Lock()

    def watch(s):
        try:
            wait_closed(s, timeout)
        except AssertionError:
            return
        with lock:
            closes.append(time.monotonic())

    threads = [threading.Thread(target=watch, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 1)
    return closes


def abort(sock):
    """Close with an RST instead of a FIN, like a client that vanished."""
    import struct
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
