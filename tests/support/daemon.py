"""Runs the real switchyard binary for integration tests.

SwitchyardDaemon writes a YAML config into a temporary directory (admin socket and
state file inside it), starts the binary with stderr captured to a file, waits until
the log says "ready" and every service's listen address accepts a TCP connection, and
stops it with SIGTERM, checking the exit code.
"""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from netutil import free_address, split_address
from waiters import StopWaiting, wait_until

REPO = Path(__file__).resolve().parents[2]


# Relative paths in the environment are taken from the directory the tests run in;
# they are made absolute because the daemon runs with its temp dir as cwd.
def switchyard_bin():
    return os.path.abspath(os.environ.get("SWITCHYARD_BIN") or REPO / "build" / "switchyard")


def switchyardctl_bin():
    """$SWITCHYARDCTL_BIN, else next to the daemon's binary: meson builds it in src/ctl/."""
    if os.environ.get("SWITCHYARDCTL_BIN"):
        return os.path.abspath(os.environ["SWITCHYARDCTL_BIN"])
    build = Path(switchyard_bin()).parent
    candidates = [build / "switchyardctl", build / "src" / "ctl" / "switchyardctl"]
    for c in candidates:
        if os.access(c, os.X_OK):
            return str(c)
    return str(candidates[0])


# --- a tiny YAML writer (stdlib only): block mappings and sequences, quoted strings ---

def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(str(value))   # a JSON string is a valid YAML double-quoted scalar


def to_yaml(value, indent=0):
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        if not value:
            return pad + "{}"
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                lines.append(f"{pad}{k}: {{}}")
            elif isinstance(v, list):
                lines.append(f"{pad}{k}: []")
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = to_yaml(item, indent + 2).splitlines()
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            else:
                lines.append(f"{pad}- {_scalar(item) if not isinstance(item, (dict, list)) else to_yaml(item).strip()}")
    else:
        lines.append(pad + _scalar(value))
    return "\n".join(lines)


def backend(address, weight=None):
    b = {"address": address if isinstance(address, str) else address.address}
    if weight is not None:
        b["weight"] = weight
    return b


def service(name, listen, blue=(), green=(), **extra):
    """A services[] entry. blue/green: backends (objects with .address), addresses,
    or (backend, weight) pairs."""
    def pool(items):
        out = []
        for it in items:
            if isinstance(it, tuple):
                out.append(backend(it[0], it[1]))
            else:
                out.append(backend(it))
        return out
    svc = {"name": name, "listen": listen}
    svc.update(extra)
    svc["pools"] = {"blue": pool(blue), "green": pool(green)}
    return svc


class DaemonError(AssertionError):
    pass


class DaemonDied(DaemonError, StopWaiting):
    pass


class SwitchyardDaemon:
    def __init__(self, workdir, services, *, workers=2, shutdown_grace="2s", log_level="info",
                 extra=None, args=(), env=None, name="switchyard"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket_path = str(self.workdir / "admin.sock")
        self.state_file = str(self.workdir / "state.json")
        # One record per service with overrides, beside the state file (docs/state.md).
        self.state_records = str(self.workdir / "state.json.d")
        self.config_path = self.workdir / f"{name}.yaml"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.stdout_path = self.workdir / f"{name}.stdout"
        self.services = list(services)
        config = {
            "admin": {"socket": self.socket_path},
            "state_file": self.state_file,
            "log": {"level": log_level},
            "shutdown_grace": shutdown_grace,
        }
        if workers is not None:
            config["workers"] = workers
        # SWITCHYARD_TEST_ENGINE=io_uring|epoll runs the suite on that engine.
        if os.environ.get("SWITCHYARD_TEST_ENGINE"):
            config["engine"] = os.environ["SWITCHYARD_TEST_ENGINE"]
        config.update(extra or {})
        config["services"] = self.services
        self.config = config
        self.args = list(args)
        self.env = env
        self.proc = None
        self.returncode = None
        self.write_config()

    # --- config ---
    def write_config(self, config=None):
        text = to_yaml(config or self.config) + "\n"
        self.config_path.write_text(text)
        return text

    def listen_addresses(self):
        return [s["listen"] for s in self.services]

    def listen(self, name=None):
        for s in self.services:
            if name is None or s["name"] == name:
                return s["listen"]
        raise KeyError(name)

    # --- process ---
    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=10.0):
        bin_path = switchyard_bin()
        if not os.access(bin_path, os.X_OK):
            raise DaemonError(f"switchyard binary not found at {bin_path} (set SWITCHYARD_BIN)")
        env = dict(os.environ)
        env.update(self.env or {})
        cmd = [bin_path, "-c", str(self.config_path), *self.args]
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                     stderr=self._stderr, env=env, cwd=str(self.workdir))
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10.0, addresses=None):
        addresses = addresses if addresses is not None else self.listen_addresses()

        def ready():
            if self.proc.poll() is not None:
                raise DaemonDied(f"switchyard exited with {self.proc.returncode} before ready:\n"
                                  + self.log_tail())
            if "ready" not in self.log():
                return False
            for address in addresses:
                if not accepts(address):
                    return False
            return True

        try:
            wait_until(ready, timeout, 0.02, "switchyard to be ready")
        except DaemonError:
            raise
        except AssertionError as exc:
            raise DaemonError(f"{exc}\n--- stderr ---\n{self.log_tail()}") from None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig=signal.SIGTERM):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=10.0):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonError(f"switchyard (pid {self.proc.pid}) still running {timeout:.1f}s later\n"
                              + self.log_tail()) from None
        self._close_files()
        return self.returncode

    def stop(self, expect=0, timeout=10.0, sig=signal.SIGTERM):
        """SIGTERM (by PID) and wait; asserts the exit code unless expect is None."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(sig)
        try:
            rc = self.wait_exit(timeout)
        except DaemonError:
            self.proc.kill()
            self.proc.wait(5)
            self._close_files()
            raise
        if expect is not None and rc != expect:
            raise DaemonError(f"switchyard exited with {rc}, expected {expect}\n" + self.log_tail())
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._close_files()

    def _close_files(self):
        for f in ("_stderr", "_stdout"):
            fh = getattr(self, f, None)
            if fh is not None and not fh.closed:
                fh.close()

    # --- observation ---
    def saved_record(self, service):
        """The state store's record of `service` as JSON, or None if it has none."""
        path = Path(self.state_records) / f"{service}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def log(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log().splitlines()[-lines:])

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    # --- admin ---
    def admin(self, command, timeout=5.0):
        """One command on the admin socket; returns the decoded JSON reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.socket_path)
            s.sendall(command.encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf.split(b"\n", 1)[0])

    def ctl_command(self):
        """switchyardctl aimed at this daemon's admin socket (add the command)."""
        return [switchyardctl_bin(), "-s", self.socket_path]

    def ctl(self, *args, timeout=10.0):
        cmd = [*self.ctl_command(), *args]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)


def start_socket_activated(d, listener):
    """Start daemon `d` with `listener` passed as fd 3 (named after the first service), the way
    systemd does."""
    start_with_fds(d, {d.services[0]["name"]: listener.fileno()})


def start_with_fds(d, named_fds):
    """Start daemon `d` with the descriptors of `named_fds` ({name: fd}) passed from fd 3 on with
    LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID, the way systemd passes sockets (and its fd store)."""
    names, fds = list(named_fds), list(named_fds.values())
    moves = "; ".join(f"exec {3 + i}<&{fd}" for i, fd in enumerate(fds))
    script = (f'{moves}; LISTEN_FDS={len(fds)} LISTEN_PID=$$ LISTEN_FDNAMES={":".join(names)} '
              'exec "$0" -c "$1"')
    d._stderr = open(d.stderr_path, "ab")
    d._stdout = open(d.stdout_path, "ab")
    d.proc = subprocess.Popen(["bash", "-c", script, switchyard_bin(), str(d.config_path)],
                              pass_fds=tuple(fds), stdin=subprocess.DEVNULL, stdout=d._stdout,
                              stderr=d._stderr, cwd=str(d.workdir), env={**os.environ, **(d.env or {})})
    d.wait_ready()


def metrics_daemon(switchyard, services, **extra):
    """A daemon (from the `switchyard` fixture) with metrics on a free loopback port,
    kept in its `metrics_address`."""
    address = free_address()
    cfg = {"metrics": {"listen": address}}
    cfg.update(extra.pop("extra", {}))
    d = switchyard(services, extra=cfg, **extra)
    d.metrics_address = address
    return d


def accepts(address, timeout=0.5):
    host, port, family = split_address(address)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
        return True
    except OSError:
        return False


def run_switchyard(*args, timeout=15.0, env=None, cwd=None):
    """Run the binary to completion (for --check, --version, --help)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([switchyard_bin(), *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=cwd)
