"""switchyard -c FILE --check, and the command line's exit codes."""

import os
import re
import textwrap

import pytest

from daemon import run_switchyard

GOOD = """\
admin:
  socket: {tmp}/admin.sock
state_file: {tmp}/state.json
workers: 2
shutdown_grace: 1s
log: { level: info }
services:
  - name: web
    listen: 127.0.0.1:18080
    balance: roundrobin
    split: { blue: 90, green: 10 }
    timeouts: { connect: 2s, idle: 300s }
    retries: 2
    max_connections: 100
    pools:
      blue:
        - address: 127.0.0.1:19001
          weight: 100
        - address: 127.0.0.1:19002
          weight: 2000
      green: []
"""
WEIGHT_LINE = 20      # the line of "weight: 2000" above (1-based)
WEIGHT_COLUMN = 19    # the column of its value "2000" (1-based)


def write(tmp_path, text, name="switchyard.yaml"):
    path = tmp_path / name
    path.write_text(text.replace("{tmp}", str(tmp_path)))
    return path


def good_text():
    return GOOD.replace("weight: 2000", "weight: 200")


def test_check_accepts_a_good_file(tmp_path):
    path = write(tmp_path, good_text())
    r = run_switchyard("-c", str(path), "--check")
    assert r.returncode == 0, r.stderr


def test_check_accepts_a_minimal_file_with_defaults(tmp_path):
    path = write(tmp_path, textwrap.dedent("""\
        services:
          - name: web
            listen: 127.0.0.1:18080
            pools:
              blue: [ { address: 127.0.0.1:19001 } ]
              green: []
        """))
    r = run_switchyard("-c", str(path), "--check")
    assert r.returncode == 0, r.stderr


def test_check_rejects_an_out_of_range_weight_naming_file_line_column_and_key(tmp_path):
    assert GOOD.splitlines()[WEIGHT_LINE - 1].index("2000") + 1 == WEIGHT_COLUMN
    path = write(tmp_path, GOOD)
    r = run_switchyard("-c", str(path), "--check")
    assert r.returncode == 2
    out = r.stderr + r.stdout
    assert f"switchyard.yaml:{WEIGHT_LINE}:{WEIGHT_COLUMN}" in out, out
    assert "services[0].pools.blue[1].weight" in out, out


def test_check_rejects_an_unknown_key(tmp_path):
    text = good_text().replace("    retries: 2\n", "    retries: 2\n    retry_budget: 5\n")
    path = write(tmp_path, text)
    r = run_switchyard("-c", str(path), "--check")
    assert r.returncode == 2
    out = r.stderr + r.stdout
    assert "retry_budget" in out, out
    assert "switchyard.yaml:14:" in out, out


@pytest.mark.parametrize("original,replacement,words", [
    ("idle: 300s", "idle: 300 parsecs", ["services[0].timeouts.idle"]),
    ("listen: 127.0.0.1:18080", "listen: example.com:80", ["services[0].listen"]),
    ("127.0.0.1:19002", "127.0.0.1:19001", ["services[0].pools.blue[1].address"]),
    ("split: { blue: 90, green: 10 }", "split: { blue: 90, green: 1001 }", ["services[0].split.green"]),
    ("    listen: 127.0.0.1:18080\n", "", ["listen"]),
], ids=["bad-duration", "host-name-address", "duplicate-backend", "split-out-of-range", "missing-listen"])
def test_check_rejects_invalid_values_with_exit_2(tmp_path, original, replacement, words):
    text = good_text()
    assert original in text
    path = write(tmp_path, text.replace(original, replacement))
    r = run_switchyard("-c", str(path), "--check")
    assert r.returncode == 2, r.stderr
    out = r.stderr + r.stdout
    assert re.search(r"switchyard\.yaml:\d+:\d+", out), out
    for w in words:
        assert w in out, out


def test_check_of_a_missing_file_exits_2(tmp_path):
    r = run_switchyard("-c", str(tmp_path / "nope.yaml"), "--check")
    assert r.returncode == 2
    assert "nope.yaml" in r.stderr + r.stdout


def test_unknown_option_is_a_usage_error(tmp_path):
    r = run_switchyard("--no-such-option")
    assert r.returncode == 2


def test_version_and_help_exit_0():
    r = run_switchyard("--version")
    assert r.returncode == 0
    assert re.search(r"\d+\.\d+\.\d+", r.stdout), r.stdout
    r = run_switchyard("--help")
    assert r.returncode == 0
    assert "--check" in r.stdout


def test_version_tells_what_a_bug_report_needs():
    r = run_switchyard("--version")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"switchyard \d+\.\d+\.\d+", lines[0]), lines[0]
    fields = dict(line.strip().split(":", 1) for line in lines[1:])
    fields = {k: v.strip() for k, v in fields.items()}
    assert set(fields) == {"git commit", "build type", "compiler", "engines", "kernel", "io_uring"}, fields
    assert re.fullmatch(r"([0-9a-f]{7,40}|v?\d[\w.\-]*)(-dirty)?|unknown", fields["git commit"]), fields
    assert re.match(r"(plain|debug|debugoptimized|release|minsize|custom) \(optimization \w+, assertions (on|off)\)$",
                    fields["build type"]), fields
    assert re.match(r"(gcc|clang) \d+\.\d+\.\d+, C\+\+ 2020\d\d$", fields["compiler"]), fields
    assert fields["engines"].startswith("io_uring (liburing ") and fields["engines"].endswith(", epoll (edge-triggered, own loop)")
    assert fields["kernel"].startswith("Linux " + os.uname().release)
    assert fields["io_uring"].startswith(("usable on this kernel", "not usable here: ")), fields
    # -V is the same report
    assert run_switchyard("-V").stdout == r.stdout


def test_a_config_path_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    import os
    fifo = tmp_path / "switchyard.yaml"
    os.mkfifo(fifo)
    for args in (("--check",), ()):
        r = run_switchyard("-c", str(fifo), *args, timeout=5.0)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert f"{fifo}: not a regular file" in r.stderr, r.stderr
    r = run_switchyard("-c", str(tmp_path), "--check", timeout=5.0)
    assert r.returncode == 2 and f"{tmp_path}: not a regular file" in r.stderr, r.stderr


@pytest.mark.parametrize("original,replacement,key", [
    ("idle: 300s", "idle: 3000000h", "services[0].timeouts.idle"),
    ("idle: 300s", "idle: 8761h", "services[0].timeouts.idle"),
    ("shutdown_grace: 1s", "shutdown_grace: 99999999999999999999ms", "shutdown_grace"),
    ("    retries: 2\n", "    retries: 2\n    drain_timeout: 525601m\n", "services[0].drain_timeout"),
], ids=["idle-wraps", "idle-just-over", "grace-beyond-int64", "drain-timeout"])
def test_durations_longer_than_365_days_are_refused_with_file_line_column_and_key(tmp_path, original,
                                                                                 replacement, key):
    text = good_text()
    assert original in text
    text = text.replace(original, replacement)
    value = replacement.rstrip().rsplit(": ", 1)[1]
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if value in ln)
    column = text.splitlines()[line - 1].index(value) + 1
    path = write(tmp_path, text)
    r = run_switchyard("-c", str(path), "--check")
    assert r.returncode == 2, r.stderr
    assert (f"switchyard.yaml:{line}:{column}: {key}: '{value}' is longer than the limit of 365 days (8760h)"
            in r.stderr), r.stderr
    assert run_switchyard("-c", str(path), timeout=5.0).returncode == 2   # start refuses it the same way


@pytest.mark.parametrize("backend", ["127.0.0.1:18080", "0.0.0.0:18080"])
def test_a_backend_that_is_the_proxy_itself_is_refused(tmp_path, backend):
    text = good_text().replace("address: 127.0.0.1:19002", f"address: {backend}")
    path = write(tmp_path, text)
    r = run_switchyard("-c", str(path), "--check")
    assert r.returncode == 2, r.stderr
    assert (f"switchyard.yaml:19:20: services[0].pools.blue[1].address: backend {backend} is this proxy's own "
            "listener 127.0.0.1:18080 (service 'web'): a connection would loop through the proxy") in r.stderr, r.stderr
