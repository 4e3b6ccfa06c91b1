#!/usr/bin/env python3
"""Helpers for bench/run.sh: /proc accounting, the idle-connection probe,
parsers for iperf3/wrk/stub_status output, and the final table.

Kept in one file so run.sh has a single dependency besides the tools it installs.
"""
import json
import os
import socket
import statistics
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- /proc

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # comm may contain spaces and parentheses: split after the last ')'.
    return data[data.rindex(")") + 2:].split()


def process_tree(root):
    """root and all its live descendants (nginx master -> workers)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(name)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [int(root)]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_split(root):
    """(utime, stime) in seconds of every process in the tree (all threads included)."""
    user = system = 0
    for pid in process_tree(root):
        try:
            f = _stat_fields(pid)
            user, system = user + int(f[11]), system + int(f[12])  # utime, stime (fields 14, 15)
        except (OSError, ValueError, IndexError):
            pass
    return user / CLK_TCK, system / CLK_TCK


def tree_cpu_seconds(root):
    """utime+stime of every process in the tree (all threads included)."""
    return sum(tree_cpu_split(root))


def cpu_delta(cpu0, cpu1):
    """(total, user, system) seconds between two `benchlib.py cpu` readings ("user,system")."""
    def split(reading):
        user, system = (float(x) for x in str(reading).split(","))
        return user, system
    (u0, s0), (u1, s1) = split(cpu0), split(cpu1)
    return (u1 - u0) + (s1 - s0), u1 - u0, s1 - s0


def tree_rss_kib(root):
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- idle connections

def idle_probe(proxy_pid, proxy_port, backend_port, count, settle):
    """Listen as the backend, open `count` idle connections through the proxy,
    wait until the backend accepted them all, and report the proxy's RSS growth."""
    backend = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    backend.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    backend.bind(("127.0.0.1", backend_port))
    backend.listen(4096)
    accepted = []
    stop = threading.Event()

    def acceptor():
        backend.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = backend.accept()
                accepted.append(conn)
            except socket.timeout:
                continue
            except OSError:
                break

    thread = threading.Thread(target=acceptor, daemon=True)
    thread.start()
    # Health checks or earlier probes may land here too: count from a baseline.
    time.sleep(0.2)
    base = len(accepted)
    rss_before = tree_rss_kib(proxy_pid)
    clients, error = [], None
    deadline = time.monotonic() + 30
    try:
        for i in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(("127.0.0.1", proxy_port))
            clients.append(s)
            # Pace the client so no proxy's listen backlog overflows (SYN retries
            # would stall for a second and measure the kernel, not the proxy).
            if i % 256 == 255:
                while len(accepted) - base < i - 512 and time.monotonic() < deadline:
                    time.sleep(0.005)
        while len(accepted) - base < count and time.monotonic() < deadline:
            time.sleep(0.01)
    except OSError as e:
        error = str(e)
    time.sleep(settle)
    rss_after = tree_rss_kib(proxy_pid)
    # Everything still open? A proxy that closed idle connections early would
    # show up as a dead client socket.
    alive = 0
    for s in clients:
        try:
            s.setblocking(False)
            if s.recv(1) == b"":
                continue
            alive += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    backend_count = len(accepted) - base
    stop.set()
    for s in clients:
        s.close()
    backend.close()
    thread.join(1)
    for c in accepted:
        c.close()
    print(json.dumps({
        "requested": count, "opened": len(clients), "alive": alive,
        "backend_accepted": backend_count,
        "rss_before_kib": rss_before, "rss_after_kib": rss_after,
        "error": error,
    }))


# ---------------------------------------------------------------- parsers

def parse_iperf(path):
    with open(path) as f:
        text = f.read()
    try:
        j = json.loads(text)
    except ValueError:
        return {"error": "unparsable iperf3 output"}
    if "error" in j:
        return {"error": j["error"]}
    end = j["end"]
    return {
        "sent_bytes": end["sum_sent"]["bytes"],
        "received_bytes": end["sum_received"]["bytes"],   # counted by the iperf3 server
        "gbps": end["sum_received"]["bits_per_second"] / 1e9,
        "seconds": end["sum_received"]["seconds"],
    }


def parse_wrk(path):
    with open(path) as f:
        for line in f:
            if line.startswith("WRKJSON "):
                return json.loads(line[len("WRKJSON "):])
    return {"error": "no WRKJSON line in wrk output"}


def stub_status(port):
    """nginx stub_status of the backend: accepts, handled, requests."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    body = data.split(b"\r\n\r\n", 1)[1].decode().splitlines()
    accepts, handled, requests = (int(x) for x in body[2].split())
    return {"accepts": accepts, "handled": handled, "requests": requests}


# ---------------------------------------------------------------- recording
# Each workload appends figures to results.tsv (column, run, figure, value) and
# one verdict to checks.tsv (column, run, workload, ok|fail, detail).

def _append(path, *fields):
    with open(path, "a") as f:
        f.write("\t".join(str(x) for x in fields) + "\n")


def in_flight_limit(streams):
    def max_of(name):
        try:
            with open(f"/proc/sys/net/ipv4/{name}") as f:
                return int(f.read().split()[2])
        except (OSError, ValueError, IndexError):
            return 32 * 2**20
    return streams * (2 * max_of("tcp_wmem") + 2 * max_of("tcp_rmem") + 2**20)


def record_bulk(out_dir, col, rep, iperf_out, cpu0, cpu1, proxied):
    res, chk = os.path.join(out_dir, "results.tsv"), os.path.join(out_dir, "checks.tsv")
    r = parse_iperf(iperf_out)
    if "error" in r:
        _append(chk, col, rep, "bulk", "fail", f"iperf3: {r['error']}")
        return
    _append(res, col, rep, "bulk_gbps", f"{r['gbps']:.4f}")
    gb = r["received_bytes"] / 1e9
    cpu = cpu_delta(cpu0, cpu1)[0]
    if proxied and gb > 0:
        _append(res, col, rep, "cpu_s_per_gb", f"{cpu / gb:.5f}")
    # The iperf3 server is the backend: its byte count is what really arrived.
    # What the server has not counted when the test ends is what sat in socket
    # buffers along the path: client send, proxy receive and send, server receive
    # buffer per stream, at most. Allow that much, or 3 %, whichever is larger.
    missing = r["sent_bytes"] - r["received_bytes"]
    ok = r["received_bytes"] > 0 and missing <= max(0.03 * r["sent_bytes"], in_flight_limit(4))
    if proxied and cpu <= 0:
        ok = False
    _append(chk, col, rep, "bulk", "ok" if ok else "fail",
            f"client sent {r['sent_bytes']} B, backend received {r['received_bytes']} B, "
            f"proxy CPU {cpu:.2f} s")


def record_wrk(out_dir, col, rep, workload, wrk_out, stub0, stub1, cpu0, cpu1, proxied, conns):
    res, chk = os.path.join(out_dir, "results.tsv"), os.path.join(out_dir, "checks.tsv")
    w = parse_wrk(wrk_out)
    if "error" in w:
        _append(chk, col, rep, workload, "fail", f"wrk: {w['error']}")
        return
    s0, s1 = json.loads(stub0), json.loads(stub1)
    n = w["requests"]
    secs = w["duration_us"] / 1e6
    cpu, cpu_user, cpu_sys = cpu_delta(cpu0, cpu1)
    errors = sum(w[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    # stub_status counts the second status request itself, and its connection.
    backend_requests = s1["requests"] - s0["requests"] - 1
    backend_accepts = s1["accepts"] - s0["accepts"] - 1
    if workload == "newconn":
        _append(res, col, rep, "newconn_rps", f"{n / secs:.1f}")
        _append(res, col, rep, "p99_ms", f"{w['p99_us'] / 1000:.3f}")
        if proxied and n:
            _append(res, col, rep, "cpu_us_per_conn", f"{cpu * 1e6 / n:.2f}")
            _append(res, col, rep, "cpu_user_us_per_conn", f"{cpu_user * 1e6 / n:.2f}")
            _append(res, col, rep, "cpu_sys_us_per_conn", f"{cpu_sys * 1e6 / n:.2f}")
    else:
        _append(res, col, rep, "ka_rps", f"{n / secs:.1f}")
        if proxied and n:
            _append(res, col, rep, "cpu_us_per_req", f"{cpu * 1e6 / n:.2f}")
            _append(res, col, rep, "cpu_user_us_per_req", f"{cpu_user * 1e6 / n:.2f}")
            _append(res, col, rep, "cpu_sys_us_per_req", f"{cpu_sys * 1e6 / n:.2f}")
    # Requests still in flight when wrk stops reached the backend but not the
    # client's count: allow up to one per connection.
    ok = n > 0 and n <= backend_requests <= n + conns + 2 and errors <= 0.01 * n
    if workload == "newconn":
        ok = ok and backend_accepts >= 0.99 * n
    if proxied and cpu <= 0:
        ok = False
    _append(chk, col, rep, workload, "ok" if ok else "fail",
            f"client {n} responses ({errors} errors), backend {backend_requests} requests "
            f"on {backend_accepts} connections, proxy CPU {cpu:.2f} s")


def record_idle(out_dir, col, rep, idle_out):
    res, chk = os.path.join(out_dir, "results.tsv"), os.path.join(out_dir, "checks.tsv")
    try:
        with open(idle_out) as f:
            r = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        _append(chk, col, rep, "idle", "fail", "idle probe produced no result")
        return
    n = r["requested"]
    ok = r["error"] is None and r["opened"] == n and r["alive"] == n and r["backend_accepted"] >= n
    if r["opened"]:
        _append(res, col, rep, "rss_kib_per_conn",
                f"{(r['rss_after_kib'] - r['rss_before_kib']) / r['opened']:.3f}")
    _append(chk, col, rep, "idle", "ok" if ok else "fail",
            f"{r['opened']}/{n} opened, {r['alive']} still open, backend accepted "
            f"{r['backend_accepted']}, RSS {r['rss_before_kib']}→{r['rss_after_kib']} KiB"
            + (f", error: {r['error']}" if r["error"] else ""))


def admin_engine(sock_path):
    """The engine a running switchyard reports in `status` ("" if unknown)."""
    import re
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(sock_path)
            s.sendall(b"status\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return ""
    m = re.search(r'"engine[a-z_]*"\s*:\s*"([A-Za-z_]+)"', data.decode(errors="replace"))
    return m.group(1) if m else ""


# ---------------------------------------------------------------- table

FIGURES = [
    # key, label, format, goal text for switchyard/HAProxy
    ("bulk_gbps", "bulk throughput, iperf3 -P4, Gbit/s", "{:.1f}", "≥ 1.2 (≥ 1.0 vs splice)"),
    ("cpu_s_per_gb", "proxy CPU-seconds per GB forwarded", "{:.2f}", "≤ 0.5 vs splice"),
    ("newconn_rps", "new connections/s, wrk -c64 `Connection: close`", "{:,.0f}", ""),
    ("cpu_us_per_conn", "proxy CPU-µs per new connection", "{:.1f}", "≤ 0.8"),
    ("cpu_user_us_per_conn", "… of which user space", "{:.1f}", ""),
    ("cpu_sys_us_per_conn", "… of which kernel (system)", "{:.1f}", ""),
    ("ka_rps", "keep-alive requests/s, wrk -c64", "{:,.0f}", ""),
    ("cpu_us_per_req", "proxy CPU-µs per small request", "{:.1f}", "≤ 0.8"),
    ("cpu_user_us_per_req", "… of which user space", "{:.1f}", ""),
    ("cpu_sys_us_per_req", "… of which kernel (system)", "{:.1f}", ""),
    ("p99_ms", "p99 latency, new-connection workload, ms", "{:.2f}", "≤ 1.15"),
    ("rss_kib_per_conn", "RSS growth per idle proxied connection, KiB", "{:.1f}", "≤ 0.5"),
]
# Which figures a failed forwarding check of a workload taints.
CHECK_FIGURES = {
    "bulk": {"bulk_gbps", "cpu_s_per_gb"},
    "newconn": {"newconn_rps", "cpu_us_per_conn", "cpu_user_us_per_conn", "cpu_sys_us_per_conn", "p99_ms"},
    "keepalive": {"ka_rps", "cpu_us_per_req", "cpu_user_us_per_req", "cpu_sys_us_per_req"},
    "idle": {"rss_kib_per_conn"},
}
# Ratios against HAProxy with splice are meaningful for bulk transfer only.
SPLICE_RATIO = {"bulk_gbps", "cpu_s_per_gb"}


def load_tsv(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 4:
                    rows.append(parts)
    return rows


def make_table(results_tsv, checks_tsv, columns_arg, meta_path):
    columns = [c.split("=", 1) for c in columns_arg.split(",") if c]
    values = {}
    for col, rep, key, val in load_tsv(results_tsv):
        try:
            values.setdefault((col, key), []).append(float(val))
        except ValueError:
            pass
    failed = {}
    failures = []
    for col, rep, check, verdict, *detail in load_tsv(checks_tsv):
        if verdict != "ok":
            failed.setdefault(col, set()).update(CHECK_FIGURES.get(check, set()))
            failures.append(f"- {col} run {rep}: {check} — {detail[0] if detail else ''}")

    def median(col, key):
        v = values.get((col, key))
        return statistics.median(v) if v else None

    def cell(col, key, fmt):
        m = median(col, key)
        if m is None:
            return "–"
        text = fmt.format(m)
        if key in failed.get(col, set()):
            text += " ✗"
        return text

    sy_cols = [c for c in columns if c[0].startswith("switchyard")]
    names = {col for col, _ in columns}
    # BASELINE_BIN: each engine's column against the same engine's "before" column of the same runs.
    before_after = [(col[: -len("+baseline")], col) for col, _ in columns
                    if col.endswith("+baseline") and col[: -len("+baseline")] in names]
    header = ["figure"] + [label for _, label in columns]
    for col, label in sy_cols:
        eng = (col.split("-", 1)[1] if "-" in col else col).replace("+baseline", " before")
        header += [f"{eng}/HAProxy", f"{eng}/HAProxy-splice"]
    for after, _ in before_after:
        header.append(f"{after.split('-', 1)[1]} after/before")
    if sy_cols:
        header.append("goal (switchyard/HAProxy)")
    lines = ["| " + " | ".join(header) + " |",
             "|---|" + "|".join(["---:"] * (len(header) - 1)) + "|"]
    for key, label, fmt, goal in FIGURES:
        row = [label] + [cell(col, key, fmt) for col, _ in columns]
        for col, _ in sy_cols:
            sy = median(col, key)
            for ref in ("haproxy", "haproxy-splice"):
                r = median(ref, key)
                if sy is None or not r or (ref == "haproxy-splice" and key not in SPLICE_RATIO):
                    row.append("–")
                else:
                    row.append(f"{sy / r:.2f}")
        for after, before in before_after:
            a, b = median(after, key), median(before, key)
            row.append(f"{a / b:.2f}" if a is not None and b else "–")
        if sy_cols:
            row.append(goal or "–")
        lines.append("| " + " | ".join(row) + " |")

    out = []
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            out.append(f.read().rstrip("\n"))
        out.append("")
    out += lines
    counts = sorted({len(v) for v in values.values()})
    out.append("")
    out.append(f"Medians of {'/'.join(map(str, counts)) or 0} run(s) per cell. "
               "✗ = a forwarding check failed in at least one run (see below).")
    out.append("")
    if failures:
        out.append("Forwarding checks FAILED:")
        out += failures
    else:
        out.append("Forwarding checks: all passed (backend-side counts match the client's).")
    print("\n".join(out))
    return 1 if failures else 0


# ---------------------------------------------------------------- main

def main(argv):
    cmd = argv[1]
    if cmd == "cpu":
        print("%.3f,%.3f" % tree_cpu_split(argv[2]))
    elif cmd == "rss":
        print(tree_rss_kib(argv[2]))
    elif cmd == "tree":
        print(" ".join(map(str, process_tree(argv[2]))))
    elif cmd == "idle":
        idle_probe(int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5]), float(argv[6]))
    elif cmd == "iperf":
        print(json.dumps(parse_iperf(argv[2])))
    elif cmd == "wrk":
        print(json.dumps(parse_wrk(argv[2])))
    elif cmd == "stub":
        print(json.dumps(stub_status(int(argv[2]))))
    elif cmd == "record-bulk":
        record_bulk(argv[2], argv[3], argv[4], argv[5], argv[6], argv[7], argv[8] == "1")
    elif cmd == "record-wrk":
        record_wrk(argv[2], argv[3], argv[4], argv[5], argv[6], argv[7], argv[8], argv[9],
                   argv[10], argv[11] == "1", int(argv[12]))
    elif cmd == "record-idle":
        record_idle(argv[2], argv[3], argv[4], argv[5])
    elif cmd == "admin-engine":
        print(admin_engine(argv[2]))
    elif cmd == "get":
        # get JSON KEY: a field of a JSON object on stdin, "" if missing
        obj = json.loads(sys.stdin.read() or "{}")
        v = obj.get(argv[2], "")
        print("" if v is None else v)
    elif cmd == "table":
        return make_table(argv[2], argv[3], argv[4], argv[5])
    else:
        print(f"benchlib: unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
