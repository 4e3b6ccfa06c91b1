"""switchyardctl against the real daemon: output, --json, exit codes 0/1/2/3/5,
socket resolution, if-generation races, --wait."""

import datetime
import json
import os
import re
import subprocess
import threading

import pytest

from clients import connect, exchange, http_get
from daemon import service, switchyardctl_bin
from netutil import free_address
from waiters import wait_until


def run_ctl(*args, env=None, timeout=15):
    full = dict(os.environ)
    full.pop("SWITCHYARD_SOCKET", None)
    full.update(env or {})
    return subprocess.run([switchyardctl_bin(), *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, env=full)


@pytest.fixture
def web(backends, switchyard):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green],
                            drain_timeout="5s", drain_spread="100ms")], workers=1)
    d.blue, d.green = blue, green
    return d


def generation(d):
    return d.admin("status web")["services"][0]["generation"]


def test_change_prints_a_summary_and_exits_0(web):
    gen = generation(web)
    r = web.ctl("split", "web", "blue=90", "green=10")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"web: split blue=100 green=0 → blue=90 green=10 (generation {gen + 1})\n"
    assert r.stderr == ""
    assert web.admin("status web")["services"][0]["split"] == {"blue": 90, "green": 10}


def test_every_change_says_what_it_changed_before_and_after(web):
    gen = generation(web)
    g = web.green.address

    def ctl(*args):
        r = web.ctl(*args)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert ctl("backend", "web", "green", g, "weight=50") == f"web: green {g} weight 100 → 50 (generation {gen + 1})\n"
    assert ctl("backend", "web", "green", g, "drain") == f"web: green {g} enabled → drain (generation {gen + 2})\n"
    assert ctl("backend", "web", "green", g, "enable") == f"web: green {g} drain → enabled (generation {gen + 3})\n"
    assert ctl("backend", "web", "green", g, "enable") == "web: no change\n"
    gen = generation(web)
    assert ctl("add", "web", "green", "127.0.0.1:1", "weight=5") == \
        f"web: green 127.0.0.1:1 added (weight 5, enabled) (generation {gen + 1})\n"
    out = ctl("remove", "web", "green", "127.0.0.1:1")
    # No connections to drain: it is gone by the time the after-state is read, or still removing.
    assert out in (f"web: green 127.0.0.1:1 removed from the pool (generation {gen + 2})\n",
                   f"web: green 127.0.0.1:1 enabled → removing (generation {gen + 2})\n"), out
    assert ctl("pool", "web", "green", "offline") == f"web: green pool online → offline (generation {gen + 3})\n"
    assert ctl("pool", "web", "green", "online") == f"web: green pool offline → online (generation {gen + 4})\n"
    out = ctl("cutover", "web", "green")
    assert out == f"web: split blue=100 green=0 → blue=0 green=100 (generation {gen + 5})\n", out
    out = ctl("reset", "web")
    assert out == f"web: split blue=0 green=100 → blue=100 green=0 (generation {gen + 6})\n" \
                  f"web: green {g} weight 50 → 100 (generation {gen + 6})\n", out
    # --json stays the reply line alone.
    r = web.ctl("--json", "split", "web", "blue=1", "green=1")
    assert r.returncode == 0 and r.stdout.count("\n") == 1 and json.loads(r.stdout)["ok"] is True


def test_reload_says_which_settings_changed(web):
    text = web.config_path.read_text()
    assert "balance" not in text
    web.config_path.write_text(text.replace("drain_timeout:", "balance: leastconn\n    drain_timeout:", 1))
    r = web.ctl("reload")
    assert r.returncode == 0, r.stderr
    gen = generation(web)
    lines = r.stdout.splitlines()
    assert lines[0] == f"web: balance roundrobin → leastconn (generation {gen})", r.stdout
    assert "overrides_kept: none" in lines and "services_added: none" in lines, r.stdout
    r = web.ctl("reload")
    assert r.stdout.splitlines()[0] == "reload: no change", r.stdout


def test_status_prints_a_table(web):
    r = web.ctl("status")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "web" in out and web.listen() in out
    assert web.blue.address in out and web.green.address in out
    assert "generation" in out


def test_json_prints_the_raw_reply_line(web):
    gen = generation(web)
    r = web.ctl("--json", "cutover", "web", "green")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1, r.stdout
    reply = json.loads(r.stdout)
    assert reply["ok"] is True and reply["service"] == "web"
    assert reply["generation"] == gen + 1
    assert reply["split"] == {"blue": 0, "green": 100}
    # flags may follow the command words
    r = web.ctl("status", "web", "--json")
    assert r.returncode == 0
    status = json.loads(r.stdout)
    direct = web.admin("status web")
    assert set(status) == set(direct)
    assert status["services"][0]["split"] == direct["services"][0]["split"]
    assert status["services"][0]["generation"] == direct["services"][0]["generation"]


def test_json_on_a_refusal_prints_the_reply_and_exits_1(web):
    r = web.ctl("--json", "status", "nope")
    assert r.returncode == 1
    reply = json.loads(r.stdout)
    assert reply == {"ok": False, "code": "no_such_service", "error": reply["error"]}
    assert r.stderr == f"switchyardctl: {reply['error']} (no_such_service)\n"


@pytest.mark.parametrize("args,code", [
    (("status", "nope"), "no_such_service"),
    (("split", "nope", "blue=1", "green=1"), "no_such_service"),
    (("backend", "web", "blue", "127.0.0.1:1", "drain"), "no_such_backend"),
    (("rollback", "web"), "refused"),
    (("split", "web", "blue=0", "green=0"), "refused"),
])
def test_refusals_exit_1_with_the_error_and_code_on_stderr(web, args, code):
    direct = web.admin(" ".join(args))
    assert direct["ok"] is False and direct["code"] == code, direct
    r = web.ctl(*args)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr == f"switchyardctl: {direct['error']} ({code})\n"


@pytest.mark.parametrize("args,code", [
    (("frobnicate",), "unknown_command"),
    (("stauts", "web"), "unknown_command"),
    (("split", "web", "blue=x", "green=1"), "bad_argument"),
    (("cutover", "web", "gren"), "bad_argument"),
])
def test_a_typo_exits_2_not_1(web, args, code):
    """A typo is a usage error (2), so a script can tell it from a refusal (1)."""
    gen = generation(web)
    direct = web.admin(" ".join(args))
    assert direct["ok"] is False and direct["code"] == code, direct
    r = web.ctl(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr == f"switchyardctl: {direct['error']} ({code})\n"
    assert generation(web) == gen


def test_c_reads_the_socket_from_the_config_even_when_it_is_invalid(web, tmp_path):
    r = run_ctl("-c", str(web.config_path), "status", "web", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["services"][0]["name"] == "web"
    web.config_path.write_text(web.config_path.read_text() + "no_such_key: 1\n")
    r = run_ctl("-c", str(web.config_path), "status", "web", "--json")
    assert r.returncode == 0, r.stderr
    # -s wins over -c
    r = run_ctl("-c", str(web.config_path), "-s", str(tmp_path / "none.sock"), "status")
    assert r.returncode == 3 and str(tmp_path / "none.sock") in r.stderr, r.stderr
    # A missing file is reported, and the default socket is tried.
    r = run_ctl("-c", str(tmp_path / "missing.yaml"), "status", env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert r.returncode == 3
    assert f"{tmp_path / 'missing.yaml'}: cannot read the configuration file; using the default socket" in r.stderr


def test_status_shows_when_a_fallback_began_as_local_time_and_age(backends, switchyard):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green],
                            health={"type": "tcp", "interval": "100ms", "timeout": "100ms", "rise": 1, "fall": 1})],
                   workers=1)
    wait_until(lambda: all(b["checked"] for p in d.admin("status web")["services"][0]["pools"].values()
                           for b in p["backends"]), 5, message="first health results")
    blue.kill()
    wait_until(lambda: d.admin("status web")["services"][0]["fallback"]["active"], 5, message="fallback")
    since_ms = d.admin("status web")["services"][0]["fallback"]["since"]
    # Local time is the TZ the ctl runs under.
    r = run_ctl("-s", d.socket_path, "status", "web", env={"TZ": "Asia/Kolkata"})
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.strip().startswith("fallback"))
    utc = datetime.datetime.fromtimestamp(since_ms / 1000, datetime.timezone.utc)
    expected = (utc + datetime.timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"ACTIVE since {expected} IST " in line, line
    assert re.search(r"\((just now|\d+s ago)\): pool blue: 0 of 1 backend", line), line
    assert str(since_ms) not in line


def test_already_exists_exits_1(web):
    r = web.ctl("add", "web", "green", web.blue.address)
    assert r.returncode == 1
    assert r.stderr.startswith("switchyardctl: ") and r.stderr.endswith("(already_exists)\n"), r.stderr


@pytest.mark.parametrize("args", [
    (),
    ("--bogus", "status"),
    ("--wait", "split", "web", "blue=1", "green=1"),
    ("split", "web", "blue=1\nsplit", "green=1"),
    ("--timeout", "soon", "status"),
])
def test_usage_errors_exit_2_and_send_nothing(web, args):
    gen = generation(web)
    r = web.ctl(*args)
    assert r.returncode == 2, (args, r.returncode, r.stderr)
    assert r.stderr.startswith("switchyardctl: ") or "usage" in r.stderr.lower(), r.stderr
    assert generation(web) == gen


def test_wait_on_split_names_the_command():
    r = run_ctl("-s", "/nonexistent/admin.sock", "split", "web", "blue=1", "green=1", "--wait")
    assert r.returncode == 2
    assert "--wait is not supported for split" in r.stderr


def test_unreachable_daemon_exits_3_naming_the_socket(tmp_path):
    path = str(tmp_path / "missing" / "admin.sock")
    r = run_ctl("-s", path, "status")
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert r.stderr.startswith(f"switchyardctl: cannot reach switchyard at {path}: "), r.stderr
    assert r.stdout == ""
    # via the environment, too
    r = run_ctl("status", env={"SWITCHYARD_SOCKET": path})
    assert r.returncode == 3 and path in r.stderr, r.stderr


def test_socket_from_environment_and_s_wins_over_it(web, tmp_path):
    r = run_ctl("status", "web", env={"SWITCHYARD_SOCKET": web.socket_path})
    assert r.returncode == 0, r.stderr
    r = run_ctl("-s", web.socket_path, "status", "web",
                env={"SWITCHYARD_SOCKET": str(tmp_path / "nothing.sock")})
    assert r.returncode == 0, r.stderr
    r = run_ctl("-s", str(tmp_path / "nothing.sock"), "status",
                env={"SWITCHYARD_SOCKET": web.socket_path})
    assert r.returncode == 3


def test_if_generation_mismatch_exits_5(web):
    gen = generation(web)
    r = web.ctl("cutover", "web", "green", f"if-generation={gen + 7}")
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert r.stderr.endswith("(generation_mismatch)\n"), r.stderr
    r = web.ctl("cutover", "web", "green", f"if-generation={gen}")
    assert r.returncode == 0, r.stderr


def test_if_generation_races_exactly_one_client_wins(web):
    for round_ in range(10):
        # both differ from the current split: a no-op would win without moving generation
        splits = [(f"blue={10 + round_}", "green=90"), ("blue=90", f"green={10 + round_}")]
        gen = generation(web)
        barrier = threading.Barrier(2)
        results = [None, None]

        def racer(i):
            barrier.wait(5)
            results[i] = web.ctl("split", "web", *splits[i], f"if-generation={gen}")

        threads = [threading.Thread(target=racer, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        codes = sorted(r.returncode for r in results)
        assert codes == [0, 5], (round_, [(r.returncode, r.stderr) for r in results])
        winner = 0 if results[0].returncode == 0 else 1
        s = web.admin("status web")["services"][0]
        assert s["generation"] == gen + 1
        want = dict(kv.split("=") for kv in splits[winner])
        assert s["split"] == {k: int(v) for k, v in want.items()}


def test_cutover_wait_returns_when_the_old_pool_has_drained(backends, switchyard):
    echo = backends.echo()
    green = backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[echo], green=[green],
                            drain_timeout="20s", drain_spread="100ms")], workers=1)
    wait_until(lambda: echo.open_connections == 0, 3, message="readiness probe to end")
    held = connect(d.listen())
    try:
        assert exchange(held, b"hi") == b"hi"
        # --timeout: gives up with exit 1 while the connection is open; the change stays
        r = d.ctl("cutover", "web", "green", "--wait", "--timeout", "600ms")
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert re.search(r"timed out with 1 connections? left on blue", r.stderr), r.stderr
        assert d.admin("status web")["services"][0]["split"] == {"blue": 0, "green": 100}
        proc = subprocess.Popen([switchyardctl_bin(), "-s", d.socket_path, "cutover", "web", "green",
                                 "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: "left on blue" in (proc.stderr.readline() or ""), 5,
                   message="ctl to report it is waiting")
        assert proc.poll() is None, "ctl returned while a blue connection was open"
    finally:
        held.close()
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, (out, err)
    assert out.splitlines()[-1] == "web: blue drained", out
    assert http_get(d.listen()) == "green-1"


def test_help_and_version(web):
    r = web.ctl("help")
    assert r.returncode == 0
    assert any(line.startswith("split ") for line in r.stdout.splitlines()), r.stdout
    r = run_ctl("--version")
    assert r.returncode == 0 and r.stdout.startswith("switchyardctl ")
    assert "\n  git commit:  " in r.stdout and "\n  io_uring:    " in r.stdout, r.stdout
    assert run_ctl("-V").stdout == r.stdout


def test_switchyard_takes_dash_v_like_switchyardctl():
    from daemon import switchyard_bin
    long = subprocess.run([switchyard_bin(), "--version"], capture_output=True, text=True, timeout=10)
    short = subprocess.run([switchyard_bin(), "-V"], capture_output=True, text=True, timeout=10)
    assert long.returncode == 0 and short.returncode == 0, short.stderr
    assert short.stdout == long.stdout and short.stdout.startswith("switchyard ")
