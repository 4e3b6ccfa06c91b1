"""generation vs revision, the state file across restarts, corrupt state files, and a
save that fails (docs/semantics.md: two counters, order, state file and reloads)."""

import errno
import glob
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from admin_raw import wait_checked
from clients import http_get
from daemon import run_switchyard, service, switchyard_bin
from netutil import free_address
from waiters import wait_until

FAST_HEALTH = {"type": "tcp", "interval": "200ms", "timeout": "200ms", "rise": 1, "fall": 1}


def svc(d, name="web"):
    reply = d.admin(f"status {name}")
    assert reply["ok"] is True, reply
    return reply["services"][0]


def counters(d):
    s = svc(d)
    return s["generation"], s["revision"]


def names(d, n):
    return Counter(http_get(d.listen()) for _ in range(n))


def web(backends, switchyard, start=True, **extra):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    options = {"health": FAST_HEALTH, "drain_timeout": "300ms", "drain_spread": "100ms"}
    options.update(extra.pop("svc", {}))
    d = switchyard([service("web", free_address(), blue=[blue], green=[green], **options)],
                   workers=1, start=start, **extra)
    if start:
        wait_checked(d)
    return d, blue, green


# --- the two counters ----------------------------------------------------------------------

def test_a_no_op_change_moves_neither_counter(backends, switchyard):
    d, blue, green = web(backends, switchyard)
    assert d.admin("split web blue=60 green=40")["ok"] is True
    g, r = counters(d)
    for command in ("split web blue=60 green=40", "pool web green online",
                    f"backend web blue {blue.address} weight=100", f"backend web blue {blue.address} enable"):
        reply = d.admin(command)
        assert reply["ok"] is True, (command, reply)
        assert (reply["generation"], reply["revision"]) == (g, r), command
        assert counters(d) == (g, r), command


def test_every_operator_change_moves_both_counters_by_one(backends, switchyard):
    d, blue, green = web(backends, switchyard)
    extra = backends.name("green-2")
    for command in ("split web blue=60 green=40", "cutover web green", "rollback web",
                    f"backend web green {green.address} weight=5", f"backend web green {green.address} drain",
                    f"backend web green {green.address} enable", f"add web green {extra.address}",
                    "pool web green offline", "pool web green online", f"remove web green {extra.address}",
                    "reset web"):
        # A backend just added gets its first health result on its own
        # (an automatic change): let it land before counting.
        wait_checked(d)
        g, r = counters(d)
        reply = d.admin(command)
        assert reply["ok"] is True, (command, reply)
        assert (reply["generation"], reply["revision"]) == (g + 1, r + 1), command


def test_a_health_flip_moves_revision_not_generation(backends, switchyard):
    d, blue, green = web(backends, switchyard)
    wait_until(lambda: svc(d)["pools"]["green"]["backends"][0]["health"] == "up", 3)
    g, r = counters(d)
    green.kill()
    wait_until(lambda: svc(d)["pools"]["green"]["backends"][0]["health"] == "down", 5,
               message="green-1 marked down")
    g2, r2 = counters(d)
    assert g2 == g
    assert r2 > r
    # an if-generation read before the flip still wins
    assert d.admin(f"split web blue=90 green=10 force if-generation={g}")["ok"] is True


def test_a_completed_removal_moves_revision_not_generation(backends, switchyard):
    d, blue, green = web(backends, switchyard)
    extra = backends.name("blue-2")
    assert d.admin(f"add web blue {extra.address}")["ok"] is True
    wait_checked(d)
    assert d.admin(f"remove web blue {extra.address}")["ok"] is True
    g, r = counters(d)
    wait_until(lambda: len(svc(d)["pools"]["blue"]["backends"]) == 1, 5,
               message="removed backend to leave after its drain")
    g2, r2 = counters(d)
    assert g2 == g and r2 == r + 1, ((g, r), (g2, r2))


# --- restarts ----------------------------------------------------------------------------

def test_restart_keeps_the_split_and_never_flips_back_to_blue(backends, switchyard):
    d, blue, green = web(backends, switchyard)
    assert d.admin("cutover web green")["ok"] is True
    assert d.admin(f"backend web green {green.address} weight=40")["ok"] is True
    assert d.admin("pool web blue offline")["ok"] is True
    before = svc(d)
    d.stop()
    blue_before = blue.responses
    d.start()
    after = svc(d)
    assert after["split"] == {"blue": 0, "green": 100}
    assert after["effective_split"] == {"blue": 0, "green": 100}
    assert after["generation"] == before["generation"]
    assert after["pools"]["blue"]["state"] == "offline"
    assert after["pools"]["green"]["backends"][0]["weight"] == 40
    assert names(d, 10) == {"green-1": 10}
    assert blue.responses == blue_before
    # rollback history survives too: the latest split change was the cutover
    assert d.admin("pool web blue online")["ok"] is True
    r = d.admin("rollback web")
    assert r["ok"] is True and r["split"] == {"blue": 100, "green": 0}, r


def test_restart_keeps_runtime_added_and_removed_backends(backends, switchyard):
    d, blue, green = web(backends, switchyard)
    extra = backends.name("green-2")
    assert d.admin(f"add web green {extra.address} weight=20")["ok"] is True
    assert d.admin(f"remove web green {green.address}")["ok"] is True
    wait_until(lambda: [b["address"] for b in svc(d)["pools"]["green"]["backends"]] == [extra.address], 5)
    d.stop()
    d.start()
    pool = svc(d)["pools"]["green"]["backends"]
    assert [(b["address"], b["weight"]) for b in pool] == [(extra.address, 20)]


def test_reset_is_saved_a_restart_after_it_uses_the_config(backends, switchyard):
    d, blue, green = web(backends, switchyard)
    assert d.admin("cutover web green")["ok"] is True
    assert d.admin(f"backend web blue {blue.address} weight=5")["ok"] is True
    assert d.admin("reset web")["ok"] is True
    gen = svc(d)["generation"]
    d.stop()
    d.start()
    s = svc(d)
    assert s["split"] == {"blue": 100, "green": 0}
    assert s["pools"]["blue"]["backends"][0]["weight"] == 100
    assert s["generation"] == gen
    assert names(d, 4) == {"blue-1": 4}


def _bad_files(d):
    return glob.glob(d.state_file + ".bad-*")


@pytest.mark.parametrize("content", [b"{not json at all", b'{"hello": "world"}\n', b"\x00\xff" * 10,
                                     b'{"format":"switchyard-state","version":1,"services":{"web":{"split":7}}}'])
def test_a_corrupt_or_foreign_state_file_is_reported_set_aside_and_config_applies(backends, switchyard,
                                                                                   content):
    d, blue, green = web(backends, switchyard, start=False)
    Path(d.state_file).write_bytes(content)
    d.start()
    s = svc(d)
    assert s["split"] == {"blue": 100, "green": 0}
    assert names(d, 3) == {"blue-1": 3}
    (aside,) = _bad_files(d)
    assert Path(aside).read_bytes() == content, "the set-aside file must keep the original bytes"
    log = d.log()
    assert d.state_file in log and aside in log, d.log_tail()
    # the next change writes a fresh state file that a restart trusts
    assert d.admin("cutover web green")["ok"] is True
    d.stop()
    d.start()
    assert svc(d)["split"] == {"blue": 0, "green": 100}
    assert len(_bad_files(d)) == 1


def test_the_state_file_is_valid_json_after_every_change(backends, switchyard):
    d, blue, green = web(backends, switchyard)
    for command in ("cutover web green", "split web blue=3 green=7"):
        assert d.admin(command)["ok"] is True
        json.loads(Path(d.state_file).read_text())
    assert not os.path.exists(d.state_file + ".tmp")


# --- a save that fails ---------------------------------------------------------------------

@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(directory):
    """Fill the filesystem until ENOSPC; returns the filler's path."""
    path = directory / "filler"
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 1024)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return path


def test_a_refused_save_changes_nothing(backends, switchyard, tiny_tmpfs):
    state_file = tiny_tmpfs / "state.json"
    d, blue, green = web(backends, switchyard, extra={"state_file": str(state_file)})
    assert d.admin("split web blue=90 green=10")["ok"] is True
    assert state_file.exists()
    saved = state_file.read_bytes()
    before = svc(d)
    filler = fill(tiny_tmpfs)
    for command in ("cutover web green", "pool web green offline",
                    f"backend web blue {blue.address} weight=3", "rollback web"):
        reply = d.admin(command)
        assert reply["ok"] is False and reply["code"] == "save_failed", (command, reply)
        assert reply["error"], reply
    r = d.ctl("cutover", "web", "green")
    assert r.returncode == 1 and r.stderr.endswith("(save_failed)\n"), r.stderr
    after = svc(d)
    for key in ("split", "effective_split", "generation", "revision", "pools"):
        if key == "pools":
            strip = lambda p: {c: (v["state"], [(b["address"], b["weight"], b["admin_state"])
                                               for b in v["backends"]]) for c, v in p.items()}  # noqa: E731
            assert strip(after[key]) == strip(before[key])
        else:
            assert after[key] == before[key], key
    assert state_file.read_bytes() == saved
    # traffic still follows the old split
    counts = names(d, 20)
    assert counts == {"blue-1": 18, "green-1": 2}, counts
    # automatic changes are published even when their save fails: a health flip still
    # moves revision (not generation) while the disk is full
    green.kill()
    wait_until(lambda: svc(d)["pools"]["green"]["backends"][0]["health"] == "down", 5,
               message="green-1 marked down while the state disk is full")
    flipped = svc(d)
    assert flipped["revision"] > before["revision"] and flipped["generation"] == before["generation"]
    # space again: a change goes through (force: green is down now)
    filler.unlink()
    reply = d.admin("split web blue=50 green=50 force")
    assert reply["ok"] is True and reply["generation"] == before["generation"] + 1, reply
    assert json.loads(state_file.read_text())


# --- the state store: overrides only, one record per changed service ---------------------

def two_services(backends, switchyard, start=True):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    options = {"health": FAST_HEALTH}
    d = switchyard([service("web", free_address(), blue=[blue], green=[green], **options),
                    service("api", free_address(), blue=[blue], green=[green], **options)],
                   workers=1, start=start)
    if start:
        wait_checked(d)
    return d


def test_a_change_writes_one_small_record_and_untouched_services_cost_nothing(backends, switchyard):
    d = two_services(backends, switchyard)
    assert d.saved_record("web") is None and d.saved_record("api") is None
    assert d.admin("cutover web green")["ok"] is True
    record = d.saved_record("web")
    assert record["format"] == "switchyard-state" and record["version"] == 2 and record["service"] == "web"
    assert record["split"] == {"blue": 0, "green": 100}
    assert record["config"]["split"] == {"blue": 100, "green": 0}
    assert d.saved_record("api") is None, "a service nobody changed has no record"
    size = (Path(d.state_records) / "web.json").stat().st_size
    assert size < 1024, size
    manifest = json.loads(Path(d.state_file).read_text())
    assert manifest["format"] == "switchyard-state" and manifest["version"] == 2
    # Back to the config's values: the record keeps only the generation (never back at 1).
    assert d.admin("reset web")["ok"] is True
    record = d.saved_record("web")
    assert record["split"] == record["config"]["split"] == {"blue": 100, "green": 0}
    assert record["generation"] == svc(d)["generation"] == 3


def test_an_acknowledged_change_survives_kill_9_right_after_the_answer(backends, switchyard):
    d = two_services(backends, switchyard)
    assert d.admin("split api blue=30 green=70")["ok"] is True
    d.kill()
    d.start()
    s = svc(d, "api")
    assert s["split"] == {"blue": 30, "green": 70}
    assert s["generation"] == 2
    assert svc(d, "web")["split"] == {"blue": 100, "green": 0}


def test_a_first_format_state_file_is_migrated_once_and_kept_beside(backends, switchyard):
    d = two_services(backends, switchyard, start=False)
    blue_address = d.services[0]["pools"]["blue"][0]["address"]
    legacy = {"format": "switchyard-state", "version": 1, "saved_unix_ms": 1, "services": {"web": {
        "generation": 6, "split": {"blue": 0, "green": 100}, "config": {"split": {"blue": 100, "green": 0}},
        "rollback_split": {"blue": 100, "green": 0}, "fallback": None, "rollout": None,
        "pools": {"blue": {"offline": False, "removed": [], "backends": [
                      {"address": blue_address, "weight": 40, "config_weight": 100, "admin_state": "enabled",
                       "added": False, "removing": False}]},
                  "green": {"offline": False, "removed": [], "backends": []}}}}}
    text = json.dumps(legacy, indent=2)
    Path(d.state_file).write_text(text)
    d.start()
    s = svc(d)
    assert s["split"] == {"blue": 0, "green": 100}
    assert s["generation"] == 6
    assert s["pools"]["blue"]["backends"][0]["weight"] == 40
    assert Path(d.state_file + ".v1").read_text() == text
    assert json.loads(Path(d.state_file).read_text())["version"] == 2
    assert "migrated the first-format state file" in d.log()
    d.stop()
    d.start()
    assert svc(d)["split"] == {"blue": 0, "green": 100}
    assert svc(d)["generation"] == 6


@pytest.mark.parametrize("kind", ["fifo", "directory", "oversized"])
def test_a_state_file_that_cannot_be_read_safely_stops_the_start_and_is_left_untouched(backends, switchyard,
                                                                                        kind):
    d, blue, green = web(backends, switchyard, start=False)
    path = Path(d.state_file)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        with open(path, "wb") as f:
            f.truncate(64 * 1024 * 1024 + 1)
    proc = subprocess.run([switchyard_bin(), "-c", str(d.config_path)], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 1, proc.stderr
    why = {"fifo": "is not a regular file", "directory": "is not a regular file",
           "oversized": "more than a state file may hold (64 MiB)"}[kind]
    assert str(path) in proc.stderr and why in proc.stderr, proc.stderr
    assert not glob.glob(d.state_file + ".bad-*")
    if kind == "oversized":
        assert path.stat().st_size == 64 * 1024 * 1024 + 1
    else:
        assert path.exists()


def test_a_damaged_record_is_set_aside_and_its_service_goes_on_above_its_generation(backends, switchyard):
    d = two_services(backends, switchyard)
    for _ in range(3):
        assert d.admin("cutover web green")["ok"] is True
        assert d.admin("cutover web blue")["ok"] is True
    assert d.admin("cutover api green")["ok"] is True
    generation = svc(d)["generation"]
    d.stop()
    record = Path(d.state_records) / "web.json"
    record.write_text(record.read_text().replace('"split"', '"spl!t"', 1))
    d.start()
    s = svc(d)
    assert s["split"] == {"blue": 100, "green": 0}
    assert s["generation"] == generation + 1
    assert svc(d, "api")["split"] == {"blue": 0, "green": 100}
    (aside,) = glob.glob(str(record) + ".bad-*")
    assert aside in d.log()


def test_a_second_daemon_on_the_same_state_file_refuses_to_start(backends, switchyard):
    d, blue, green = web(backends, switchyard)
    second = switchyard([service("api", free_address(), blue=[blue.address])], start=False,
                        extra={"state_file": d.state_file})
    out = run_switchyard("-c", str(second.config_path))
    assert out.returncode == 1
    assert (f"cannot start: state: {d.state_file} is in use by another switchyard (it holds {d.state_file}.lock); "
            "two daemons must not share a state file: give each its own state_file") in out.stderr
    # The running daemon is the one writer still.
    assert d.admin("split web blue=20 green=80")["ok"] is True
    assert d.saved_record("web")["split"] == {"blue": 20, "green": 80}
    # Its lock goes with it: then the other one starts.
    d.stop()
    second.start()
    assert second.admin("status")["ok"] is True
