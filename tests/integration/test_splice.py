"""Bulk flows relayed with splice(2) (`splice: auto`, the default; both engines):
bytes intact and counted, backpressure kept, pipes given back, `splice: off` honoured."""

import fcntl
import os
import socket
import textwrap
import threading

from clients import connect, echo_roundtrip, recv_exactly, sha256
from daemon import run_switchyard, service
from netutil import free_address
from waiters import wait_until

MiB = 1024 * 1024


SPLICE_PIPE_SIZE = 256 * 1024   # proxy/splice_pipe.h: kSplicePipeSize


def splice_pipes(pid):
    """The daemon's splice pipes: pipes resized to 256 KiB (others, such as a
    sanitizer's or the harness's, keep the 64 KiB default)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            target = os.readlink(path)
            if not target.startswith("pipe:") or target in found:
                continue
            # Opening the pipe through /proc adds a reader for a moment; it reads nothing.
            probe = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue   # gone meanwhile, or the write end of a pipe nobody reads
        try:
            if fcntl.fcntl(probe, fcntl.F_GETPIPE_SZ) == SPLICE_PIPE_SIZE:
                found.add(target)
        finally:
            os.close(probe)
    return len(found)


def test_a_stalled_bulk_download_waits_in_a_pipe_and_then_arrives_intact(backends, switchyard):
    payload = os.urandom(24 * MiB)
    backend = backends.sending(payload)
    d = switchyard([service("bulk", free_address(), blue=[backend])])
    with connect(d.listen()) as s:
        head = recv_exactly(s, 1 * MiB, timeout=10)
        # The client stops reading: the flow is bulk, so it now waits in a
        # splice pipe (two descriptors) instead of user-space buffers.
        wait_until(lambda: splice_pipes(d.pid) == 1, 5, message="a splice pipe in use")
        rest = recv_exactly(s, len(payload) - len(head), timeout=60)
        assert s.recv(1) == b""   # the backend's FIN passed on after the last byte
    assert sha256(head + rest) == sha256(payload)
    # The connection is over: its pipe is closed, not kept.
    wait_until(lambda: splice_pipes(d.pid) == 0, 5, message="the splice pipe closed")


def test_bulk_both_ways_at_once_arrive_intact_and_are_counted_exactly(backends, switchyard):
    echo = backends.echo()
    d = switchyard([service("bulk", free_address(), blue=[echo])])
    payloads = [os.urandom(6 * MiB + i * 4099) for i in range(4)]
    results, errors = {}, []

    def client(i):
        try:
            results[i] = sha256(echo_roundtrip(d.listen(), payloads[i], timeout=60))
        except Exception as exc:  # asserted below
            errors.append((i, repr(exc)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert errors == []
    assert results == {i: sha256(p) for i, p in enumerate(payloads)}
    total = sum(len(p) for p in payloads)
    assert echo.bytes_echoed == total

    def settled():
        st = d.admin("status bulk")["services"][0]
        return st if st["active_connections"] == 0 else None
    wait_until(settled, 5, message="every connection closed")
    # Spliced bytes are counted like buffered ones (the metrics test checks the
    # exact figures per pool); here the drained daemon holds no pipe.
    assert splice_pipes(d.pid) == 0


def test_a_drain_deadline_closes_a_stalled_bulk_flow_and_frees_its_pipe(backends, switchyard):
    payload = os.urandom(32 * MiB)
    blue = backends.sending(payload)
    green = backends.sending(b"green\n")
    d = switchyard([service("bulk", free_address(), blue=[blue], green=[green],
                            drain_timeout="1s")])
    base_fds = d.fd_count()
    s = connect(d.listen())
    recv_exactly(s, 2 * MiB, timeout=10)   # then stalls with the rest in flight
    assert d.admin("cutover bulk green")["ok"]
    # The client stays stalled: the drain deadline, not the client, ends the flow,
    # and everything the connection held (sockets, pipe) is given back.
    wait_until(lambda: d.admin("status bulk")["services"][0]["active_connections"] == 0, 10,
               message="the drained connection closed by its deadline")
    s.settimeout(10)
    got = 2 * MiB
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except ConnectionResetError:
        pass
    s.close()
    assert got < len(payload)
    wait_until(lambda: d.fd_count() <= base_fds, 5, message="fds back to baseline")
    assert d.running()


def test_urgent_data_in_a_spliced_flow_does_not_stall_it(backends, switchyard):
    # splice(2) stops at a TCP urgent mark and never passes it: on a
    # non-blocking socket it fails there with EAGAIN although bytes wait behind
    # the mark. The relay must see that, step over the mark through buffers and
    # carry the rest (the urgent byte itself is out of band and not relayed, as
    # with buffers).
    echo = backends.echo()
    d = switchyard([service("bulk", free_address(), blue=[echo])])
    before, after = os.urandom(4 * MiB), os.urandom(4 * MiB)
    with connect(d.listen()) as s:
        got = bytearray()
        done = threading.Event()

        def reader():
            s.settimeout(30)
            try:
                while chunk := s.recv(1 << 20):
                    got.extend(chunk)
            finally:
                done.set()

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(before)
        # Both directions are bulk and relay by splice when the urgent byte comes.
        wait_until(lambda: len(got) == len(before), 20, message="the first 4 MiB echoed")
        assert splice_pipes(d.pid) == 2
        s.send(b"!", socket.MSG_OOB)
        s.sendall(after)
        # Before the FIN: at a FIN splice reads 0 instead of failing, which hid the stall.
        wait_until(lambda: len(got) == len(before) + len(after), 20,
                   message=f"the {len(after)} bytes after the urgent byte echoed (a stall at the urgent mark)")
        s.shutdown(socket.SHUT_WR)
        assert done.wait(10), "the backend's FIN came back"
        t.join()
    assert len(got) == len(before) + len(after)
    assert sha256(bytes(got)) == sha256(before + after)


def test_urgent_data_relayed_by_buffers_does_not_stall_it(backends, switchyard):
    # A read stops short just before a TCP urgent mark, with bytes still queued
    # behind it: a relay that takes every short read for an empty socket waits
    # for news that never comes. Each round queues bytes, the urgent byte and a
    # tail behind it faster than the relay reads them; the tail must come back.
    echo = backends.echo()
    d = switchyard([service("echo", free_address(), blue=[echo])], extra={"splice": "off"})
    sent = bytearray()
    with connect(d.listen()) as s:
        got = bytearray()

        def reader():
            s.settimeout(30)
            while chunk := s.recv(1 << 20):
                got.extend(chunk)

        t = threading.Thread(target=reader)
        t.start()
        for round_ in range(8):
            before, tail = os.urandom(256 * 1024), os.urandom(1000)
            s.sendall(before)
            s.send(b"!", socket.MSG_OOB)
            s.sendall(tail)
            sent += before + tail
            wait_until(lambda: len(got) == len(sent), 10,
                       message=f"round {round_}: the {len(tail)} bytes after the urgent byte echoed "
                               f"(a stall at the urgent mark)")
        s.shutdown(socket.SHUT_WR)
        t.join(10)
    assert sha256(bytes(got)) == sha256(bytes(sent))


def test_splice_off_relays_bulk_through_buffers(backends, switchyard):
    payload = os.urandom(16 * MiB)
    backend = backends.sending(payload)
    d = switchyard([service("bulk", free_address(), blue=[backend])], extra={"splice": "off"})
    seen, done = [], threading.Event()

    def watch():   # samples the daemon's pipes all through the transfer
        while not done.is_set():
            seen.append(splice_pipes(d.pid))
            done.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with connect(d.listen()) as s:
            head = recv_exactly(s, 1 * MiB, timeout=10)
            rest = recv_exactly(s, len(payload) - len(head), timeout=60)
    finally:
        done.set()
        watcher.join()
    assert sha256(head + rest) == sha256(payload)
    assert len(seen) > 0 and max(seen) == 0


def test_check_rejects_an_unknown_splice_mode(tmp_path):
    path = tmp_path / "switchyard.yaml"
    path.write_text(textwrap.dedent("""\
        splice: always
        services:
          - name: web
            listen: 127.0.0.1:18080
            pools:
              blue: [ { address: 127.0.0.1:19001 } ]
              green: []
        """))
    r = run_switchyard("-c", str(path), "--check")
    assert r.returncode == 2
    assert "switchyard.yaml:1:9: splice: expected auto or off, got 'always'" in r.stderr + r.stdout
