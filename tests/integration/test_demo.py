"""switchyard --demo: the Quick start's first command."""

import os
import subprocess
import time

import pytest

from clients import http_get
from daemon import accepts, switchyard_bin, switchyardctl_bin
from netutil import port_is_free
from waiters import StopWaiting, wait_until


@pytest.fixture
def demo(tmp_path):
    for port in (8080, 9911):
        if not port_is_free("127.0.0.1", port):
            pytest.skip(f"127.0.0.1:{port} is busy; the demo needs it")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    env.pop("SWITCHYARD_SOCKET", None)
    stderr_path = tmp_path / "demo.stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen([switchyard_bin(), "--demo"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=str(tmp_path))

    def log():
        return stderr_path.read_text(errors="replace")

    def ready():
        if proc.poll() is not None:
            raise StopWaiting(f"--demo exited with {proc.returncode}:\n{log()[-3000:]}")
        return "ready" in log() and accepts("127.0.0.1:8080")

    try:
        wait_until(ready, 10, message="the demo to be ready")
        yield proc, env, runtime
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        print("--- demo stderr ---\n" + log()[-3000:])
    assert rc == 0, f"--demo exited with {rc} on SIGTERM"


def test_demo_answers_blue_on_port_8080(demo):
    body = http_get("127.0.0.1:8080")
    assert body.startswith("blue-"), body


def test_demo_spreads_over_both_blue_backends(demo):
    names = {http_get("127.0.0.1:8080").strip() for _ in range(20)}
    assert names == {"blue-1", "blue-2"}


def test_demo_creates_its_admin_socket_under_xdg_runtime_dir(demo):
    _, _, runtime = demo
    wait_until(lambda: (runtime / "switchyard" / "admin.sock").exists(), 5,
               message="$XDG_RUNTIME_DIR/switchyard/admin.sock")


def test_demo_cutover_to_green_with_switchyardctl(demo):
    _, env, _ = demo
    ctl = switchyardctl_bin()
    if not os.access(ctl, os.X_OK):
        pytest.skip(f"switchyardctl not built yet ({ctl})")
    r = subprocess.run([ctl, "cutover", "demo", "green"], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr + r.stdout
    assert http_get("127.0.0.1:8080").startswith("green-")
