"""The Debian package under a real systemd: a Debian 12 container booted by
systemd-nspawn, the package installed with dpkg as README's install steps say,
the service started with systemctl. Checks what only systemd itself can judge:
after `switchyardctl upgrade` systemd's MainPID is the new process, the new
process keeps the watchdog fed, `systemctl reload` and `systemctl stop` act on it,
open connections survive the upgrade, a stop during a drain kills nothing, and
`systemctl restart` refuses no connection: the next process gets its listeners
back from systemd's fd store.

Needs root, systemd-nspawn (systemd-container), debootstrap and the package:
SWITCHYARD_DEB=path/to/switchyard_*.deb. scripts/test.sh runs it after building
the package; the Debian tree is cached under SWITCHYARD_ROOTFS_CACHE
(default /var/cache/switchyard-tests).
"""

import os
import shutil
import socket
import subprocess
import threading
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "support"))

from backends import EchoBackend  # noqa: E402
from clients import connect, exchange  # noqa: E402
from container import Container  # noqa: E402
from daemon import service, to_yaml  # noqa: E402
from netutil import free_address  # noqa: E402
from waiters import wait_until  # noqa: E402

DEB = os.environ.get("SWITCHYARD_DEB", "")
CACHE = os.environ.get("SWITCHYARD_ROOTFS_CACHE", "/var/cache/switchyard-tests")

missing = [tool for tool in ("systemd-nspawn", "debootstrap", "nsenter", "dpkg-deb") if not shutil.which(tool)]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="systemd-nspawn needs root"),
    pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}"),
    pytest.mark.skipif(not os.path.isfile(DEB), reason="SWITCHYARD_DEB names no package file"),
]


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    made = subprocess.run(["bash", str(HERE / "make-rootfs.sh"), DEB, CACHE],
                          capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, f"make-rootfs.sh exited {made.returncode}:\n{made.stderr}"
    tree = made.stdout.strip()
    logs = tmp_path_factory.mktemp("container")
    pkg_dir = Path(DEB).resolve().parent
    box = Container(tree, f"sy-test-{os.getpid()}", logs / "console.log", binds=[(pkg_dir, "/mnt/pkg")])
    try:
        box.wait_booted()
        box.run("dpkg", "-i", f"/mnt/pkg/{Path(DEB).name}", timeout=120)
        yield box
    finally:
        box.stop()


def _service_config(listen, metrics, backend_address):
    return to_yaml({
        "admin": {"socket": "/run/switchyard/admin.sock", "socket_mode": "0660"},
        "metrics": {"listen": metrics},
        "state_file": "/var/lib/switchyard/state.json",
        "workers": 2,
        "shutdown_grace": "2s",
        "upgrade": {"drain_timeout": "30s", "close_spread": "1s"},
        "services": [service("web", listen, blue=[backend_address])],
    }) + "\n"


def _main_pid(box):
    return int(box.unit_property("switchyard.service", "MainPID"))


def _journal(box, after=None):
    """The unit's journal (the last 60 lines), or what it got after the cursor `after`."""
    args = ["journalctl", "--no-pager", "-o", "short-monotonic", "-u", "switchyard.service"]
    args += [f"--after-cursor={after}"] if after else ["-n", "60"]
    return box.run(*args, check=False).stdout


def _journal_cursor(box):
    shown = box.run("journalctl", "--no-pager", "-n", "0", "--show-cursor", "-u", "switchyard.service").stdout
    return shown.strip().rsplit("-- cursor: ", 1)[1]


def _parent_in(box, pid):
    # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, not ")".
    stat = box.run("cat", f"/proc/{pid}/stat").stdout
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive_in(box, pid):
    return box.run("test", "-d", f"/proc/{pid}", check=False).returncode == 0


@pytest.fixture
def started(container):
    """switchyard.service started in the container in front of an echo backend
    on the host: yields its listen address; stops the service afterwards."""
    echo = EchoBackend()
    listen = free_address()
    try:
        container.write("/etc/switchyard/switchyard.yaml", _service_config(listen, free_address(), echo.address))
        container.run("systemctl", "start", "switchyard.service", timeout=60)
        assert container.unit_property("switchyard.service", "ActiveState") == "active"
        yield listen
    finally:
        container.run("systemctl", "stop", "switchyard.service", check=False)
        echo.stop()


def test_systemd_follows_an_upgrade_to_the_new_process(container, started):
    box, listen = container, started
    old = _main_pid(box)
    assert old > 0

    held = [connect(listen) for _ in range(20)]
    for i, s in enumerate(held):
        assert exchange(s, f"before {i}\n".encode()) == f"before {i}\n".encode()

    upgraded = box.run("switchyardctl", "upgrade", "--timeout", "30s", timeout=60)
    assert upgraded.stdout.startswith("upgraded: pid "), upgraded.stdout
    new = int(upgraded.stdout.split()[2])
    assert new != old

    # systemd itself names the new process the service's main PID.
    assert wait_until(lambda: _main_pid(box) == new, 5, 0.05, "MainPID to be the new process")
    assert box.unit_property("switchyard.service", "ActiveState") == "active"
    # ... and a child of its own: systemd can wait for it on stop (a main PID
    # that is not its child gets SIGKILL with the rest of the unit at once).
    assert _parent_in(box, new) == 1, _journal(box)
    assert "not our child" not in _journal(box)

    # The connections the old process holds go on; new ones reach the backend.
    for i, s in enumerate(held):
        assert exchange(s, f"after {i}\n".encode()) == f"after {i}\n".encode()
    with connect(listen) as fresh:
        assert exchange(fresh, b"fresh\n") == b"fresh\n"

    # The old process exits once its last connection is closed.
    for s in held:
        s.close()
    wait_until(lambda: not _alive_in(box, old), 10, 0.05, "the old generation to exit")

    # WatchdogSec=10s: the new process must feed the watchdog, or systemd
    # kills it and restarts the service. Past one full period: same PID, no restart.
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        assert _main_pid(box) == new
        time.sleep(0.5)
    assert box.unit_property("switchyard.service", "NRestarts") == "0"
    assert box.unit_property("switchyard.service", "ActiveState") == "active"

    # ExecReload and ExecStop act on the new main process.
    box.run("systemctl", "reload", "switchyard.service", timeout=60)
    assert _main_pid(box) == new
    box.run("systemctl", "stop", "switchyard.service", timeout=60)
    assert box.unit_property("switchyard.service", "ActiveState") == "inactive", _journal(box)
    assert box.unit_property("switchyard.service", "Result") == "success", _journal(box)
    assert not _alive_in(box, new)


def test_systemctl_stop_during_a_drain_lets_both_generations_finish(container, started):
    box, listen = container, started
    old = _main_pid(box)
    held = [connect(listen) for _ in range(5)]
    for s in held:
        assert exchange(s, b"ping\n") == b"ping\n"
    new = int(box.run("switchyardctl", "upgrade", "--timeout", "30s", timeout=60).stdout.split()[2])
    wait_until(lambda: _main_pid(box) == new, 5, 0.05, "MainPID to be the new process")
    assert _alive_in(box, old)   # still draining the held connections

    # KillMode=mixed: SIGTERM to the main process only; whatever is left of
    # the unit once it exits gets SIGKILL. The new generation must not exit
    # before the draining one has closed its connections in its own grace.
    stop_sent = time.monotonic()
    cursor = _journal_cursor(box)
    box.run("systemctl", "stop", "switchyard.service", timeout=60)
    stop_took = time.monotonic() - stop_sent
    journal = _journal(box, after=cursor)
    assert "SIGKILL" not in journal, journal
    # The draining generation's idle connections got its shutdown_grace (2 s) less its
    # 1 s margin before it closed them; the stop waited for that.
    assert stop_took >= 0.9, (stop_took, journal)
    assert box.unit_property("switchyard.service", "Result") == "success", journal
    assert not _alive_in(box, old) and not _alive_in(box, new)
    # shutdown_grace is 2s: the held connections were closed, in time, with a FIN.
    for s in held:
        s.settimeout(1)
        assert s.recv(1) == b""
        s.close()
    assert time.monotonic() - stop_sent < 10


def test_systemctl_restart_refuses_no_connection(container, started):
    """FileDescriptorStoreMax=: systemd keeps the listeners while the service
    restarts, and the next process accepts on them: a client connecting
    throughout the restart is never refused."""
    box, listen = container, started
    old = _main_pid(box)
    host, port = listen.rsplit(":", 1)
    outcomes = {"ok": 0, "refused": 0, "other": []}
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            try:
                with socket.create_connection((host, int(port)), timeout=10) as s:
                    s.settimeout(10)
                    s.sendall(b"x")
                    if s.recv(1) == b"x":
                        outcomes["ok"] += 1
                    else:
                        outcomes["other"].append("closed without an answer")
            except ConnectionRefusedError:
                outcomes["refused"] += 1
            except OSError as exc:
                outcomes["other"].append(repr(exc))

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        wait_until(lambda: outcomes["ok"] >= 20, 10, 0.02, "probes before the restart")
        cursor = _journal_cursor(box)
        box.run("systemctl", "restart", "switchyard.service", timeout=60)
        new = _main_pid(box)
        assert new != old
        at_restart = outcomes["ok"]
        wait_until(lambda: outcomes["ok"] >= at_restart + 20, 10, 0.02, "probes after the restart")
    finally:
        stop.set()
        prober.join(15)
    journal = _journal(box, after=cursor)
    assert "web: accepting on 2 listener(s) kept in systemd's fd store" in journal, journal
    assert outcomes["refused"] == 0, journal
    assert outcomes["other"] == [], outcomes["other"]
