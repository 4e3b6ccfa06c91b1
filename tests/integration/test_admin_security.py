"""Admin access control: allow-lists and the read-only level checked with SO_PEERCRED,
the token-protected TCP listener, and what gets logged (never a token).

Clients of another uid run as a child process that drops privileges (needs root; the
socket is reached through its group, as an operator in the socket's group would)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from admin_raw import admin_connect, peer_closed, read_lines
from daemon import run_switchyard, service, switchyardctl_bin, to_yaml
from netutil import free_address, free_port, split_address
from waiters import wait_until

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching client uids needs root")

# Runs as another uid: sends each command on one connection, prints the replies
# (a reply of null means the daemon closed the connection instead).
CHILD = r"""
import json, socket, sys
path, commands = sys.argv[1], json.loads(sys.argv[2])
out = []
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(path)
f = s.makefile("rb")
for c in commands:
    try:
        s.sendall(c.encode() + b"\n")
        line = f.readline()
    except OSError:
        line = b""
    out.append(json.loads(line) if line else None)
print(json.dumps(out))
"""


def run_as(uid, path, *commands, gid=0, groups=()):
    def drop():
        os.setgroups(list(groups))
        os.setgid(gid)
        os.setuid(uid)
    r = subprocess.run([sys.executable, "-c", CHILD, path, json.dumps(list(commands))],
                       capture_output=True, text=True, timeout=15, preexec_fn=drop)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def shared_dir():
    """A directory group 0 may traverse (pytest's own tmp dirs are 0700)."""
    base = tempfile.mkdtemp(prefix="sy-sec-", dir="/tmp")
    os.chmod(base, 0o750)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def start_with_admin(switchyard, backends, shared_dir, **admin):
    sock = os.path.join(shared_dir, "run", "admin.sock")
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green])], start=False,
                   extra={"admin": {"socket": sock, **admin}})
    d.socket_path = sock
    d.start()
    return d


@needs_root
def test_without_an_allow_list_the_socket_permissions_decide(backends, switchyard, shared_dir):
    d = start_with_admin(switchyard, backends, shared_dir)
    status, split = run_as(NOBODY, d.socket_path, "status web", "split web blue=50 green=50")
    assert status["ok"] and split["ok"], (status, split)
    assert f"uid {NOBODY}" in d.log()   # the change is logged with who made it


@needs_root
def test_a_uid_outside_the_allow_list_is_refused_and_logged(backends, switchyard, shared_dir):
    d = start_with_admin(switchyard, backends, shared_dir, allow={"uids": [12345]})
    before = d.admin("status web")["services"][0]["generation"]
    replies = run_as(NOBODY, d.socket_path, "split web blue=0 green=100", "status")
    assert replies[0]["ok"] is False and replies[0]["code"] == "forbidden", replies
    assert replies[1] is None, "a client with no access is disconnected after the refusal"
    assert d.admin("status web")["services"][0]["generation"] == before
    assert any("refused: forbidden" in ln and f"uid {NOBODY}" in ln and "split web" in ln
               for ln in d.log().splitlines()), d.log_tail()
    # root (and the daemon's own uid) always keep admin access
    assert d.admin("split web blue=50 green=50")["ok"]


@needs_root
def test_read_only_clients_may_look_but_not_change(backends, switchyard, shared_dir):
    d = start_with_admin(switchyard, backends, shared_dir, allow={"uids": []},
                         read_only={"uids": [NOBODY]})
    status, help_, rollout, split, cutover, reload_ = run_as(
        NOBODY, d.socket_path, "status web", "help", "rollout-status web", "split web blue=0 green=100",
        "cutover web green", "reload")
    assert status["ok"] and help_["ok"] and rollout["ok"], (status, help_, rollout)
    for refused in (split, cutover, reload_):
        assert refused["ok"] is False and refused["code"] == "forbidden", refused
        assert "read-only" in refused["error"]
    assert d.admin("status web")["services"][0]["split"] == {"blue": 100, "green": 0}
    refusals = [ln for ln in d.log().splitlines() if "refused: forbidden" in ln]
    assert len(refusals) == 3 and all(f"uid {NOBODY}" in ln and "read-only" in ln for ln in refusals), refusals


@needs_root
def test_groups_and_names_in_the_allow_list(backends, switchyard, shared_dir):
    # a supplementary group counts (SO_PEERGROUPS), and names are resolved at load
    d = start_with_admin(switchyard, backends, shared_dir, allow={"gids": [4242], "uids": ["nobody"]})
    assert run_as(NOBODY, d.socket_path, "split web blue=60 green=40")[0]["ok"]
    assert run_as(12345, d.socket_path, "split web blue=70 green=30", groups=[4242])[0]["ok"]
    refused = run_as(12345, d.socket_path, "status")[0]
    assert refused["code"] == "forbidden"


def test_unknown_user_names_and_bad_lists_are_config_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    base = {"admin": {"socket": str(tmp_path / "a.sock"), "allow": {"uids": ["no-such-user-xyz"]}},
            "state_file": "", "services": [service("web", free_address(), blue=[free_address()])]}
    cfg.write_text(to_yaml(base) + "\n")
    r = run_switchyard("-c", str(cfg), "--check")
    assert r.returncode == 2 and "admin.allow.uids[0]" in r.stderr and "no user named" in r.stderr, r.stderr
    base["admin"]["allow"] = {"uids": 5}
    cfg.write_text(to_yaml(base) + "\n")
    r = run_switchyard("-c", str(cfg), "--check")
    assert r.returncode == 2 and "admin.allow.uids" in r.stderr, r.stderr


@needs_root
def test_a_reload_can_revoke_access(backends, switchyard, shared_dir):
    d = start_with_admin(switchyard, backends, shared_dir)
    assert run_as(NOBODY, d.socket_path, "status")[0]["ok"]
    d.config["admin"]["allow"] = {"uids": []}
    d.write_config()
    assert d.admin("reload")["ok"]
    assert run_as(NOBODY, d.socket_path, "status")[0]["code"] == "forbidden"


# --- TCP admin listener ---------------------------------------------------------------

TOKEN = "3f9c1e0b7a6d4c2e8f1a5b9d0c7e6f4a"


def token_file(directory, content=TOKEN + "\n", mode=0o600):
    path = os.path.join(str(directory), "admin.token")
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, mode)
    return path


def start_tcp(switchyard, backends, tmp_path, host="127.0.0.1"):
    blue = backends.name("blue")
    tcp = f"{host}:{free_port(host if host != '0.0.0.0' else '127.0.0.1')}"
    d = switchyard([service("web", free_address(), blue=[blue], green=[backends.name("green")])], start=False,
                   extra={"admin": {"socket": str(tmp_path / "admin.sock"), "tcp": tcp,
                                    "token_file": token_file(tmp_path)}})
    d.socket_path = str(tmp_path / "admin.sock")
    d.start()
    return d, tcp.replace("0.0.0.0", "127.0.0.1")


def tcp_session(address, *lines):
    host, port, family = split_address(address)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect((host, port))
        s.sendall(b"".join(ln.encode() + b"\n" for ln in lines))
        got, closed = read_lines(s, len(lines))
        return [json.loads(g) for g in got], closed or peer_closed(s, 2)


def test_tcp_admin_needs_the_token_first(backends, switchyard, tmp_path):
    d, address = start_tcp(switchyard, backends, tmp_path)
    replies, closed = tcp_session(address, f"auth {TOKEN}", "status web", "split web blue=50 green=50")
    assert replies[0]["ok"] and replies[0]["authenticated"], replies
    assert replies[1]["ok"] and replies[2]["ok"], replies
    assert not closed

    for first in ("status web", f"auth {TOKEN[:-1]}x", "auth", f"auth {TOKEN}{TOKEN}", f"AUTH {TOKEN}"):
        replies, closed = tcp_session(address, first, "split web blue=0 green=100")
        assert replies[0]["ok"] is False and replies[0]["code"] == "unauthorized", (first, replies)
        assert len(replies) == 1 and closed, "nothing after a failed auth is read"
    assert d.admin("status web")["services"][0]["split"] == {"blue": 50, "green": 50}
    log = d.log()
    assert TOKEN not in log and TOKEN[:-1] not in log, "the token (or a guess at it) must never be logged"
    assert log.count("refused:") >= 5 and "tcp 127.0.0.1:" in log


def test_ctl_over_tcp(backends, switchyard, tmp_path):
    d, address = start_tcp(switchyard, backends, tmp_path)
    (tmp_path / "client").mkdir()
    client_token = token_file(tmp_path / "client", mode=0o600)
    ctl = switchyardctl_bin()
    r = subprocess.run([ctl, "--tcp", address, "--token-file", client_token, "split", "web", "blue=10", "green=90"],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, SWITCHYARD_ADMIN_TCP=address, SWITCHYARD_ADMIN_TOKEN_FILE=client_token)
    r = subprocess.run([ctl, "--json", "status", "web"], capture_output=True, text=True, timeout=15, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["services"][0]["split"] == {"blue": 10, "green": 90}

    (tmp_path / "wrong").mkdir()
    wrong = token_file(tmp_path / "wrong", content="0" * 32)
    r = subprocess.run([ctl, "--tcp", address, "--token-file", wrong, "status"], capture_output=True, text=True,
                       timeout=15)
    assert r.returncode == 1 and "unauthorized" in r.stderr, r.stderr
    assert "0" * 32 not in r.stderr
    r = subprocess.run([ctl, "--tcp", address, "status"], capture_output=True, text=True, timeout=15,
                       env={k: v for k, v in os.environ.items() if k != "SWITCHYARD_ADMIN_TOKEN_FILE"})
    assert r.returncode == 2 and "--token-file" in r.stderr


@pytest.mark.parametrize("case", ["missing", "empty", "group-readable", "world-readable", "short"])
def test_the_daemon_refuses_a_bad_token_file(tmp_path, case):
    path = str(tmp_path / "admin.token")
    if case == "empty":
        token_file(tmp_path, content="\n")
    elif case == "group-readable":
        token_file(tmp_path, mode=0o640)
    elif case == "world-readable":
        token_file(tmp_path, mode=0o604)
    elif case == "short":
        token_file(tmp_path, content="secret\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(to_yaml({
        "admin": {"socket": str(tmp_path / "a.sock"), "tcp": f"127.0.0.1:{free_port()}", "token_file": path},
        "state_file": "", "services": [service("web", free_address(), blue=[free_address()])],
    }) + "\n")
    r = run_switchyard("-c", str(cfg))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert path in r.stderr and "cannot start" in r.stderr
    if case.endswith("readable"):
        assert "chmod 600" in r.stderr
    assert "secret" not in r.stderr and TOKEN not in r.stderr
    # --check finds the same problem before a restart would.
    checked = run_switchyard("-c", str(cfg), "--check")
    assert checked.returncode == 2, (checked.returncode, checked.stderr[-2000:])
    assert f"{cfg}: admin.token_file: token file {path}" in checked.stderr
    assert "configuration is invalid" in checked.stderr
    assert "secret" not in checked.stderr and TOKEN not in checked.stderr


def test_check_accepts_a_good_token_file(tmp_path):
    path = token_file(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(to_yaml({
        "admin": {"socket": str(tmp_path / "a.sock"), "tcp": f"127.0.0.1:{free_port()}", "token_file": path},
        "state_file": "", "services": [service("web", free_address(), blue=[free_address()])],
    }) + "\n")
    r = run_switchyard("-c", str(cfg), "--check")
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stdout + r.stderr


def test_a_non_loopback_tcp_listener_warns_loudly(backends, switchyard, tmp_path):
    d, address = start_tcp(switchyard, backends, tmp_path, host="0.0.0.0")
    assert "SECURITY" in d.log() and "reachable from other hosts" in d.log()
    replies, _ = tcp_session(address, f"auth {TOKEN}", "status")
    assert replies[1]["ok"]


def test_tcp_admin_keeps_the_line_limit(backends, switchyard, tmp_path):
    d, address = start_tcp(switchyard, backends, tmp_path)
    replies, closed = tcp_session(address, "auth " + "x" * 5000)
    assert replies[0]["ok"] is False and closed
    assert "x" * 100 not in d.log()


def test_an_auth_line_is_never_logged(backends, switchyard, tmp_path):
    """`auth TOKEN` on the Unix socket, or sent again after authenticating, is not a
    command there: it is refused, and the log shows `auth <redacted>`, never the token."""
    d, address = start_tcp(switchyard, backends, tmp_path)
    with admin_connect(d.socket_path) as s:
        s.sendall(f"auth {TOKEN}\nAUTH {TOKEN}\nauth{TOKEN}\n".encode())
        lines, _ = read_lines(s, 3)
    assert [json.loads(ln)["code"] for ln in lines] == ["unknown_command"] * 3
    replies, closed = tcp_session(address, f"auth {TOKEN}", f"auth {TOKEN}", "status web")
    assert replies[0]["authenticated"] and replies[1]["code"] == "unknown_command" and replies[2]["ok"], replies
    log = d.log()
    assert TOKEN not in log, "the token must never be logged"
    assert log.count("'auth <redacted>' refused") == 4, d.log_tail()


def test_clients_without_a_token_cannot_evict_operators_or_flood_the_log(backends, switchyard, tmp_path):
    """Unauthenticated TCP clients wait in a small pool of their own and evict only each other;
    the eviction warning is one line per interval, not one per eviction."""
    import threading
    import time
    d, address = start_tcp(switchyard, backends, tmp_path)
    host, port, family = split_address(address)

    def operator():
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((host, port))
        s.sendall(f"auth {TOKEN}\n".encode())
        got, _ = read_lines(s, 1)
        assert json.loads(got[0])["authenticated"], got
        return s

    def ask(s):
        s.sendall(b"status web\n")
        got, closed = read_lines(s, 1)
        return bool(got) and json.loads(got[0])["ok"] and not closed

    sessions = [operator() for _ in range(5)]
    strangers, lock = [], threading.Lock()

    def flood():
        for _ in range(100):   # 400 silent connections: far over both limits
            s = socket.socket(family, socket.SOCK_STREAM)
            s.connect((host, port))
            with lock:
                strangers.append(s)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        # An operator who sends `auth` a little after connecting gets in while the strangers wait.
        late = socket.socket(family, socket.SOCK_STREAM)
        late.settimeout(5)
        late.connect((host, port))
        time.sleep(0.1)   # the operator's own delay, part of the scenario
        late.sendall(f"auth {TOKEN}\nstatus web\n".encode())
        got, _ = read_lines(late, 2)
        assert json.loads(got[1])["ok"], got
        sessions.append(late)
        assert all(ask(s) for s in sessions), "an operator's session was closed by clients without a token"
        wait_until(lambda: "closing the one idle longest" in d.log(), 5)
        warnings = d.log().count("closing the one idle longest")
        assert warnings <= 2, f"{warnings} eviction warnings for one burst"
        assert "more such closes in the last 5s were not logged" in d.log()
    finally:
        for s in strangers + sessions:
            s.close()
