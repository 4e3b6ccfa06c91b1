"""Ephemeral ports running out toward a backend: EADDRNOTAVAIL is a local error.
The daemon runs in a network namespace of the test's own whose ephemeral port
range holds four ports, so its upstream connects run out after a few held
connections. The client sees a prompt close; the backend is neither blamed nor
ejected, no fallback trips, and connections are served again once ports free up."""

import json
import os
import shutil
import subprocess
import uuid

import pytest

from daemon import switchyard_bin

HELPER = os.path.join(os.path.dirname(__file__), "..", "support", "netns_ports.py")


@pytest.fixture
def netns():
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed")
    name = f"sy-ports-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        # A namespace that cannot be set up is a skip with the reason, not an error
        # (e.g. no sysctl: procps is missing from a minimal image; scripts/install-deps.sh has it).
        for step in (["ip", "link", "set", "lo", "up"],
                     ["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40000 40003"]):
            try:
                done = subprocess.run(["ip", "netns", "exec", name, *step], capture_output=True, text=True)
            except OSError as exc:
                pytest.skip(f"cannot set up the network namespace: {' '.join(step)}: {exc}")
            if done.returncode != 0:
                pytest.skip(f"cannot set up the network namespace: {' '.join(step)}: "
                            f"{(done.stderr or done.stdout).strip() or f'exit {done.returncode}'}")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_ephemeral_ports_running_out_is_a_local_error(netns, tmp_path):
    engine = os.environ.get("SWITCHYARD_TEST_ENGINE") or "auto"
    run = subprocess.run(["ip", "netns", "exec", netns, "/usr/bin/python3", HELPER, switchyard_bin(),
                          str(tmp_path), engine], capture_output=True, text=True, timeout=60)
    log = (tmp_path / "switchyard.stderr").read_text(errors="replace") if (tmp_path / "switchyard.stderr").exists() else ""
    assert run.returncode == 0, run.stderr + log
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert 1 <= result["served"] <= 4, result     # at most the four ports of the range at once
    assert result["refused"] >= 1, result         # then the upstream connect fails locally
    assert result["during"] == {"health": "up", "ejected": False, "ejections": 0, "connect_failures": 0}, result
    assert result["fallback"] is False
    assert result["recovered"] is True, log
    assert result["exit"] == 0
