"""Admin protocol over the real socket: every command's success reply, every error code,
framing, and hostile input (docs/admin-protocol.md)."""

import os
import signal
import socket
import stat
import threading

import pytest

from admin_raw import admin_connect, admin_exchange, peer_closed, read_lines, wait_checked
from clients import http_get
from daemon import service
from netutil import free_address
from waiters import wait_until

FAST_HEALTH = {"type": "tcp", "interval": "200ms", "timeout": "200ms", "rise": 1, "fall": 1}
CHANGE_KEYS = {"ok", "service", "generation", "revision", "split", "effective_split"}


def start_web(backends, switchyard, *, green=True, **extra):
    blue1, blue2 = backends.name("blue-1"), backends.name("blue-2")
    greens = [backends.name("green-1")] if green else []
    options = {"health": FAST_HEALTH, "drain_timeout": "1s", "drain_spread": "100ms"}
    options.update(extra)
    d = switchyard([service("web", free_address(), blue=[blue1, blue2], green=greens, **options)],
                   workers=1)
    wait_checked(d)
    return d, blue1, blue2, greens


def svc(d, name="web"):
    reply = d.admin(f"status {name}")
    assert reply["ok"] is True, reply
    assert len(reply["services"]) == 1
    return reply["services"][0]


def backend_status(d, colour, address, name="web"):
    for b in svc(d, name)["pools"][colour]["backends"]:
        if b["address"] == address:
            return b
    return None


def assert_change(reply, before, *, split, effective=None):
    assert reply["ok"] is True, reply
    assert CHANGE_KEYS <= set(reply), reply
    assert reply["service"] == "web"
    assert reply["generation"] == before["generation"] + 1, (before["generation"], reply)
    assert reply["revision"] == before["revision"] + 1, (before["revision"], reply)
    assert reply["split"] == split
    assert reply["effective_split"] == (effective or split)


def assert_error(reply, code, message=None):
    assert reply["ok"] is False, reply
    assert reply["code"] == code, reply
    assert isinstance(reply["error"], str) and reply["error"], reply
    if message is not None:
        assert reply["error"] == message, reply


# --- read-only commands -------------------------------------------------------------

def test_status_reply_has_every_field_of_the_contract(backends, switchyard):
    d, blue1, blue2, (green1,) = start_web(backends, switchyard)
    reply = d.admin("status")
    assert reply["ok"] is True
    assert isinstance(reply["version"], str) and reply["version"]
    assert isinstance(reply["engine"], str) and reply["engine"]
    (s,) = reply["services"]
    assert s["name"] == "web"
    assert s["listen"] == d.listen()
    assert s["balance"] == "roundrobin" and s["affinity"] == "none"
    assert s["split"] == {"blue": 100, "green": 0}
    assert s["effective_split"] == {"blue": 100, "green": 0}
    assert isinstance(s["generation"], int) and isinstance(s["revision"], int)
    assert s["fallback"]["active"] is False and s["fallback"]["reason"] is None
    assert s["fallback"]["since"] is None
    assert s["rollout"] is None
    assert set(s["pools"]) == {"blue", "green"}
    blue = s["pools"]["blue"]
    assert blue["state"] == "online" and blue["weight"] == 100 and blue["effective_weight"] == 100
    assert [b["address"] for b in blue["backends"]] == [blue1.address, blue2.address]
    for b in blue["backends"] + s["pools"]["green"]["backends"]:
        assert b["weight"] == 100
        assert b["admin_state"] == "enabled"
        assert b["health"] in ("up", "down")
        assert "last_failure" in b
        assert isinstance(b["active"], int) and isinstance(b["draining_connections"], int)
        assert "drain_deadline_ms" in b
    assert s["pools"]["green"]["backends"][0]["address"] == green1.address
    # status SERVICE: same shape, one entry
    one = d.admin("status web")
    assert one["ok"] is True and [x["name"] for x in one["services"]] == ["web"]


def test_help_lists_every_command(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    reply = d.admin("help")
    assert reply["ok"] is True
    text = "\n".join(reply["commands"])
    for word in ("status", "split", "cutover", "rollback", "backend", "add", "remove", "pool",
                 "reset", "reload", "help"):
        assert any(line.split()[0] == word for line in reply["commands"]), (word, text)


# --- changing commands: success replies -----------------------------------------------

def test_split_reply_moves_generation_and_revision_by_one(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    before = svc(d)
    reply = d.admin("split web blue=90 green=10")
    assert_change(reply, before, split={"blue": 90, "green": 10})
    after = svc(d)
    assert after["split"] == {"blue": 90, "green": 10}
    assert after["generation"] == reply["generation"] and after["revision"] == reply["revision"]
    # green= before blue= is accepted too
    reply2 = d.admin("split web green=20 blue=80")
    assert_change(reply2, after, split={"blue": 80, "green": 20})


def test_cutover_and_rollback_replies(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    before = svc(d)
    reply = d.admin("cutover web green")
    assert_change(reply, before, split={"blue": 0, "green": 100})
    mid = svc(d)
    back = d.admin("rollback web")
    assert_change(back, mid, split={"blue": 100, "green": 0})


def test_backend_weight_drain_disable_enable_replies(backends, switchyard):
    d, blue1, blue2, _ = start_web(backends, switchyard)
    addr = blue1.address
    steps = [(f"backend web blue {addr} weight=7", "enabled", 7),
             (f"backend web blue {addr} drain", "drain", 7),
             (f"backend web blue {addr} disable", "disabled", 7),
             (f"backend web blue {addr} enable", "enabled", 7)]
    for command, admin_state, weight in steps:
        before = svc(d)
        reply = d.admin(command)
        assert_change(reply, before, split={"blue": 100, "green": 0})
        b = backend_status(d, "blue", addr)
        assert b["admin_state"] == admin_state, (command, b)
        assert b["weight"] == weight, (command, b)
    # the action may stand anywhere among the options
    before = svc(d)
    reply = d.admin(f"backend web blue {addr} if-generation={before['generation']} weight=9")
    assert_change(reply, before, split={"blue": 100, "green": 0})
    assert backend_status(d, "blue", addr)["weight"] == 9


def test_add_and_remove_replies(backends, switchyard):
    d, blue1, blue2, _ = start_web(backends, switchyard)
    extra = backends.name("green-2")
    before = svc(d)
    reply = d.admin(f"add web green {extra.address} weight=30")
    assert_change(reply, before, split={"blue": 100, "green": 0})
    b = backend_status(d, "green", extra.address)
    assert b is not None and b["weight"] == 30 and b["admin_state"] == "enabled"
    # weight defaults to 100
    extra2 = backends.name("green-3")
    assert d.admin(f"add web green {extra2.address}")["ok"] is True
    assert backend_status(d, "green", extra2.address)["weight"] == 100
    before = svc(d)
    reply = d.admin(f"remove web green {extra.address}")
    assert_change(reply, before, split={"blue": 100, "green": 0})
    # removal drains first, then the backend leaves the pool
    wait_until(lambda: backend_status(d, "green", extra.address) is None, 5,
               message="removed backend to leave the pool")


def test_pool_offline_online_replies(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    before = svc(d)
    reply = d.admin("pool web green offline")
    assert_change(reply, before, split={"blue": 100, "green": 0})
    assert svc(d)["pools"]["green"]["state"] == "offline"
    mid = svc(d)
    reply = d.admin("pool web green online")
    assert_change(reply, mid, split={"blue": 100, "green": 0})
    assert svc(d)["pools"]["green"]["state"] == "online"


def test_reset_reply_restores_config_values(backends, switchyard):
    d, blue1, *_ = start_web(backends, switchyard)
    assert d.admin("split web blue=10 green=90")["ok"] is True
    assert d.admin(f"backend web blue {blue1.address} weight=3")["ok"] is True
    assert d.admin("pool web green offline force")["ok"] is True
    before = svc(d)
    reply = d.admin("reset web")
    assert_change(reply, before, split={"blue": 100, "green": 0})
    after = svc(d)
    assert after["split"] == {"blue": 100, "green": 0}
    assert after["pools"]["green"]["state"] == "online"
    assert backend_status(d, "blue", blue1.address)["weight"] == 100


def test_reload_reply_lists_overrides(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    reply = d.admin("reload")
    assert reply["ok"] is True, reply
    assert reply["overrides_kept"] == [] and reply["overrides_replaced"] == []


# --- error codes ----------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    "status nope", "split nope blue=1 green=1", "cutover nope green", "rollback nope",
    "backend nope blue 127.0.0.1:1 drain", "add nope blue 127.0.0.1:1", "remove nope blue 127.0.0.1:1",
    "pool nope blue offline", "reset nope"])
def test_no_such_service(backends, switchyard, command):
    d, *_ = start_web(backends, switchyard)
    before = svc(d)
    assert_error(d.admin(command), "no_such_service")
    assert svc(d)["generation"] == before["generation"]


def test_no_such_backend_unknown_command_bad_argument_exact_messages(backends, switchyard):
    d, blue1, *_ = start_web(backends, switchyard)
    before = svc(d)
    for command in ("backend web blue 127.0.0.1:1 drain", f"backend web green {blue1.address} weight=5",
                    "remove web green 127.0.0.1:1"):
        assert_error(d.admin(command), "no_such_backend")
    assert_error(d.admin("foo"), "unknown_command", "unknown command 'foo' (try 'help')")
    exact = {
        "cutover web": "cutover: missing COLOUR (usage: cutover SERVICE COLOUR)",
        "cutover web green now": "cutover: unexpected argument 'now' (usage: cutover SERVICE COLOUR)",
        "split web blue=1 green=2 red=5": "split: unknown option 'red=5' (usage: split SERVICE blue=W green=W)",
        "split web blue=2 blue=2 green=1": "split: duplicate option 'blue=2'",
        "status web force": "status: 'force' is accepted by changing commands only",
        "cutover web red": "cutover: 'red' is not a colour (blue|green)",
        "add web blue localhost:80":
            "add: bad address 'localhost:80': 'localhost' is not a numeric IPv4 or [IPv6] address",
        "split web blue=abc green=1": "split: weight 'blue=abc' is not a number 0..1000",
        "backend web blue 127.0.0.1:1 drain disable": "backend: 'disable' conflicts with 'drain' (one action per command)",
        "cutover web green if-generation=x":
            "cutover: 'if-generation=x' is not a generation number (a non-negative integer)",
        # SPEC "Bounds": durations are at most 365 days, weights at most 1000; never an overflow
        # (hold x 4 used to wrap into a negative max_hold_ms).
        "rollout web to=green steps=100 hold=2562047788015h":
            "rollout: 'hold=2562047788015h' is longer than the limit of 365 days (8760h)",
        "rollout web to=green steps=100 hold=1s max_hold=8761h":
            "rollout: 'max_hold=8761h' is longer than the limit of 365 days (8760h)",
        "backend web blue 127.0.0.1:1 weight=1001": "backend: weight 'weight=1001' is not a number 0..1000",
    }
    for command, message in exact.items():
        assert_error(d.admin(command), "bad_argument", message)
    for command in ("split web blue=1001 green=0", "split web blue=10", "backend web blue 127.0.0.1:1",
                    "pool web blue", "pool web blue sideways", "add web blue 127.0.0.1:99999"):
        assert_error(d.admin(command), "bad_argument")
    assert_error(d.admin(""), "bad_argument", "empty command")
    after = svc(d)
    assert (after["generation"], after["revision"]) == (before["generation"], before["revision"])


def test_generation_mismatch_changes_nothing(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    before = svc(d)
    g = before["generation"]
    reply = d.admin(f"split web blue=50 green=50 if-generation={g + 1}")
    assert_error(reply, "generation_mismatch")
    assert svc(d)["split"] == {"blue": 100, "green": 0}
    reply = d.admin(f"split web blue=50 green=50 if-generation={g}")
    assert_change(reply, before, split={"blue": 50, "green": 50})
    # the generation it was read at has moved on: the second writer loses
    assert_error(d.admin(f"cutover web green if-generation={g}"), "generation_mismatch")


def test_already_exists_for_a_backend_in_either_pool(backends, switchyard):
    d, blue1, _, (green1,) = start_web(backends, switchyard)
    before = svc(d)
    assert_error(d.admin(f"add web blue {blue1.address}"), "already_exists")
    assert_error(d.admin(f"add web blue {green1.address}"), "already_exists")
    assert svc(d)["generation"] == before["generation"]


def test_refused_rollback_with_nothing_to_roll_back(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    before = svc(d)
    assert_error(d.admin("rollback web"), "refused")
    assert svc(d)["generation"] == before["generation"]


def test_read_only_commands_refuse_if_generation(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    assert_error(d.admin("status web if-generation=1"), "bad_argument")
    assert_error(d.admin("help force"), "bad_argument")


# --- framing ----------------------------------------------------------------------------

def test_pipelined_commands_get_one_reply_each_in_order_and_crlf_is_accepted(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    replies = admin_exchange(d.socket_path,
                             b"status web\r\nsplit web blue=70 green=30\nfoo\nstatus web\n", replies=4)
    assert replies[0]["ok"] is True and replies[0]["services"][0]["split"] == {"blue": 100, "green": 0}
    assert replies[1]["ok"] is True and replies[1]["split"] == {"blue": 70, "green": 30}
    assert replies[2]["code"] == "unknown_command"
    assert replies[3]["services"][0]["split"] == {"blue": 70, "green": 30}


def test_binary_garbage_is_refused_and_the_daemon_keeps_serving(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    garbage = bytes(range(256)) * 4
    with admin_connect(d.socket_path) as s:
        s.sendall(garbage + b"\n")
        lines, _ = read_lines(s, 1)
    import json
    reply = json.loads(lines[0])   # a reply to binary input is still valid JSON
    assert_error(reply, "bad_argument")
    with admin_connect(d.socket_path) as s:
        s.sendall(b"\x00\xff\xfe" + bytes([0x80]) * 100 + b"\nstatus web\n")
        lines, _ = read_lines(s, 2)
    assert_error(json.loads(lines[0]), "bad_argument")
    assert json.loads(lines[1])["ok"] is True
    assert d.running()
    assert http_get(d.listen()).startswith("blue-")


def test_non_printable_byte_message_names_byte_and_offset(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    (reply,) = admin_exchange(d.socket_path, b"status web\x01\n")
    assert_error(reply, "bad_argument", "command contains a non-printable byte (0x01 at offset 10)")


def test_a_one_megabyte_line_is_refused_and_the_client_disconnected(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    import json
    with admin_connect(d.socket_path, timeout=10) as s:
        got = []

        def reader():
            try:
                lines, _ = read_lines(s, 1, timeout=10)
                got.append(lines)
            except Exception as exc:  # reported below
                got.append(exc)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            s.sendall(b"s" * (1024 * 1024) + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass   # the daemon may close before taking the whole line
        t.join(10)
        assert got and not isinstance(got[0], Exception), got
        reply = json.loads(got[0][0])
        assert_error(reply, "bad_argument")
        assert reply["error"].startswith("command line too long"), reply
        assert peer_closed(s, 5)
    # a line of exactly 4096 bytes is not "too long": it is parsed (an unknown service)
    (reply,) = admin_exchange(d.socket_path, b"status " + b"w" * (4096 - 7) + b"\n")
    assert_error(reply, "no_such_service")
    # one byte more is
    (reply,) = admin_exchange(d.socket_path, b"status " + b"w" * (4096 - 6) + b"\n")
    assert_error(reply, "bad_argument")
    assert reply["error"].startswith("command line too long"), reply
    assert d.admin("status web")["ok"] is True
    assert http_get(d.listen()).startswith("blue-")


def test_silent_clients_do_not_block_other_admin_clients_or_traffic(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    silent = [admin_connect(d.socket_path) for _ in range(100)]
    half = admin_connect(d.socket_path)
    half.sendall(b"status we")   # a partial line, never finished
    try:
        for i in range(5):
            reply = d.admin("status web", timeout=3)
            assert reply["ok"] is True, (i, reply)
        assert d.admin("split web blue=60 green=40")["ok"] is True
        assert http_get(d.listen()) in ("blue-1", "blue-2", "green-1")
    finally:
        for s in silent + [half]:
            s.close()


def test_one_hundred_concurrent_admin_clients_are_all_answered(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    import json
    conns = [admin_connect(d.socket_path, timeout=10) for _ in range(100)]
    replies = [None] * len(conns)
    try:
        barrier = threading.Barrier(len(conns))

        def one(i):
            barrier.wait(10)
            try:
                conns[i].sendall(b"status web\n")
                lines, _ = read_lines(conns[i], 1, timeout=10)
                replies[i] = json.loads(lines[0]) if lines else "closed without a reply"
            except OSError as exc:
                replies[i] = repr(exc)

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(conns))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
    finally:
        for s in conns:
            s.close()
    bad = [(i, r) for i, r in enumerate(replies) if not (isinstance(r, dict) and r.get("ok") is True)]
    assert not bad, f"{len(bad)} of 100 concurrent admin clients not served, e.g. {bad[:2]}"
    assert http_get(d.listen()).startswith("blue-")


# --- the socket file ---------------------------------------------------------------------

def test_admin_socket_mode_is_0660(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    st = os.stat(d.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(stat.S_IMODE(st.st_mode))


def test_socket_parent_directory_is_created_and_not_world_writable(backends, switchyard, tmp_path):
    path = tmp_path / "run" / "switchyard" / "admin.sock"
    d = switchyard([service("web", free_address(), blue=[backends.name("blue-1")])],
                   extra={"admin": {"socket": str(path)}})
    d.socket_path = str(path)
    assert d.admin("status web")["ok"] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert not stat.S_IMODE(os.stat(path.parent).st_mode) & 0o002


def test_stale_socket_of_a_killed_daemon_is_replaced_on_start(backends, switchyard):
    d, *_ = start_web(backends, switchyard)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(5)
    d._close_files()
    assert stat.S_ISSOCK(os.stat(d.socket_path).st_mode), "SIGKILL leaves the socket file behind"
    with socket.socket(socket.AF_UNIX) as s:
        with pytest.raises(ConnectionRefusedError):
            s.connect(d.socket_path)
    d.start()
    assert d.admin("status web")["ok"] is True
    assert stat.S_IMODE(os.stat(d.socket_path).st_mode) == 0o660


def test_a_backend_that_is_the_proxy_itself_is_refused(backends, switchyard):
    """SPEC "Bounds": one of the daemon's own listeners (or its port on a wildcard address) as a
    backend would loop one request until max_connections fills."""
    d, *_ = start_web(backends, switchyard)
    before = svc(d)
    listen = d.listen()
    port = listen.rsplit(":", 1)[1]
    for address in (listen, f"0.0.0.0:{port}"):
        assert_error(d.admin(f"add web blue {address}"), "bad_argument",
                     f"add: backend {address} is this proxy's own listener {listen} (service 'web'): "
                     "a connection would loop through the proxy")
        assert_error(d.admin(f"backend web blue {address} weight=5"), "bad_argument")
    after = svc(d)
    assert (after["generation"], after["revision"]) == (before["generation"], before["revision"])
    assert http_get(listen) in ("blue-1", "blue-2")


def test_a_client_that_never_reads_its_replies_is_closed_after_the_idle_timeout(backends, switchyard):
    """A client pipelining `status` without reading blocks the reply write; the idle timeout
    (60 s) must cover that write too, or the client holds its connection (and a slot) forever."""
    import errno
    import time
    d, *_ = start_web(backends, switchyard)
    s = admin_connect(d.socket_path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:   # until the daemon stops reading: its reply write blocks
        try:
            sent += s.send(b"status\n" * 64)
        except BlockingIOError:
            break
    assert time.monotonic() < deadline, "the daemon kept reading"
    start = time.monotonic()

    def closed():
        try:
            s.send(b"status\n")
        except BlockingIOError:
            return False
        except (BrokenPipeError, ConnectionResetError):
            return True
        return False

    wait_until(closed, 75, interval=0.5, message="the daemon to close a client that does not read")
    waited = time.monotonic() - start
    assert 55 <= waited <= 70, f"closed after {waited:.1f}s"
    assert "a reply went unread for 60s" in d.log()
    assert d.admin("status web")["ok"] is True
    s.close()
