"""Raw admin-socket access for protocol tests: bytes in, reply lines out.

SwitchyardDaemon.admin() sends one well-formed command; these helpers send anything
(pipelined lines, binary bytes, oversized lines) and read what comes back.
"""

import json
import socket
import time


def admin_connect(socket_path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(socket_path)
    return s


def read_lines(sock, count, timeout=5.0):
    """Read exactly `count` newline-terminated lines (or fewer if the peer closes).
    Returns (lines as bytes without newline, closed: bool)."""
    deadline = time.monotonic() + timeout
    buf = b""
    closed = False
    while buf.count(b"\n") < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {count} reply line(s); got {buf[:300]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
    lines = buf.split(b"\n")
    return lines[:count] if not closed else [ln for ln in lines if ln], closed


def admin_exchange(socket_path, data, replies=1, timeout=5.0):
    """Send raw bytes on a fresh connection; return the decoded JSON replies (a list)."""
    with admin_connect(socket_path, timeout) as s:
        s.sendall(data)
        lines, _ = read_lines(s, replies, timeout)
    return [json.loads(line) for line in lines]


def peer_closed(sock, timeout=5.0):
    """True once the peer has closed (EOF or reset); reads and discards any data first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        if not chunk:
            return True
    return False


def wait_checked(daemon, timeout=5.0):
    """Wait until every backend of every service has its first health-check result
    (status field `checked`), so that later revision counts are not moved by the
    start-up checks. Backends that are disabled are never checked and are skipped."""
    from waiters import wait_until

    def settled():
        reply = daemon.admin("status")
        for s in reply["services"]:
            for pool in s["pools"].values():
                for b in pool["backends"]:
                    if b.get("admin_state") == "disabled":
                        continue
                    if b.get("checked") is False:
                        return False
        return True

    wait_until(settled, timeout, 0.02, "every backend's first health-check result")
