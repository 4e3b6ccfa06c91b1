"""systemd integration: sd_notify readiness, reload and stop notifications in order,
watchdog pings, and the unit files pass `systemd-analyze verify`."""

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from daemon import REPO, service, switchyard_bin, switchyardctl_bin
from notify_socket import NotifySocket
from netutil import free_address
from waiters import wait_until


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def test_ready_reload_and_stopping_are_notified_in_order(backends, switchyard, notify):
    d = switchyard([service("web", free_address(), blue=[backends.echo()])],
                   env={"NOTIFY_SOCKET": notify.path})
    wait_until(lambda: notify.events() == ["READY=1"], 5, 0.02, lambda: f"READY=1, got {notify.all()}")
    ready = next(m for m in notify.all() if m.get("READY") == "1")
    assert "1 service(s)" in ready["STATUS"]
    assert "2 worker(s)" in ready["STATUS"]

    d.send_signal(signal.SIGHUP)
    wait_until(lambda: notify.events() == ["READY=1", "RELOADING=1", "READY=1"], 5, 0.02,
               lambda: f"RELOADING=1 then READY=1, got {notify.all()}")
    reloading = next(m for m in notify.all() if m.get("RELOADING") == "1")
    assert int(reloading["MONOTONIC_USEC"]) > 0

    d.stop()
    assert notify.events() == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


def test_watchdog_pings_come_while_the_workers_run(backends, switchyard, notify):
    switchyard([service("web", free_address(), blue=[backends.echo()])],
               env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
    wait_until(lambda: sum(1 for m in notify.all() if m.get("WATCHDOG") == "1") >= 3, 5, 0.05,
               lambda: f"three WATCHDOG=1, got {notify.all()}")


def test_without_watchdog_usec_no_pings_are_sent(backends, switchyard, notify):
    d = switchyard([service("web", free_address(), blue=[backends.echo()])], env={"NOTIFY_SOCKET": notify.path})
    wait_until(lambda: "READY=1" in notify.events(), 5)
    d.stop()
    assert not any(m.get("WATCHDOG") for m in notify.all())


def _units_with(tmp_path, sbin, bin_):
    out = []
    for name in ("switchyard.service", "switchyard.socket"):
        text = (REPO / "systemd" / name).read_text()
        text = text.replace("/usr/sbin/switchyard", sbin).replace("/usr/bin/switchyardctl", bin_)
        p = tmp_path / name
        p.write_text(text)
        out.append(str(p))
    return out


def test_unit_files_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze not installed")
    units = _units_with(tmp_path, switchyard_bin(), switchyardctl_bin())
    r = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True, timeout=60)
    # Warnings about the host (not the units) are not ours to fix.
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if "switchyard" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_service_unit_names_what_the_issue_requires():
    text = (REPO / "systemd" / "switchyard.service").read_text()
    for line in ("Type=notify", "ExecReload=/usr/bin/switchyardctl -c /etc/switchyard/switchyard.yaml reload",
                 "NoNewPrivileges=yes", "LogsDirectory=switchyard",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "RuntimeDirectory=switchyard", "StateDirectory=switchyard", "User=switchyard"):
        assert f"\n{line}\n" in text, line
    assert "WatchdogSec=" in text and "LimitNOFILE=" in text
    stop = int(next(l for l in text.splitlines() if l.startswith("TimeoutStopSec=")).split("=")[1].rstrip("s"))
    assert stop > 5   # above the default shutdown_grace


def test_exec_reload_finds_a_non_default_admin_socket(backends, switchyard):
    """The unit's ExecReload, run as written (paths swapped for the build's), reaches a daemon
    whose admin.socket is not the default, and fails visibly on a bad config."""
    d = switchyard([service("web", free_address(), blue=[backends.name("blue-1")])])
    assert "/run/switchyard" not in d.socket_path
    text = (REPO / "systemd" / "switchyard.service").read_text()
    line = next(l for l in text.splitlines() if l.startswith("ExecReload="))
    argv = line.split("=", 1)[1].split()
    argv = [switchyardctl_bin() if a == "/usr/bin/switchyardctl" else
            str(d.config_path) if a == "/etc/switchyard/switchyard.yaml" else a for a in argv]
    env = {k: v for k, v in os.environ.items() if k not in ("SWITCHYARD_SOCKET", "XDG_RUNTIME_DIR")}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=15, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: f"reloaded {d.config_path}" in d.log(), 5, message="the reload in the log")
    # A broken config: the reload still reaches the daemon, which refuses it and says why.
    d.config_path.write_text(d.config_path.read_text() + "bogus_key: 1\n")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=15, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "bogus_key" in r.stderr and r.stderr.rstrip().endswith("(bad_config)"), r.stderr


def test_sysusers_entry_creates_the_service_user(tmp_path):
    sysusers = shutil.which("systemd-sysusers")
    if not sysusers:
        pytest.skip("systemd-sysusers not installed")
    (tmp_path / "etc").mkdir()
    r = subprocess.run([sysusers, f"--root={tmp_path}", str(REPO / "systemd" / "switchyard.sysusers")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "etc" / "passwd").read_text().startswith("switchyard:")
    assert "switchyard:" in (tmp_path / "etc" / "group").read_text()


def test_meson_install_puts_everything_where_a_package_would(tmp_path):
    build = Path(switchyard_bin()).parent
    meson = shutil.which("meson")
    if not meson or not (build / "meson-info").exists():
        pytest.skip("no meson build directory next to the binary")
    r = subprocess.run([meson, "install", "-C", str(build), "--no-rebuild", "--destdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    files = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    for suffix in ("sbin/switchyard", "bin/switchyardctl", "systemd/system/switchyard.service",
                   "systemd/system/switchyard.socket", "sysusers.d/switchyard.conf", "man8/switchyard.8",
                   "man1/switchyardctl.1", "examples/switchyard.yaml", "switchyard/switchyard.yaml",
                   "tmpfiles.d/switchyard.conf", "logrotate.d/switchyard",
                   "bash-completion/completions/switchyardctl"):
        assert any(f.endswith(suffix) for f in files), (suffix, sorted(files))
    unit = next(p for p in tmp_path.rglob("switchyard.service"))
    text = unit.read_text()
    # The unit runs the installed programs.
    exec_start = next(l for l in text.splitlines() if l.startswith("ExecStart="))
    assert exec_start.split("=", 1)[1].split()[0].endswith("/sbin/switchyard")
