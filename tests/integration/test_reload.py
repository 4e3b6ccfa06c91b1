"""reload and SIGHUP: broken files keep the old config, backends come and go, and the
override rule of docs/semantics.md "State file, restarts and reloads"."""

import copy
import re
import signal
from collections import Counter

from clients import connect, exchange, http_get
from daemon import backend, service
from netutil import free_address
from waiters import wait_until


def svc(d, name="web"):
    reply = d.admin(f"status {name}")
    assert reply["ok"] is True, reply
    return reply["services"][0]


def names(d, n, name=None):
    return Counter(http_get(d.listen(name)) for _ in range(n))


def pool_of(d, colour):
    return [(b["address"], b["weight"], b["admin_state"]) for b in svc(d)["pools"][colour]["backends"]]


def rewrite(d, mutate):
    """Edit the daemon's config (a deep copy) and write it to its file."""
    config = copy.deepcopy(d.config)
    mutate(config)
    d.write_config(config)
    return config


def web_config(d):
    return next(s for s in d.config["services"] if s["name"] == "web")


def test_reload_with_a_broken_file_keeps_the_old_config_and_traffic(backends, switchyard):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])], workers=1)
    assert d.admin("split web blue=50 green=50")["ok"] is True
    before = svc(d)
    good = d.config_path.read_text()
    broken = good + "bogus_key: 1\n"
    bad_line = len(good.splitlines()) + 1
    d.config_path.write_text(broken)
    reply = d.admin("reload")
    assert reply["ok"] is False, reply
    assert isinstance(reply["code"], str) and reply["code"], reply
    assert re.search(rf"{re.escape(str(d.config_path))}:{bad_line}:\d+", reply["error"]), reply
    assert "bogus_key" in reply["error"], reply
    # the ctl sees a refusal too (systemd's ExecReload relies on it)
    r = d.ctl("reload")
    assert r.returncode == 1 and str(d.config_path) in r.stderr, r.stderr
    after = svc(d)
    assert after["split"] == before["split"] and after["generation"] == before["generation"]
    counts = names(d, 10)
    assert counts == {"blue-1": 5, "green-1": 5}, counts
    # a YAML syntax error is no different
    d.config_path.write_text(good.replace("services:", "services: [", 1))
    reply = d.admin("reload")
    assert reply["ok"] is False and str(d.config_path) in reply["error"], reply
    assert http_get(d.listen()) in ("blue-1", "green-1")
    # fixed: reload works again and kept the runtime split
    d.config_path.write_text(good)
    reply = d.admin("reload")
    assert reply["ok"] is True, reply
    assert svc(d)["split"] == {"blue": 50, "green": 50}


def test_reload_adds_one_backend_and_removes_another_keeping_open_connections(backends, switchyard):
    b1, b3 = backends.name("blue-1"), backends.name("blue-3")
    echo = backends.echo()
    d = switchyard([service("web", free_address(), blue=[b1, echo], drain_timeout="5s",
                            drain_spread="100ms")], workers=1)
    held = None
    for _ in range(4):
        s = connect(d.listen())
        s.sendall(b"ping")
        s.settimeout(5)
        data = s.recv(100)
        if data == b"ping":
            held = s
            break
        s.close()
    assert held is not None, "no connection reached the echo backend"
    try:
        def edit(config):
            config["services"][0]["pools"]["blue"] = [backend(b1.address), backend(b3.address)]
        rewrite(d, edit)
        reply = d.admin("reload")
        assert reply["ok"] is True, reply
        addresses = [a for a, _, _ in pool_of(d, "blue")]
        assert b3.address in addresses and b1.address in addresses
        assert names(d, 6) == {"blue-1": 3, "blue-3": 3}
        assert exchange(held, b"still open") == b"still open"
    finally:
        held.close()
    wait_until(lambda: [a for a, _, _ in pool_of(d, "blue")] == [b1.address, b3.address], 8,
               message="removed backend to leave the pool")


def test_override_rule_changed_config_field_wins_other_overrides_kept(backends, switchyard):
    b1, b2 = backends.name("blue-1"), backends.name("blue-2")
    green = backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[b1, b2], green=[green])], workers=1)
    assert d.admin("split web blue=50 green=50")["ok"] is True
    assert d.admin(f"backend web blue {b1.address} weight=7")["ok"] is True

    # 1. the config's split changes; b1's weight in the config does not
    def new_split(config):
        config["services"][0]["split"] = {"blue": 80, "green": 20}
    d.config = rewrite(d, new_split)
    reply = d.admin("reload")
    assert reply["ok"] is True, reply
    s = svc(d)
    assert s["split"] == {"blue": 80, "green": 20}
    assert (b1.address, 7, "enabled") in pool_of(d, "blue")
    kept, replaced = " ".join(reply["overrides_kept"]), " ".join(reply["overrides_replaced"])
    assert b1.address in kept and "split" not in kept, reply
    assert "split" in replaced and b1.address not in replaced, reply

    # 2. an unchanged config keeps every override, and says so
    assert d.admin("split web blue=40 green=60")["ok"] is True
    reply = d.admin("reload")
    assert reply["ok"] is True and reply["overrides_replaced"] == [], reply
    kept = " ".join(reply["overrides_kept"])
    assert "split" in kept and b1.address in kept, reply
    assert svc(d)["split"] == {"blue": 40, "green": 60}

    # 3. b1's config weight changes; the split in the config does not
    def new_weight(config):
        config["services"][0]["pools"]["blue"][0]["weight"] = 50
    d.config = rewrite(d, new_weight)
    reply = d.admin("reload")
    assert reply["ok"] is True, reply
    assert svc(d)["split"] == {"blue": 40, "green": 60}
    assert (b1.address, 50, "enabled") in pool_of(d, "blue")
    kept, replaced = " ".join(reply["overrides_kept"]), " ".join(reply["overrides_replaced"])
    assert "split" in kept and b1.address not in kept, reply
    assert b1.address in replaced and "split" not in replaced, reply


def test_override_rule_applies_to_a_restart_after_the_file_was_edited(backends, switchyard):
    b1, green = backends.name("blue-1"), backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[b1], green=[green])], workers=1)
    assert d.admin("cutover web green")["ok"] is True
    assert d.admin("pool web blue offline")["ok"] is True
    d.stop()

    def edit(config):
        config["services"][0]["split"] = {"blue": 30, "green": 70}
    d.config = rewrite(d, edit)
    d.start()
    s = svc(d)
    assert s["split"] == {"blue": 30, "green": 70}
    assert s["pools"]["blue"]["state"] == "offline"
    assert names(d, 5) == {"green-1": 5}


def test_sighup_reloads(backends, switchyard):
    b1, b2 = backends.name("blue-1"), backends.name("blue-2")
    d = switchyard([service("web", free_address(), blue=[b1])], workers=1)

    def edit(config):
        config["services"][0]["pools"]["blue"].append(backend(b2.address))
    d.config = rewrite(d, edit)
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: len(pool_of(d, "blue")) == 2, 5, message="SIGHUP to load the new backend")
    assert names(d, 4) == {"blue-1": 2, "blue-2": 2}
    # a broken file on SIGHUP: still running, old config kept, the log says why
    good_lines = len(d.config_path.read_text().splitlines())
    d.config_path.write_text(d.config_path.read_text() + "nonsense: [\n")
    d.send_signal(signal.SIGHUP)
    # an unclosed flow sequence is reported where YAML notices it: that line or the next
    where = re.compile(rf"{re.escape(str(d.config_path))}:({good_lines + 1}|{good_lines + 2}):\d+")
    wait_until(lambda: any(where.search(line) and " error " in line for line in d.log().splitlines()),
               5, message="the failed reload to be logged as an error naming file:line:col")
    assert d.running()
    assert names(d, 4) == {"blue-1": 2, "blue-2": 2}


def test_reload_adds_and_removes_services(backends, switchyard):
    b1, o1 = backends.name("blue-1"), backends.name("other-1")
    d = switchyard([service("web", free_address(), blue=[b1]),
                    service("old", free_address(), blue=[backends.name("old-1")])], workers=1)
    new_listen = free_address()

    def edit(config):
        config["services"] = [config["services"][0], service("new", new_listen, blue=[o1])]
    d.config = rewrite(d, edit)
    reply = d.admin("reload")
    assert reply["ok"] is True, reply
    assert reply["services_added"] == ["new"] and reply["services_removed"] == ["old"], reply
    d.services = d.config["services"]
    assert http_get(new_listen) == "other-1"
    assert d.admin("status old")["code"] == "no_such_service"
    assert http_get(d.listen("web")) == "blue-1"


def test_a_changed_config_value_without_an_override_is_not_listed_as_replaced(backends, switchyard):
    b1, green = backends.name("blue-1"), backends.name("green-1")
    d = switchyard([service("web", free_address(), blue=[b1], green=[green])], workers=1)

    def edit(config):
        config["services"][0]["split"] = {"blue": 80, "green": 20}
        config["services"][0]["pools"]["blue"][0]["weight"] = 60
    d.config = rewrite(d, edit)
    reply = d.admin("reload")
    assert reply["ok"] is True, reply
    # nothing was overridden at runtime: nothing was kept, nothing replaced
    assert reply["overrides_kept"] == [] and reply["overrides_replaced"] == [], reply
    s = svc(d)
    assert s["split"] == {"blue": 80, "green": 20}
    assert pool_of(d, "blue") == [(b1.address, 60, "enabled")]


def test_a_reload_keeps_the_drain_deadline_of_a_drained_backend(backends, switchyard):
    # The state replay that a reload shares with a restart assumes nothing is left
    # to drain; a reload must keep the running drain, or its connections never close.
    other, echo = backends.name("other"), backends.echo()
    d = switchyard([service("web", free_address(), blue=[other], drain_timeout="3s", drain_spread="100ms")],
                   workers=1)
    assert d.admin(f"add web blue {echo.address}")["ok"]
    held = None
    for _ in range(20):   # round robin: one of the first few connections reaches the echo backend
        s = connect(d.listen())
        s.sendall(b"ping")
        s.settimeout(5)
        if s.recv(100) == b"ping":
            held = s
            break
        s.close()
    assert held is not None, "no connection reached the added backend"

    def added():
        return next(b for b in svc(d)["pools"]["blue"]["backends"] if b["address"] == echo.address)
    try:
        assert d.admin(f"backend web blue {echo.address} drain")["ok"]
        assert d.admin("reload")["ok"]
        b = added()
        assert b["admin_state"] == "drain"
        assert b["draining_connections"] == 1, b
        assert b["drain_deadline_ms"] is not None and 0 < b["drain_deadline_ms"] <= 3000, b
        # The deadline still closes it.
        wait_until(lambda: added()["draining_connections"] == 0, 8,
                   message="the drained connection closed at its deadline")
    finally:
        held.close()


def test_reload_check_shows_what_a_reload_would_change_and_applies_nothing(backends, switchyard):
    blue, green, extra = backends.name("blue-1"), backends.name("green-1"), backends.name("green-2")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])], workers=1)
    assert d.admin("backend web green %s weight=50" % green.address)["ok"] is True   # an override the reload keeps
    assert d.admin("split web blue=70 green=30")["ok"] is True                      # one it replaces
    before = svc(d)

    def edit(config):
        web = next(s for s in config["services"] if s["name"] == "web")
        web["balance"] = "leastconn"
        web["split"] = {"blue": 0, "green": 100}
        web["pools"]["green"].append(backend(extra))
    rewrite(d, edit)

    reply = d.admin("reload-check")
    assert reply["ok"] is True and reply["applied"] is False, reply
    assert reply["overrides_kept"] == [f"web: green backend {green.address} weight 50"], reply
    assert len(reply["overrides_replaced"]) == 1 and reply["overrides_replaced"][0].startswith("web: split"), reply
    assert [s["name"] for s in reply["services"]] == ["web"]

    for args in (("reload", "--check"), ("diff",), ("reload-check",)):
        r = d.ctl(*args)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "reload-check: a reload would change (nothing applied):", r.stdout
        assert lines[1:4] == ["  web: balance roundrobin → leastconn",
                              "  web: split blue=70 green=30 → blue=0 green=100",
                              f"  web: green {extra.address} added (weight 100, enabled)"], r.stdout
        assert f"  web: green backend {green.address} weight 50" in lines, r.stdout

    # Nothing was applied: same generation, same settings, no reload counted.
    after = svc(d)
    assert after["generation"] == before["generation"] and after["balance"] == "roundrobin"
    assert after["split"] == {"blue": 70, "green": 30}
    assert "reloaded" not in d.log()
    # The real reload then does what the check said.
    assert d.admin("reload")["ok"] is True
    assert svc(d)["balance"] == "leastconn" and svc(d)["split"] == {"blue": 0, "green": 100}
    assert d.ctl("reload", "--check").stdout.splitlines()[0] == \
        "reload-check: a reload would change no setting or override"


def test_reload_check_of_a_broken_file_is_a_refusal_and_check_is_only_for_reload(backends, switchyard):
    d = switchyard([service("web", free_address(), blue=[backends.name("blue-1")])], workers=1)
    d.config_path.write_text(d.config_path.read_text() + "bogus_key: 1\n")
    r = d.ctl("diff")
    assert r.returncode == 1 and r.stderr.rstrip().endswith("(bad_config)") and "bogus_key" in r.stderr, r.stderr
    assert "reload refused" not in d.log()
    r = d.ctl("split", "web", "blue=1", "green=1", "--check")
    assert r.returncode == 2 and "--check is only for reload" in r.stderr


def test_reload_refuses_a_fifo_instead_of_blocking(backends, switchyard):
    """A config path that became a FIFO (or any non-regular file) is refused at once:
    opening it must not wait for a writer while admin and health checks freeze."""
    import os
    d = switchyard([service("web", free_address(), blue=[backends.name("blue-1")])], workers=1)
    good = d.config_path.read_text()
    d.config_path.unlink()
    os.mkfifo(d.config_path)
    reply = d.admin("reload", timeout=3.0)
    assert reply["ok"] is False and f"{d.config_path}: not a regular file" in reply["error"], reply
    assert d.admin("status web", timeout=3.0)["ok"]
    assert http_get(d.listen()) == "blue-1"
    d.config_path.unlink()
    d.config_path.write_text(good)
    assert d.admin("reload")["ok"] is True
