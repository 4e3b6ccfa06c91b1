"""A Debian 12 container booted by systemd-nspawn: a real systemd as PID 1 for
the package's unit, on the host's network so that the test's loopback backends
and clients reach the switchyard inside it.

The container runs on a throw-away copy of the tree (--ephemeral). Commands run
inside it through nsenter into the container's PID 1's namespaces (machinectl
needs systemd on the host; this machine may have none).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from waiters import StopWaiting, wait_until  # noqa: E402


def _children(pid):
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Container:
    def __init__(self, tree, name, log_path, binds=()):
        self.name = name
        self.log_path = Path(log_path)
        cmd = ["systemd-nspawn", "--quiet", "--ephemeral", "--directory", str(tree), "--boot",
               "--register=no", "--keep-unit", f"--machine={name}", "--console=read-only"]
        cmd += [f"--bind-ro={host}:{inside}" for host, inside in binds]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.leader = None
        try:
            self.leader = wait_until(self._find_leader, 60, 0.1, self._boot_failure)
        except BaseException:
            self.stop()   # a container that did not come up must not stay behind
            raise

    def _find_leader(self):
        if self.proc.poll() is not None:
            raise StopWaiting(self._boot_failure())
        for child in _children(self.proc.pid):
            if _comm(child) == "systemd":
                return child
        return None

    def _boot_failure(self):
        return f"the container did not boot (systemd-nspawn: {self.proc.poll()}):\n" + self.log_tail()

    def log_tail(self, lines=40):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def run(self, *args, check=True, timeout=60):
        """Runs a command inside the container; returns the CompletedProcess."""
        cmd = ["nsenter", f"--target={self.leader}", "--mount", "--uts", "--ipc", "--net", "--pid",
               "--root", "--wd=/", "--", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG=C.UTF-8", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {done.returncode} in the container:\n"
                                 f"{done.stdout}{done.stderr}")
        return done

    def write(self, path, text):
        """Writes a file inside the container."""
        cmd = ["nsenter", f"--target={self.leader}", "--mount", "--root", "--wd=/", "--",
               "sh", "-c", 'cat > "$0"', path]
        subprocess.run(cmd, input=text, text=True, check=True, timeout=30)

    def wait_booted(self, timeout=60):
        def booted():
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            return state if state in ("running", "degraded") else None
        return wait_until(booted, timeout, 0.2, lambda: "the container's systemd to finish booting:\n"
                          + self.log_tail())

    def unit_property(self, unit, prop):
        return self.run("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def stop(self):
        if self.proc.poll() is None:
            # SIGTERM makes systemd-nspawn power the container off cleanly.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                if self.leader:   # the container's PID 1: SIGKILL ends the whole container
                    os.kill(self.leader, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
