"""Under a real systemd: a Debian 12 container (systemd-nspawn) runs switchyard.service as README's
install steps set it up, `switchyardctl upgrade` moves systemd's MainPID to the new process, and
`systemctl restart` gives the next process its listeners back from systemd's fd store.

Opt-in: set SWITCHYARD_NSPAWN_ROOTFS to a Debian 12 tree made with
`debootstrap --include=systemd-sysv,dbus bookworm DIR` (the test never writes to it: the container
runs with --volatile=overlay). Needs root and systemd-nspawn (package systemd-container)."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from clients import connect, recv_exactly
from daemon import switchyard_bin, switchyardctl_bin, to_yaml
from netutil import free_address
from waiters import wait_until

ROOTFS = os.environ.get("SWITCHYARD_NSPAWN_ROOTFS")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(
    not ROOTFS or os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="opt-in: needs root, systemd-nspawn and SWITCHYARD_NSPAWN_ROOTFS (a Debian 12 debootstrap tree)")


def _libraries_missing_in(rootfs, binaries):
    """The shared libraries `binaries` need that the tree does not have (the test copies them in)."""
    missing = set()
    for binary in binaries:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split("=>")
            if len(parts) != 2 or not parts[1].strip().startswith("/"):
                continue
            name, path = parts[0].strip(), parts[1].split()[0]
            if not any(os.path.exists(os.path.join(rootfs, d.lstrip("/"), name))
                       for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib")):
                missing.add(path)
    return sorted(missing)


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


class Container:
    """A booted container; commands run in it through nsenter (no machined on the host)."""

    def __init__(self, tmp_path, stage):
        self.log_path = tmp_path / "nspawn.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", ROOTFS, "--volatile=overlay", "--register=no", "--keep-unit",
             f"--machine=sytest{os.getpid()}", f"--bind-ro={stage}:/opt/sy", "--boot"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.leader = wait_until(self._find_leader, 30, 0.1, "the container's init")
        wait_until(lambda: self.run("systemctl", "is-system-running", check=False).stdout.strip()
                   in ("running", "degraded"), 60, 0.5, lambda: f"the container to boot:\n{self.log()}")

    def _find_leader(self):
        for child in _children(self.proc.pid):
            with open(f"/proc/{child}/comm") as f:
                if f.read().strip() == "systemd":
                    return child
        return None

    def run(self, *argv, check=True):
        out = subprocess.run(["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", *argv],
                             capture_output=True, text=True, timeout=120)
        if check and out.returncode != 0:
            raise AssertionError(f"{argv} exited {out.returncode}: {out.stdout}{out.stderr}")
        return out

    def main_pid(self):
        return int(self.run("systemctl", "show", "-p", "MainPID", "--value", "switchyard").stdout)

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # nspawn shuts the container down in order
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def test_systemd_follows_the_upgrade_in_a_debian_12_container(tmp_path, backends):
    echo = backends.echo()   # on the host's loopback: the container shares the host's network
    listen = free_address()
    stage = tmp_path / "stage"
    (stage / "lib").mkdir(parents=True)
    binaries = [switchyard_bin(), switchyardctl_bin()]
    for b in binaries:
        shutil.copy(b, stage)
    for lib in _libraries_missing_in(ROOTFS, binaries):
        shutil.copy(lib, stage / "lib")
    for name in ("switchyard.service", "switchyard.sysusers", "switchyard.tmpfiles"):
        shutil.copy(os.path.join(REPO, "systemd", name), stage)
    (stage / "switchyard.yaml").write_text(to_yaml({
        "upgrade": {"drain_timeout": "30s", "close_spread": "1s"},
        "services": [{"name": "web", "listen": listen, "pools": {"blue": [{"address": echo.address}]}}],
    }) + "\n")

    box = Container(tmp_path, stage)
    try:
        # README's install steps, with the files a package would put in place.
        box.run("sh", "-ec", """
            install -m 0755 /opt/sy/switchyard /usr/sbin/switchyard
            install -m 0755 /opt/sy/switchyardctl /usr/bin/switchyardctl
            cp /opt/sy/lib/* /usr/local/lib/ 2>/dev/null || true
            ldconfig
            install -D -m 0644 /opt/sy/switchyard.sysusers /usr/lib/sysusers.d/switchyard.conf
            install -D -m 0644 /opt/sy/switchyard.tmpfiles /usr/lib/tmpfiles.d/switchyard.conf
            install -D -m 0644 /opt/sy/switchyard.yaml /etc/switchyard/switchyard.yaml
            install -D -m 0644 /opt/sy/switchyard.service /etc/systemd/system/switchyard.service
            systemd-sysusers
            systemctl daemon-reload
            systemctl start switchyard
        """)
        before = box.main_pid()
        assert before > 0
        held = connect(listen)
        held.sendall(b"before\n")
        assert recv_exactly(held, 7) == b"before\n"

        out = box.run("switchyardctl", "upgrade", "--timeout", "30s")
        assert out.stdout.startswith("upgraded: pid "), out.stdout
        new = int(out.stdout.split()[2])
        assert new != before
        # systemd follows: the new process is the main PID, and the unit stays active.
        wait_until(lambda: box.main_pid() == new, 10, 0.1,
                   lambda: f"MainPID={new}, got {box.main_pid()}")
        assert box.run("systemctl", "is-active", "switchyard").stdout.strip() == "active"
        # The held connection is still served by the old process; new ones by the new one.
        held.sendall(b"after!\n")
        assert recv_exactly(held, 7) == b"after!\n"
        held.close()
        fresh = connect(listen)
        fresh.sendall(b"new\n")
        assert recv_exactly(fresh, 4) == b"new\n"
        fresh.close()
        # A restart: systemd's fd store kept the listeners (FileDescriptorStoreMax= in the unit).
        box.run("systemctl", "restart", "switchyard")
        wait_until(lambda: box.main_pid() not in (0, before, new), 10, 0.1, "a new MainPID after restart")
        wait_until(lambda: "web: accepting on" in (lambda j: j if "kept in systemd's fd store" in j else "")(
            box.run("journalctl", "-u", "switchyard", "--no-pager", "-o", "cat").stdout), 10, 0.2,
            "the restarted process to take its listeners from the fd store")
        again = connect(listen)
        again.sendall(b"again\n")
        assert recv_exactly(again, 6) == b"again\n"
        again.close()
    finally:
        box.stop()
