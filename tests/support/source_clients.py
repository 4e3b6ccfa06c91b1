"""Clients from chosen loopback source addresses, and a backend that checks PROXY headers.

Every 127.0.0.0/8 address is local on Linux, so a client that binds to 127.0.3.17 before
connecting looks to switchyard like a distinct host: enough to test per-client behaviour
(affinity, hash) with many "clients" on one machine.

ProxyHeaderBackend parses the PROXY protocol header (v1 or v2) that switchyard sends, with its
own parser written from the spec (not switchyard's), records it, and answers like NameBackend
with its name, so tests can compare the header with the client's real address.
"""

import socket
import struct
import threading

from backends import Backend
from netutil import split_address

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def loopback_sources(n, block=3):
    """n distinct loopback addresses: 127.<block>.1.1, 127.<block>.1.2, ..."""
    return [f"127.{block}.{1 + i // 250}.{1 + i % 250}" for i in range(n)]


def connect_from(source, address, timeout=5.0):
    host, port, family = split_address(address)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect((host, port))
    return s


def read_http_body(s, timeout=5.0):
    s.settimeout(timeout)
    raw = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        raw += chunk
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError(f"not an HTTP 200 response: {raw[:200]!r}")
    return body.decode()


def http_get_from(source, address, prefix=b"", timeout=5.0):
    """GET from a given source address; `prefix` goes first (e.g. a PROXY header).
    Returns (body, client_port)."""
    with connect_from(source, address, timeout) as s:
        port = s.getsockname()[1]
        s.sendall(prefix + b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return read_http_body(s, timeout), port


def proxy_v1(src, dst, sport, dport):
    family = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def proxy_v2(src, dst, sport, dport, command=1):
    if ":" in src:
        fam, addrs = 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam, addrs = 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
    body = addrs + struct.pack("!HH", sport, dport)
    return V2_SIGNATURE + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


def _recv_exactly(conn, n, buf):
    while len(buf) < n:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} header bytes")
        buf += chunk
    return buf


def read_proxy_header(conn):
    """Reads one PROXY header from conn. Returns (header dict, bytes read past it).
    Raises ValueError for anything that is not a valid header."""
    buf = _recv_exactly(conn, 1, b"")
    if buf[:1] == b"P":
        while b"\r\n" not in buf:
            if len(buf) > 107:
                raise ValueError("v1 line longer than 107 bytes")
            chunk = conn.recv(1)
            if not chunk:
                raise EOFError("EOF in v1 header")
            buf += chunk
        line, rest = buf.split(b"\r\n", 1)
        parts = line.decode("ascii").split(" ")
        if parts[0] != "PROXY":
            raise ValueError(f"bad v1 line {line!r}")
        if parts[1] == "UNKNOWN":
            return {"version": 1, "proto": "UNKNOWN"}, rest
        if parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
            raise ValueError(f"bad v1 line {line!r}")
        family = socket.AF_INET if parts[1] == "TCP4" else socket.AF_INET6
        for a in parts[2:4]:
            socket.inet_pton(family, a)   # raises on a bad address
        return {"version": 1, "proto": parts[1], "src": parts[2], "dst": parts[3],
                "sport": int(parts[4]), "dport": int(parts[5])}, rest
    buf = _recv_exactly(conn, 16, buf)
    if buf[:12] != V2_SIGNATURE:
        raise ValueError(f"neither v1 nor v2: {buf[:16]!r}")
    ver_cmd, fam = buf[12], buf[13]
    length = struct.unpack("!H", buf[14:16])[0]
    buf = _recv_exactly(conn, 16 + length, buf)
    block, rest = buf[16:16 + length], buf[16 + length:]
    if ver_cmd >> 4 != 2:
        raise ValueError("v2 with a bad version")
    header = {"version": 2, "command": "LOCAL" if ver_cmd & 0xF == 0 else "PROXY", "family": fam}
    if fam == 0x11:
        src, dst, sport, dport = struct.unpack("!4s4sHH", block[:12])
        header.update(proto="TCP4", src=socket.inet_ntop(socket.AF_INET, src),
                      dst=socket.inet_ntop(socket.AF_INET, dst), sport=sport, dport=dport)
    elif fam == 0x21:
        src, dst, sport, dport = struct.unpack("!16s16sHH", block[:36])
        header.update(proto="TCP6", src=socket.inet_ntop(socket.AF_INET6, src),
                      dst=socket.inet_ntop(socket.AF_INET6, dst), sport=sport, dport=dport)
    return header, rest


class ProxyHeaderBackend(Backend):
    """Expects a PROXY header on every connection that sends anything, records it, then
    answers the request after it with an HTTP 200 whose body is its name. A connection that
    sends nothing (a TCP health check) is fine; one whose first bytes are not a valid header
    is recorded in `bad` and closed."""

    def __init__(self, name, host="127.0.0.1", **kw):
        self.name = name
        self.headers = []      # header dicts, in arrival order
        self.payloads = []     # the request bytes that followed each header
        self.bad = []          # (error, ) for connections with a missing or broken header
        self._hlock = threading.Lock()
        super().__init__(host, **kw)

    def handle(self, conn):
        conn.settimeout(10)
        try:
            header, rest = read_proxy_header(conn)
        except EOFError as exc:
            if "after 0 of" in str(exc):
                return   # connected and left: a health check
            with self._hlock:
                self.bad.append(repr(exc))
            return
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            with self._hlock:
                self.bad.append(repr(exc))
            return
        data = rest
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        with self._hlock:
            self.headers.append(header)
            self.payloads.append(data)
        body = self.name.encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (len(body), body))
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(4096):
            pass
