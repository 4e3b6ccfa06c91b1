"""config/deploy-pipeline.sh, the worked pipeline example, against the real daemon:
it finds the idle colour, waits for its health, rolls out and exits with the verdict."""

import os
import shutil
import subprocess

import pytest

from daemon import REPO, service, switchyardctl_bin
from netutil import free_address

SCRIPT = REPO / "config" / "deploy-pipeline.sh"

pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="jq not installed (scripts/install-deps.sh)")

HEALTH = {"type": "tcp", "interval": "100ms", "timeout": "100ms", "rise": 1, "fall": 1}


def run_pipeline(d, *args, **env):
    full = dict(os.environ, SWITCHYARD_SOCKET=d.socket_path, SWITCHYARDCTL=switchyardctl_bin(),
                STEPS="50,100", HOLD="300ms", GATES="min_connections=0", HEALTH_TIMEOUT="10")
    full.update(env)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env=full, stdin=subprocess.DEVNULL)


def test_the_pipeline_rolls_out_to_the_idle_colour_and_exits_0(backends, switchyard):
    d = switchyard([service("web", free_address(), blue=[backends.name("blue-1")],
                            green=[backends.name("green-1")], health=HEALTH)])
    r = run_pipeline(d, "web", "v2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "web: live split blue=100 green=0; deploying to green" in r.stdout
    assert "every green backend is up" in r.stdout
    assert r.stdout.rstrip().endswith("web: v2 promoted on green"), r.stdout
    assert d.admin("status web")["services"][0]["split"] == {"blue": 0, "green": 100}


def test_the_pipeline_refuses_a_service_in_the_middle_of_a_split(backends, switchyard):
    d = switchyard([service("web", free_address(), blue=[backends.name("blue-1")],
                            green=[backends.name("green-1")], health=HEALTH)])
    assert d.admin("split web blue=50 green=50")["ok"] is True
    gen = d.admin("status web")["services"][0]["generation"]
    r = run_pipeline(d, "web", "v2")
    assert r.returncode == 1
    assert "web is split blue=50 green=50: finish or roll back that first" in r.stderr
    assert d.admin("status web")["services"][0]["generation"] == gen


def test_the_pipeline_gives_up_when_the_new_pool_never_gets_healthy(backends, switchyard):
    green = backends.name("green-1")
    # Dead before the daemon starts: killed after it, the first health check
    # (at start) could still have found it up, and the pipeline would go on.
    green.kill()
    d = switchyard([service("web", free_address(), blue=[backends.name("blue-1")], green=[green],
                            health=HEALTH)])
    r = run_pipeline(d, "web", "v2", HEALTH_TIMEOUT="2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "web: the green pool is not healthy after 2s; nothing was shifted" in r.stderr
    assert d.admin("status web")["services"][0]["split"] == {"blue": 100, "green": 0}
