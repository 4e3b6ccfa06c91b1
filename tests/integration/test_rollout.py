"""Progressive rollouts (issue 8): gated steps with real backends and real traffic, automatic
rollback on errors, latency, fallbacks; suspension when the baseline fails; refusals during a
rollout; durability across restarts; `switchyardctl rollout --wait` exit codes.
Holds are short (0.3-1 s) and min_connections small so the suite stays fast."""

import json
import signal
import socket
import struct
import subprocess
import threading
import time

from backends import Backend, NameBackend
from clients import http_get
from daemon import service, switchyardctl_bin
from netutil import free_address
from test_health import HttpHealthBackend, all_checked, status
from waiters import wait_until

HTTP_HEALTH = {"type": "http", "interval": "100ms", "timeout": "100ms", "rise": 1, "fall": 2,
               "http": {"path": "/healthz", "expect_status": 200}}


class ResettingBackend(NameBackend):
    """Answers like NameBackend, but resets every `every`-th connection before its first byte."""

    def __init__(self, name, every=5, **kw):
        self.every = every
        self.seen = 0
        self.resets = 0
        super().__init__(name, **kw)

    def handle(self, conn):
        with self._lock:
            self.seen += 1
            reset = self.seen % self.every == 0
            if reset:
                self.resets += 1
        if reset:
            conn.recv(4096)   # the request is in: the close is "before the first byte", not a refusal
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        super().handle(conn)


class SlowBackend(NameBackend):
    """Answers like NameBackend, `delay` seconds after the request arrived."""

    def __init__(self, name, delay=0.3, **kw):
        self.delay = delay
        super().__init__(name, **kw)

    def handle(self, conn):
        time.sleep(self.delay)
        super().handle(conn)


class Load:
    """Clients in threads, one GET after another; counts answers by name and client errors."""

    def __init__(self, address, clients=2):
        self.address = address
        self.answers = {}
        self.errors = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                answer = http_get(self.address, timeout=5)
                with self.lock:
                    self.answers[answer] = self.answers.get(answer, 0) + 1
            except Exception:  # a client-visible failure
                with self.lock:
                    self.errors += 1

    @property
    def total(self):
        with self.lock:
            return sum(self.answers.values()) + self.errors

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(10)


def rollout_of(d, name="web"):
    reply = d.admin(f"rollout-status {name}")
    assert reply["ok"], reply
    return reply["rollout"]


def wait_state(d, states, timeout=20, name="web"):
    states = {states} if isinstance(states, str) else set(states)
    wait_until(lambda: (rollout_of(d, name) or {}).get("state") in states, timeout, 0.05,
               f"rollout state in {sorted(states)}")
    return rollout_of(d, name)


def test_a_healthy_green_is_promoted_through_every_step(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    load = Load(d.listen())
    try:
        generation = status(d)["generation"]
        proc = d.ctl("rollout", "web", "to=green", "steps=10,50,100", "hold=400ms", "min_connections=5",
                     "max_error_rate=0.01", "max_ttfb_p99=200ms", "max_error_rate_vs_baseline=3", "--wait",
                     timeout=30)
    finally:
        load.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "web: rollout promoted: all 3 steps passed" in proc.stdout
    r = rollout_of(d)
    assert r["state"] == "promoted"
    assert [s["verdict"] for s in r["history"]] == ["passed", "passed", "passed"]
    for step in r["history"]:
        assert step["target"]["attempts"] >= 5
        assert {g["gate"] for g in step["gates"]} >= {"min_connections", "max_error_rate", "max_ttfb_p99"}
        assert all(g["verdict"] in ("pass", "skipped") for g in step["gates"])
    svc = status(d)
    assert svc["split"] == {"blue": 0, "green": 100}
    # Rollout steps are operator intent: the start, two advances and the promotion each move generation.
    assert svc["generation"] == generation + 4
    assert {http_get(d.listen()) for _ in range(5)} == {"green"}
    assert load.errors == 0
    # `rollback` undoes the whole rollout as one event.
    assert d.admin("rollback web")["split"] == {"blue": 100, "green": 0}


def test_a_green_resetting_a_fifth_of_connections_is_rolled_back_at_the_first_step(backends, switchyard):
    blue, green = backends.name("blue"), ResettingBackend("green", every=5)
    backends.started.append(green)
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    load = Load(d.listen(), clients=2)
    try:
        proc = d.ctl("rollout", "web", "to=green", "steps=10,50,100", "hold=1s", "min_connections=20",
                     "max_error_rate=0.05", "--wait", timeout=30)
        total = load.total
    finally:
        load.stop()
    assert proc.returncode == 4, proc.stdout + proc.stderr
    r = rollout_of(d)
    assert r["state"] == "rolled_back"
    first = r["history"][0]
    assert first["verdict"] == "failed"
    assert [s["verdict"] for s in r["history"][1:]] == ["skipped", "skipped"]
    assert first["target"]["errors"] > 0
    gate = next(g for g in first["gates"] if g["gate"] == "max_error_rate")
    assert gate["verdict"] == "fail" and gate["observed"] > 0.05, first
    svc = status(d)
    assert svc["split"] == {"blue": 100, "green": 0}
    assert svc["effective_split"] == {"blue": 100, "green": 0}
    # Only the first step's share ever reached green: about 10% of clients, a fifth of them hurt.
    assert load.errors <= 0.10 * total * 0.2 * 2 + 5, (load.errors, total)
    assert green.seen <= 0.10 * total * 2 + 30, (green.seen, total)
    assert "max_error_rate" in r["reason"]


def test_a_green_adding_300ms_before_its_first_byte_is_rolled_back_by_max_ttfb_p99(backends, switchyard):
    blue, green = backends.name("blue"), SlowBackend("green", delay=0.3)
    backends.started.append(green)
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    load = Load(d.listen(), clients=4)
    try:
        reply = d.admin("rollout web to=green steps=25,100 hold=1s min_connections=5 max_ttfb_p99=200ms")
        assert reply["ok"], reply
        r = wait_state(d, "rolled_back", timeout=20)
    finally:
        load.stop()
    first = r["history"][0]
    gate = next(g for g in first["gates"] if g["gate"] == "max_ttfb_p99")
    assert gate["verdict"] == "fail"
    assert gate["observed"] >= 280, gate
    assert gate["limit"] == 200
    assert "max_ttfb_p99" in first["reason"]
    assert status(d)["split"] == {"blue": 100, "green": 0}


def test_green_failing_mid_rollout_falls_back_rolls_back_and_restore_auto_does_not_revive_it(switchyard):
    blue, green = HttpHealthBackend("blue"), HttpHealthBackend("green")
    d = switchyard([service("web", free_address(), blue=[blue.address], green=[green.address], health=HTTP_HEALTH,
                            fallback={"min_healthy": 1, "restore": "auto", "hold": "300ms"})])
    try:
        wait_until(lambda: all_checked(d), 5, message="every backend checked once")
        reply = d.admin("rollout web to=green steps=50,100 hold=60s min_connections=1")
        assert reply["ok"], reply
        generation = reply["generation"]
        green.healthy = False
        r = wait_state(d, "rolled_back", timeout=10)
        assert "fallback away from the target pool green" in r["history"][0]["reason"]
        svc = status(d)
        assert svc["split"] == {"blue": 100, "green": 0}
        assert svc["effective_split"]["green"] == 0
        assert svc["generation"] == generation + 1   # the rollback changed intent
        # Green recovers; restore: auto must not bring the rejected target back.
        green.healthy = True
        wait_until(lambda: not status(d)["fallback"]["active"], 5, 0.05, "the fallback to lift")
        time.sleep(0.6)   # past hold
        svc = status(d)
        assert svc["split"] == {"blue": 100, "green": 0}
        assert svc["effective_split"] == {"blue": 100, "green": 0}
        assert {http_get(d.listen()) for _ in range(8)} == {"blue"}
    finally:
        blue.stop()
        green.stop()


def test_blue_failing_mid_rollout_suspends_it_until_an_operator_acts(switchyard):
    blue, green = HttpHealthBackend("blue"), HttpHealthBackend("green")
    d = switchyard([service("web", free_address(), blue=[blue.address], green=[green.address], health=HTTP_HEALTH,
                            fallback={"min_healthy": 1, "restore": "manual", "hold": "300ms"})])
    try:
        wait_until(lambda: all_checked(d), 5, message="every backend checked once")
        assert d.admin("rollout web to=green steps=10,100 hold=500ms min_connections=0")["ok"]
        blue.healthy = False
        r = wait_state(d, "suspended", timeout=10)
        assert r["step"] == 1 and r["percent"] == 10
        assert "fallback away from the baseline pool blue" in r["reason"]
        time.sleep(1.0)   # twice the hold: suspended gates take no step
        r = rollout_of(d)
        assert r["state"] == "suspended" and r["step"] == 1
        assert status(d)["split"] == {"blue": 90, "green": 10}
        # An operator acts: promote.
        reply = d.admin("promote web")
        assert reply["ok"], reply
        assert reply["rollout"]["state"] == "promoted"
        assert reply["split"] == {"blue": 0, "green": 100}
    finally:
        blue.stop()
        green.stop()


def test_split_cutover_and_rollback_are_refused_during_a_rollout_unless_forced(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    assert d.admin("rollout web to=green steps=5,100 hold=60s")["ok"]
    for command in ("split web blue=50 green=50", "cutover web green", "rollback web", "reset web",
                    "rollout web to=green steps=50 hold=1s"):
        reply = d.admin(command)
        assert reply["ok"] is False and reply["code"] == "rollout_active", (command, reply)
    assert status(d)["split"] == {"blue": 95, "green": 5}
    proc = d.ctl("split", "web", "blue=50", "green=50")
    assert proc.returncode == 1 and "rollout_active" in proc.stderr
    reply = d.admin("split web blue=50 green=50 force")
    assert reply["ok"], reply
    assert reply["split"] == {"blue": 50, "green": 50}
    r = rollout_of(d)
    assert r["state"] == "aborted"
    assert r["reason"].startswith("aborted by a forced split")
    # With the rollout over, rollback returns to the split before the forced one (the start).
    assert d.admin("rollback web")["split"] == {"blue": 100, "green": 0}


def test_pause_freezes_the_step_and_resume_continues_it(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    assert d.admin("rollout web to=green steps=10,100 hold=600ms min_connections=0")["ok"]
    paused = d.admin("rollout-pause web")
    assert paused["ok"] and paused["rollout"]["state"] == "paused"
    assert d.admin("rollout-pause web")["code"] == "refused"
    time.sleep(1.0)
    r = rollout_of(d)
    assert r["state"] == "paused" and r["step"] == 1
    assert r["window"]["clock"] == "frozen"
    assert d.admin("rollout-resume web")["ok"]
    r = wait_state(d, "promoted", timeout=10)
    assert status(d)["split"] == {"blue": 0, "green": 100}
    assert d.admin("rollout-abort web")["code"] == "no_rollout"


def test_a_canary_waits_for_promote(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    assert d.admin("rollout web to=green steps=5 hold=300ms min_connections=0")["ok"]
    wait_state(d, "awaiting_promote", timeout=10)
    time.sleep(0.5)
    assert status(d)["split"] == {"blue": 95, "green": 5}
    reply = d.admin("promote web")
    assert reply["ok"] and reply["split"] == {"blue": 0, "green": 100}


def test_a_restart_restarts_the_step_window_and_the_third_restart_rolls_back(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    assert d.admin("rollout web to=green steps=10,50,100 hold=60s min_connections=0")["ok"]
    for restart in (1, 2):
        d.stop()
        d.start()
        r = rollout_of(d)
        assert r["state"] == "running" and r["step"] == 1, r
        assert r["history"][0]["restarts"] == restart
        assert r["window"]["elapsed_ms"] < 5000
        assert status(d)["split"] == {"blue": 90, "green": 10}
    d.stop()
    d.start()
    r = rollout_of(d)
    assert r["state"] == "rolled_back"
    assert r["history"][0]["reason"] == "the daemon restarted 3 times within this step"
    assert status(d)["split"] == {"blue": 100, "green": 0}
    assert d.saved_record("web")["rollout"]["state"] == "rolled_back"


def test_wait_exits_4_when_someone_aborts_and_ctrl_c_only_stops_waiting(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    cmd = [switchyardctl_bin(), "-s", d.socket_path, "--json", "rollout", "web", "to=green", "steps=10,100",
           "hold=60s", "--wait"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (rollout_of(d) or {}).get("state") == "running", 5, 0.05, "the rollout to start")
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    # Interrupt only once the waiter is really waiting: it has printed a progress line.
    wait_until(lambda: any('"progress"' in line for line in list(lines)), 5, 0.02, "a progress line from --wait")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=5)
    reader.join(5)
    err = proc.stderr.read()
    out = "".join(lines)
    assert proc.returncode == 130, out + err
    assert "the rollout goes on" in err
    assert rollout_of(d)["state"] == "running"
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["ok"] is True   # the reply line
    assert any(e.get("event") == "progress" for e in events[1:])

    # A second waiter (on a fresh rollout) sees an abort from elsewhere: exit 4.
    assert d.admin("rollout-abort web")["ok"]
    waiter = subprocess.Popen([switchyardctl_bin(), "-s", d.socket_path, "rollout", "web", "to=green",
                               "steps=10,100", "hold=60s", "--wait"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (rollout_of(d) or {}).get("state") == "running", 5, 0.05, "the second rollout")
    assert d.admin("rollout-abort web")["ok"]
    out, err = waiter.communicate(timeout=10)
    assert waiter.returncode == 4, out + err
    assert "web: rollout aborted: aborted by the operator" in out
    assert status(d)["split"] == {"blue": 100, "green": 0}


def test_rollout_onto_an_empty_pool_is_refused_unless_forced(backends, switchyard):
    blue = backends.name("blue")
    d = switchyard([service("web", free_address(), blue=[blue])])
    reply = d.admin("rollout web to=green steps=10,100 hold=1s")
    assert reply["ok"] is False and reply["code"] == "refused"
    assert "empty" in reply["error"]
    assert d.admin("rollout-status web")["rollout"] is None


def test_rollout_status_wait_attaches_to_a_running_rollout(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    r = d.ctl("rollout-status", "web", "--wait")
    assert r.returncode == 1 and r.stderr == "switchyardctl: web has no rollout to wait for\n", r.stderr
    assert d.admin("rollout web to=green steps=50,100 hold=500ms min_connections=0")["ok"] is True
    proc = d.ctl("rollout-status", "web", "--wait", timeout=20)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "web: rollout promoted: all 2 steps passed" in proc.stdout, proc.stdout
    assert status(d)["split"] == {"blue": 0, "green": 100}
    # A rollout that has ended: no waiting, the exit says how it ended.
    again = d.ctl("rollout-status", "web", "--wait", timeout=5)
    assert again.returncode == 0 and "promoted" in again.stdout, again.stdout + again.stderr


def test_rollout_status_wait_exits_4_when_the_rollout_it_attached_to_is_aborted(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    assert d.admin("rollout web to=green steps=50,100 hold=60s min_connections=0")["ok"] is True
    proc = subprocess.Popen([switchyardctl_bin(), "-s", d.socket_path, "rollout-status", "web", "--wait"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        # The waiter has attached once it printed the rollout and its first progress line.
        wait_until(lambda: any(l.startswith("web: step 1/2") for l in lines), 10, message="the waiter attached")
        assert proc.poll() is None
        assert d.admin("rollout-abort web")["ok"] is True
        proc.wait(timeout=10)
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert proc.returncode == 4, out + proc.stderr.read()
    assert "web: rollout aborted" in out, out


def test_rollout_history_keeps_each_rollout_with_its_outcome_and_reason(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])])
    assert d.admin("rollout-history web") == {"ok": True, "service": "web", "rollouts": []}
    assert d.admin("rollout-history nope")["code"] == "no_such_service"

    first = d.admin("rollout web to=green steps=50,100 hold=60s min_connections=0")
    assert first["ok"] is True
    running = d.admin("rollout-history web")["rollouts"]
    assert [(r["id"], r["outcome"]) for r in running] == [(first["rollout"]["id"], "running")]
    assert d.admin("rollout-abort web")["ok"] is True
    # A forced start replaces a running rollout in one change.
    second = d.admin("rollout web to=green steps=50,100 hold=60s min_connections=0")
    assert d.admin("rollout web to=green steps=10,100 hold=60s min_connections=0 force")["ok"] is True
    third_id = rollout_of(d)["id"]
    assert d.admin("rollout-abort web")["ok"] is True

    history = d.admin("rollout-history web")["rollouts"]
    assert [(r["id"], r["outcome"]) for r in history] == [
        (third_id, "aborted"), (second["rollout"]["id"], "replaced"), (first["rollout"]["id"], "aborted")]
    assert history[0]["reason"] == "aborted by the operator at step 1/2 (10% green)"
    assert history[0]["plan"] == [10, 100] and history[0]["to"] == "green"
    assert history[2]["steps"][0]["percent"] == 50
    assert all(r["ended_unix_ms"] >= r["started_unix_ms"] > 0 for r in history)

    out = d.ctl("rollout-history", "web")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "web: 3 rollout(s), newest first"
    assert lines[1].startswith(f"  rollout {third_id}  aborted  to green steps=10,100  reached step 1/2 (10%)  ended ")
    assert "      aborted by the operator at step 1/2 (10% green)" in lines
