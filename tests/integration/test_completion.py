"""bash completion for switchyardctl (completion/switchyardctl.bash): commands, options,
fixed words, and service names and backend addresses read from the running daemon."""

import shutil
import subprocess

import pytest

from daemon import REPO, service, switchyardctl_bin
from netutil import free_address

SCRIPT = REPO / "completion" / "switchyardctl.bash"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")


def complete(*words):
    """COMPREPLY for the command line `switchyardctl WORDS...` with the cursor on the last word."""
    words = [switchyardctl_bin(), *words]
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    script = f"""
source '{SCRIPT}'
COMP_WORDS=({quoted})
COMP_CWORD={len(words) - 1}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
_switchyardctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    r = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line]


@pytest.fixture
def two_services(backends, switchyard):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green]),
                    service("api", free_address(), blue=[backends.name("blue-2")])])
    d.blue, d.green = blue, green
    return d


def test_commands_and_options_complete_without_a_daemon():
    assert complete("roll") == ["rollback", "rollout", "rollout-status", "rollout-history", "rollout-pause",
                                "rollout-resume", "rollout-abort"]
    assert complete("--ti") == ["--timeout"]
    assert set(complete("-")) >= {"-s", "-c", "--tcp", "--token-file", "--json", "--wait", "-V"}
    assert complete("cutover", "web", "") == ["blue", "green"]
    assert complete("pool", "web", "blue", "o") == ["offline", "online"]
    assert complete("rollout", "web", "to=g") == ["to=green"]
    # No daemon: no names, and no error either.
    assert complete("-s", "/nonexistent/admin.sock", "status", "") == []


def test_service_names_and_backend_addresses_come_from_the_daemon(two_services):
    d = two_services
    assert complete("-s", d.socket_path, "status", "") == ["web", "api"]
    assert complete("-s", d.socket_path, "cutover", "w") == ["web"]
    assert complete("-s", d.socket_path, "backend", "web", "green", "") == [d.green.address]
    assert complete("-s", d.socket_path, "remove", "web", "blue", "") == [d.blue.address]
    assert complete("-s", d.socket_path, "backend", "web", "blue", d.blue.address, "d") == ["drain", "disable"]
    # -c finds the same daemon through its config.
    assert complete("-c", str(d.config_path), "split", "") == ["web", "api"]
