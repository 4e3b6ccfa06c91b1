"""A datagram socket standing in for systemd's NOTIFY_SOCKET (sd_notify messages with their sender's PID)."""

import os
import shutil
import socket
import struct
import tempfile
import threading


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; collects messages."""

    MAX_FDS = 16

    def __init__(self):
        # A short path: unix socket paths are limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="sy-notify-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        # The sender's credentials come with each message (systemd checks the PID too).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.messages = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(
                    65536, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4 * self.MAX_FDS))
            except socket.timeout:
                continue
            except OSError:
                return
            message = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    message["_pid"] = struct.unpack("iII", value[:12])[0]
                elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    # FDSTORE=1: the descriptors are the test's now, as systemd's fd store holds them.
                    message["_fds"] = list(struct.unpack("%di" % (len(value) // 4), value[:len(value) // 4 * 4]))
            with self._lock:
                self.messages.append(message)

    def events(self):
        """The state-changing assignments in order: READY=1, RELOADING=1, STOPPING=1."""
        with self._lock:
            out = []
            for m in self.messages:
                for key in ("RELOADING", "READY", "STOPPING"):
                    if m.get(key) == "1":
                        out.append(f"{key}=1")
            return out

    def from_pid(self, pid):
        """The messages process `pid` sent."""
        with self._lock:
            return [m for m in self.messages if m.get("_pid") == pid]

    def all(self):
        with self._lock:
            return list(self.messages)

    def stored(self):
        """systemd's fd store as the messages built it: {FDNAME: fd} (FDSTORE=1, FDSTOREREMOVE=1)."""
        store = {}
        for m in self.all():
            if m.get("FDSTORE") == "1" and m.get("_fds"):
                store.setdefault(m.get("FDNAME", "stored"), m["_fds"][0])
            elif m.get("FDSTOREREMOVE") == "1":
                store.pop(m.get("FDNAME"), None)
        return store

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()
        for m in self.all():
            for fd in m.get("_fds", []):
                try:
                    os.close(fd)
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
