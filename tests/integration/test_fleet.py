"""Fleet mode: several switchyard instances sharing one operator intent through a real etcd
(docs/fleet.md). Each test starts its own single-member etcd on free loopback ports, with its
data directory in tmp_path, and ends it by PID."""

import base64
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import threading
import time
import urllib.request

import pytest

from clients import http_get
from daemon import service, switchyard_bin
from netutil import free_port
from test_rollout import Load, ResettingBackend
from waiters import wait_until

ETCD = "/usr/bin/etcd"

pytestmark = pytest.mark.skipif(not os.access(ETCD, os.X_OK),
                                reason=f"{ETCD} missing (Debian package etcd-server)")


class Etcd:
    """One etcd member on loopback; kill() and start() keep its ports and data."""

    def __init__(self, workdir, name="n1"):
        self.workdir = workdir
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.initial_cluster = f"{name}={self.peer_url}"
        self.proc = None
        self.log_path = workdir / f"etcd-{name}.log"

    def launch(self):
        cmd = [ETCD, "--name", self.name, "--data-dir", str(self.workdir / f"etcd-{self.name}"),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
               "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
               "--logger", "zap", "--log-level", "warn"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)

    def start(self, timeout=15.0):
        self.launch()
        wait_until(self.healthy, timeout, 0.05, "etcd to be healthy")
        return self

    def post(self, path, body):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=2) as r:
            return json.loads(r.read())

    def is_leader(self):
        status = self.post("/v3/maintenance/status", {})
        return status.get("leader") == status["header"]["member_id"]

    def healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd exited with {self.proc.returncode}:\n{self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=0.5) as r:
                return json.loads(r.read()).get("health") == "true"
        except OSError:
            return False

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()


class Cluster:
    """Three etcd members on loopback."""

    def __init__(self, workdir):
        self.members = [Etcd(workdir, f"n{i}") for i in range(1, 4)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.initial_cluster = initial
        self.urls = [m.url for m in self.members]

    def start(self):
        for m in self.members:
            m.launch()   # all at once: a member waits for its peers before it is healthy
        for m in self.members:
            wait_until(m.healthy, 20, 0.05, f"etcd {m.name} to be healthy")
        return self

    def leader(self):
        return next(m for m in self.members if m.proc.poll() is None and m.is_leader())

    def kill(self):
        for m in self.members:
            m.kill()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(workdir, name):
    """A CA (EC P-256, valid a day): returns the paths of its certificate and key."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1", "-subj", f"/CN={name}", cwd=workdir)
    return workdir / f"{name}.pem", workdir / f"{name}.key"


def make_cert(workdir, ca, name, san="IP:127.0.0.1"):
    """A certificate for `name` signed by `ca`, good for a server and a client, its key chmod 600."""
    (workdir / f"{name}.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=workdir)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=workdir)
    (workdir / f"{name}.key").chmod(0o600)
    return workdir / f"{name}.pem", workdir / f"{name}.key"


class TlsEtcd(Etcd):
    """One etcd member serving clients over TLS only, asking each for a certificate of `ca`."""

    def __init__(self, workdir, ca, server):
        super().__init__(workdir)
        self.ca, self.server = ca, server
        self.url = f"https://127.0.0.1:{self.client_port}"

    def launch(self):
        cmd = [ETCD, "--name", self.name, "--data-dir", str(self.workdir / f"etcd-{self.name}"),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
               "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
               "--cert-file", str(self.server[0]), "--key-file", str(self.server[1]),
               "--trusted-ca-file", str(self.ca[0]), "--client-cert-auth",
               "--logger", "zap", "--log-level", "warn"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)

    def healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd exited with {self.proc.returncode}:\n{self.log_path.read_text()[-2000:]}")
        context = ssl.create_default_context(cafile=str(self.ca[0]))
        context.load_cert_chain(str(self.server[0]), str(self.server[1]))
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=0.5, context=context) as r:
                return json.loads(r.read()).get("health") == "true"
        except OSError:
            return False


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    c.start()
    yield c
    c.kill()


@pytest.fixture
def etcd(tmp_path):
    e = Etcd(tmp_path)
    e.start()
    yield e
    e.kill()


def member(switchyard, etcd, name, blue, green, start=True, prefix="/sy/test/", fleet_etcd=None, **extra):
    urls = fleet_etcd or (etcd.urls if isinstance(etcd, Cluster) else [etcd.url])
    fleet = {"etcd": urls, "prefix": prefix, "instance": name, "lease_ttl": "2s",
             "dial_timeout": "500ms"}
    svc = service("web", f"127.0.0.1:{free_port()}", blue=[blue.address], green=[green.address])
    cfg = {"fleet": fleet}
    cfg.update(extra)
    return switchyard([svc], extra=cfg, start=start, name=name)


def status(d, name="web"):
    reply = d.admin(f"status {name}")
    assert reply["ok"] is True, reply
    return reply


def fleet_of(d):
    return status(d)["fleet"]


def web(d):
    return status(d)["services"][0]


def wait_store(d, state="ok", timeout=10.0):
    wait_until(lambda: fleet_of(d)["store"] == state, timeout, 0.02, f"the fleet store to be {state}")


@pytest.fixture
def pair(backends, switchyard, etcd):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    a = member(switchyard, etcd, "lb-a", blue, green)
    b = member(switchyard, etcd, "lb-b", blue, green)
    wait_store(a)
    wait_store(b)
    return a, b


def test_status_shows_the_fleet_and_both_members(pair):
    a, b = pair
    wait_until(lambda: sorted(m["instance"] for m in fleet_of(a)["members"]) == ["lb-a", "lb-b"], 10, 0.05,
               "both members to be listed")
    f = fleet_of(a)
    assert f["instance"] == "lb-a"
    assert f["store"] == "ok"
    assert a.admin("cutover web green")["ok"] is True
    wait_until(lambda: fleet_of(a)["converged"] and fleet_of(b)["converged"], 10, 0.05, "the fleet to converge")
    gens = {m["instance"]: m["generation"] for m in fleet_of(a)["members"]}
    assert gens["lb-a"] == gens["lb-b"] == fleet_of(a)["generation"] > 0


def test_a_change_on_one_member_is_applied_by_the_others_within_a_second(backends, switchyard, etcd):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    a, b, c = (member(switchyard, etcd, name, blue, green) for name in ("lb-a", "lb-b", "lb-c"))
    for d in (a, b, c):
        wait_store(d)
    lags = []
    colour = "blue"
    for i in range(100):
        colour = "green" if colour == "blue" else "blue"
        sent = time.monotonic()   # from the command, not from its answer: the whole path
        reply = a.admin(f"cutover web {colour}")
        assert reply["ok"] is True, reply
        gen = reply["generation"]
        wait_until(lambda: web(b)["generation"] >= gen and web(c)["generation"] >= gen, 1.0, 0.002,
                   f"B and C to apply generation {gen}")
        lags.append(time.monotonic() - sent)
    assert web(b)["split"] == web(c)["split"] == web(a)["split"]
    # Traffic through B and C follows the last cutover (blue after an even number of them).
    assert http_get(b.listen()) == "blue-1"
    assert http_get(c.listen()) == "blue-1"
    lags.sort()
    p50, p99 = statistics.median(lags), lags[98]
    print(f"change on A -> applied on B and C: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms over 100 changes")
    assert p99 < 1.0


def test_racing_if_generation_changes_on_two_members_exactly_one_wins(pair):
    a, b = pair
    for round_ in range(10):
        gen = web(a)["generation"]
        wait_until(lambda: web(b)["generation"] == gen, 5, 0.01, "B to be at A's generation")
        replies = {}

        def send(d, key, colour):
            replies[key] = d.admin(f"cutover web {colour} if-generation={gen}")

        threads = [threading.Thread(target=send, args=(a, "a", "green" if round_ % 2 == 0 else "blue")),
                   threading.Thread(target=send, args=(b, "b", "green" if round_ % 2 == 0 else "blue"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        oks = [k for k, r in replies.items() if r["ok"]]
        assert len(oks) == 1, replies
        loser = replies["b" if oks == ["a"] else "a"]
        assert loser["code"] == "generation_mismatch", loser
        wait_until(lambda: web(a)["generation"] == web(b)["generation"] == gen + 1, 5, 0.01,
                   "both members at the winner's generation")


def test_etcd_down_keeps_serving_refuses_changes_and_converges_when_back(pair, etcd):
    a, b = pair
    assert a.admin("cutover web green")["ok"] is True
    wait_until(lambda: web(b)["split"] == web(a)["split"], 5, 0.01, "B to follow")
    etcd.kill()
    wait_store(a, "unavailable")
    wait_store(b, "unavailable")
    # Both keep routing by the last intent.
    assert http_get(a.listen()) == "green-1"
    assert http_get(b.listen()) == "green-1"
    refused = b.admin("cutover web blue")
    assert refused["ok"] is False
    assert refused["code"] == "store_unavailable", refused
    assert web(b)["split"] == {"blue": 0, "green": 100}
    assert not fleet_of(a)["converged"]
    etcd.start()
    wait_store(a, "ok", timeout=15)
    wait_store(b, "ok", timeout=15)
    reply = b.admin("cutover web blue")
    assert reply["ok"] is True, reply
    wait_until(lambda: web(a)["generation"] == reply["generation"], 5, 0.01, "A to apply B's change")
    assert http_get(a.listen()) == "blue-1"


def test_a_member_restarted_while_etcd_is_down_serves_the_cached_intent(backends, switchyard, etcd):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    metrics_port = free_port()
    a = member(switchyard, etcd, "lb-a", blue, green)
    b = member(switchyard, etcd, "lb-b", blue, green, metrics={"listen": f"127.0.0.1:{metrics_port}"})
    wait_store(a)
    wait_store(b)
    reply = a.admin("cutover web green")
    assert reply["ok"] is True
    wait_until(lambda: web(b)["generation"] == reply["generation"], 5, 0.01, "B to follow")
    etcd.kill()
    b.stop()
    b.start()
    assert fleet_of(b)["store"] == "unavailable"
    assert web(b)["split"] == {"blue": 0, "green": 100}
    assert web(b)["generation"] == reply["generation"]
    assert http_get(b.listen()) == "green-1"
    # Serving, but not ready: the fleet's intent was not read since the start.
    code = None
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/ready", timeout=2)
        code = 200
    except urllib.error.HTTPError as exc:
        code = exc.code
    assert code == 503
    etcd.start()
    wait_store(b, "ok", timeout=15)

    def ready():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/ready", timeout=2) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    wait_until(ready, 5, 0.05, "/ready to be 200 after the first sync")


def test_a_member_that_stopped_is_shown_as_gone(pair):
    a, b = pair
    wait_until(lambda: len(fleet_of(a)["members"]) == 2, 10, 0.05, "both members listed")
    b.kill()   # no goodbye: its lease (2s) must expire
    wait_until(lambda: [m["instance"] for m in fleet_of(a)["members"]] == ["lb-a"], 10, 0.1,
               "B's lease to expire")
    assert fleet_of(a)["converged"] is True


def test_an_etcd_endpoint_named_by_host_name_is_resolved(backends, switchyard, etcd):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    named = etcd.url.replace("127.0.0.1", "localhost")
    d = member(switchyard, etcd, "lb-a", blue, green, fleet_etcd=[named])
    wait_store(d)
    assert d.admin("cutover web green")["ok"] is True
    assert http_get(d.listen()) == "green-1"


def test_an_etcd_name_that_never_resolves_is_given_up_within_the_dial_timeout(backends, switchyard, tmp_path):
    """A DNS server that never answers must not hold the fleet store: name resolution gets
    fleet.dial_timeout like the connect. The daemon runs in its own mount namespace whose
    /etc/resolv.conf names a UDP socket of the test that reads and never replies."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.77", 53))
    try:
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.77\noptions timeout:5 attempts:2\n")
        blue = backends.name("blue-1")
        fleet = {"etcd": ["http://etcd.switchyard-test.invalid:2379"], "prefix": "/sy/test/",
                 "instance": "lb-a", "lease_ttl": "2s", "dial_timeout": "500ms"}
        d = switchyard([service("web", f"127.0.0.1:{free_port()}", blue=[blue.address])],
                       extra={"fleet": fleet}, start=False)
        d._stderr = open(d.stderr_path, "ab")
        d._stdout = open(d.stdout_path, "ab")
        script = 'mount --bind "$1" /etc/resolv.conf && exec "$0" -c "$2"'
        d.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                                   switchyard_bin(), str(resolv), str(d.config_path)],
                                  stdin=subprocess.DEVNULL, stdout=d._stdout, stderr=d._stderr, cwd=str(d.workdir))
        d.wait_ready()
        started = time.monotonic()
        wait_until(lambda: "no address for etcd.switchyard-test.invalid within 500 ms" in d.log(), 4, 0.05,
                   lambda: f"the resolve to be given up:\n{d.log_tail()}")
        # getaddrinfo alone would wait 2 x 5 s; the store says why well before.
        assert time.monotonic() - started < 4
        assert fleet_of(d)["store"] == "unavailable"
        assert http_get(d.listen()) == "blue-1"   # the local intent is served meanwhile
        # Nor does a resolver still waiting hold up SIGTERM.
        stopping = time.monotonic()
        d.stop()
        assert time.monotonic() - stopping < 3
    finally:
        silent.close()


def test_an_upgraded_member_stays_one_member_of_the_fleet(pair):
    """`switchyardctl upgrade` on a member: the new generation takes the instance's place in the
    fleet (one member record, not two), applies the others' changes and sends its own."""
    a, b = pair
    wait_until(lambda: len(fleet_of(b)["members"]) == 2, 10, 0.05, "both members listed")
    result = a.ctl("upgrade", "--timeout", "20s", timeout=40)
    assert result.returncode == 0, result.stderr
    new = int(result.stdout.split()[2])
    try:
        a.wait_exit(10)   # the old generation had no connection to drain
        assert fleet_of(a)["instance"] == "lb-a" and fleet_of(a)["store"] == "ok"
        # A change on B reaches the new generation; one sent to it reaches B.
        sent = b.admin("cutover web green")
        assert sent["ok"] is True, sent
        wait_until(lambda: web(a)["generation"] >= sent["generation"], 5, 0.02, "A's new generation to apply it")
        assert http_get(a.listen()) == "green-1"
        sent = a.admin("cutover web blue")
        assert sent["ok"] is True, sent
        wait_until(lambda: web(b)["generation"] >= sent["generation"], 5, 0.02, "B to apply A's change")
        assert http_get(b.listen()) == "blue-1"
        # The old generation's member record went with its lease: lb-a is listed once, converged.
        wait_until(lambda: fleet_of(b)["converged"] and
                   sorted(m["instance"] for m in fleet_of(b)["members"]) == ["lb-a", "lb-b"], 10, 0.05,
                   lambda: f"one record per member, converged: {fleet_of(b)}")
    finally:
        os.kill(new, signal.SIGTERM)
        wait_until(lambda: not os.path.exists(f"/proc/{new}") or
                   open(f"/proc/{new}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 10, 0.05,
                   "the new generation to exit")


def test_a_single_instance_moved_into_a_fleet_brings_its_intent(backends, switchyard, etcd):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    a = member(switchyard, etcd, "lb-a", blue, green, start=False)
    fleet = a.config.pop("fleet")
    a.write_config()
    a.start()   # alone, no fleet: the state file is the store
    reply = a.admin("cutover web green")
    assert reply["ok"] is True
    a.stop()
    a.config["fleet"] = fleet
    a.write_config()
    a.start()
    wait_store(a)
    b = member(switchyard, etcd, "lb-b", blue, green)
    wait_store(b)
    wait_until(lambda: web(b)["split"] == {"blue": 0, "green": 100}, 5, 0.02, "B to take A's imported intent")
    assert web(b)["generation"] == reply["generation"]
    assert http_get(b.listen()) == "green-1"
    assert "became the fleet's first record" in a.log()


def driver_of(d):
    return fleet_of(d).get("driver")


def rollout_of(d):
    return web(d)["rollout"] or {}


def driving_pair(backends, switchyard, etcd, green_b=None):
    """A elected as the rollout driver before B joins, so the test knows who judges. Both share
    blue-1; A's green is green-1, B's too unless `green_b` is given."""
    blue, green_a = backends.name("blue-1"), backends.name("green-1")
    green_b = green_b or green_a
    a = member(switchyard, etcd, "lb-a", blue, green_a)
    wait_store(a)
    wait_until(lambda: driver_of(a) == "lb-a", 10, 0.02, "A to be elected the rollout driver")
    b = member(switchyard, etcd, "lb-b", blue, green_b)
    wait_store(b)
    wait_until(lambda: driver_of(b) == "lb-a", 10, 0.02, "B to see A drive")
    return a, b


def start_rollout(sender, other, command):
    """`command` sent to `sender`, accepted, and the rollout running on `other` too."""
    reply = sender.admin(command)
    assert reply["ok"] is True, reply
    wait_until(lambda: rollout_of(other).get("state") == "running", 5, 0.01, "the other member to apply the rollout")
    return reply


def test_a_rollout_driven_by_a_killed_member_is_continued_by_another_within_the_lease_ttl(backends, switchyard,
                                                                                            etcd):
    a, b = driving_pair(backends, switchyard, etcd)
    load = Load(b.listen())
    try:
        start_rollout(a, b, "rollout web to=green steps=10,50,100 hold=2s min_connections=5 max_error_rate=0.2")
        assert web(b)["split"] == {"blue": 90, "green": 10}
        time.sleep(0.5)   # mid-step: half a second into a 2 s hold
        killed = time.monotonic()
        a.kill()
        wait_until(lambda: driver_of(b) == "lb-b", 2 + 2, 0.01, "B to take over driving")
        takeover = time.monotonic() - killed
        wait_until(lambda: rollout_of(b).get("step") == 2, 2 + 2 + 2, 0.02, "B to continue the recorded step")
        continued = time.monotonic() - killed
        wait_until(lambda: rollout_of(b).get("state") == "promoted", 15, 0.05, "B to promote")
    finally:
        load.stop()
    print(f"driver killed -> B drives after {takeover * 1000:.0f} ms, B takes step 2 after {continued * 1000:.0f} ms "
          f"(lease_ttl 2 s, hold 2 s)")
    assert takeover <= 2 + 1.0
    r = rollout_of(b)
    assert [s["verdict"] for s in r["history"]] == ["passed", "passed", "passed"]
    assert r["history"][0]["restarts"] == 0
    assert web(b)["split"] == {"blue": 0, "green": 100}
    assert load.errors == 0
    assert "this member judges the fleet's rollouts from now on" in b.log()


def test_upgrading_the_member_that_drives_a_rollout_keeps_the_rollout_going(backends, switchyard, etcd):
    """`switchyardctl upgrade` on the driving member mid-step: the rollout is judged on (by A's new
    generation or, once the old one's lease is gone, by B) and promotes with every step passed."""
    a, b = driving_pair(backends, switchyard, etcd)
    load = Load(b.listen())
    new = None
    try:
        start_rollout(a, b, "rollout web to=green steps=10,50,100 hold=2s min_connections=5 max_error_rate=0.2")
        generation = web(b)["generation"]
        result = a.ctl("upgrade", "--timeout", "20s", timeout=40)
        assert result.returncode == 0, result.stderr
        new = int(result.stdout.split()[2])
        a.wait_exit(10)   # the old generation had no connection to drain
        wait_until(lambda: rollout_of(b).get("state") == "promoted", 20, 0.05,
                   lambda: f"the rollout to promote after the driver's upgrade: {rollout_of(b)}")
        assert driver_of(b) in ("lb-a", "lb-b")
        assert web(b)["generation"] > generation
        # A's new generation serves the promoted intent too.
        wait_until(lambda: rollout_of(a).get("state") == "promoted", 5, 0.05, "A's new generation to apply it")
    finally:
        load.stop()
        if new:
            os.kill(new, signal.SIGTERM)
            wait_until(lambda: not os.path.exists(f"/proc/{new}") or
                       open(f"/proc/{new}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 10, 0.05,
                       "the new generation to exit")
    r = rollout_of(b)
    assert [s["verdict"] for s in r["history"]] == ["passed", "passed", "passed"]
    assert web(b)["split"] == {"blue": 0, "green": 100}
    assert load.errors == 0


def test_a_member_stopped_cleanly_gives_its_lease_back_at_once(backends, switchyard, etcd):
    """With lease_ttl 10s, a SIGTERM'd driver is replaced, and unlisted, well before its lease would expire."""
    blue, green = backends.name("blue-1"), backends.name("green-1")
    members = []
    for name in ("lb-a", "lb-b"):
        d = member(switchyard, etcd, name, blue, green, start=False)
        d.config["fleet"]["lease_ttl"] = "10s"
        d.write_config()
        d.start()
        wait_store(d)
        wait_until(lambda: driver_of(d) == "lb-a", 10, 0.02, "A to drive")
        members.append(d)
    a, b = members
    a.stop()
    wait_until(lambda: driver_of(b) == "lb-b", 2, 0.02, "B to drive once A gave its lease back")
    assert [m["instance"] for m in fleet_of(b)["members"]] == ["lb-b"]


def test_gates_judge_the_sli_summed_over_every_member(backends, switchyard, etcd):
    """A drives; A's green answers every request, B's green resets a third: A's share alone passes
    max_error_rate, the fleet's does not."""
    green_b = ResettingBackend("green-b", every=3)
    backends.started.append(green_b)
    a, b = driving_pair(backends, switchyard, etcd, green_b)
    loads = [Load(a.listen()), Load(b.listen())]
    try:
        reply = a.admin("rollout web to=green steps=50,100 hold=2s min_connections=20 max_error_rate=0.05")
        assert reply["ok"] is True, reply
        wait_until(lambda: rollout_of(a).get("state") == "rolled_back", 15, 0.05, "the gate to roll back")
        wait_until(lambda: rollout_of(b).get("state") == "rolled_back", 5, 0.02, "B to apply the rollback")
    finally:
        for load in loads:
            load.stop()
    assert driver_of(a) == "lb-a"
    r = rollout_of(a)
    first = r["history"][0]
    assert first["verdict"] == "failed", r
    gate = next(g for g in first["gates"] if g["gate"] == "max_error_rate")
    assert gate["verdict"] == "fail" and gate["observed"] > 0.05, first
    # Every error came through B (A's green never failed), yet A's gate counted them.
    assert green_b.resets > 0
    assert first["target"]["errors"] > 0
    assert "max_error_rate" in r["reason"]
    for d in (a, b):
        assert web(d)["split"] == {"blue": 100, "green": 0}
    assert rollout_of(b)["id"] == r["id"]


def test_rollout_status_and_abort_work_from_a_member_that_does_not_drive(backends, switchyard, etcd):
    a, b = driving_pair(backends, switchyard, etcd)
    start_rollout(b, a, "rollout web to=green steps=10,100 hold=30s min_connections=5")
    status_b = b.admin("rollout-status web")
    assert status_b["ok"] is True and status_b["rollout"]["state"] == "running"
    assert status_b["rollout"]["percent"] == 10
    aborted = b.admin("rollout-abort web")
    assert aborted["ok"] is True, aborted
    wait_until(lambda: rollout_of(a).get("state") == "aborted", 5, 0.01, "A to apply the abort")
    for d in (a, b):
        assert web(d)["split"] == {"blue": 100, "green": 0}


def test_a_rollout_step_holds_while_etcd_is_down(backends, switchyard, etcd):
    a, b = driving_pair(backends, switchyard, etcd)
    load = Load(a.listen())
    try:
        start_rollout(a, b, "rollout web to=green steps=10,100 hold=1s min_connections=5")
        etcd.kill()
        wait_store(a, "unavailable")
        time.sleep(2.5)   # well past the 1 s hold: nothing may be decided meanwhile
        for d in (a, b):
            r = rollout_of(d)
            assert (r["state"], r["step"]) == ("running", 1), r
            assert web(d)["split"] == {"blue": 90, "green": 10}
        refused = a.admin("rollout-pause web")
        assert refused["ok"] is False and refused["code"] == "store_unavailable", refused
        etcd.start()
        wait_until(lambda: rollout_of(b).get("state") == "promoted", 20, 0.05, "the rollout to go on once etcd is back")
    finally:
        load.stop()
    assert web(b)["split"] == {"blue": 0, "green": 100}


def test_ctl_wait_returns_once_every_live_member_applied_the_change(pair):
    a, b = pair
    wait_until(lambda: len(fleet_of(a)["members"]) == 2, 10, 0.05, "both members listed")
    result = a.ctl("--wait", "split", "web", "blue=30", "green=70")
    assert result.returncode == 0, result.stderr
    assert "fleet: applied on all 2 live member(s)" in result.stdout
    # No waiting here: --wait already did.
    assert web(b)["split"] == {"blue": 30, "green": 70}
    assert web(b)["generation"] == web(a)["generation"]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_member_costs_well_under_one_percent_cpu(pair):
    a, b = pair
    wait_until(lambda: len(fleet_of(a)["members"]) == 2, 10, 0.05, "both members listed")
    start = {d.pid: cpu_seconds(d.pid) for d in (a, b)}
    began = time.monotonic()
    time.sleep(5)   # measuring idleness: there is no condition to wait for
    elapsed = time.monotonic() - began
    for d in (a, b):
        share = (cpu_seconds(d.pid) - start[d.pid]) / elapsed
        print(f"idle fleet member {d.pid}: {share * 100:.2f}% of one core")
        assert share < 0.01


def change_accepted(d, command):
    """The change, retried while etcd elects a leader (refused meanwhile with store_unavailable)."""
    replies = []

    def attempt():
        reply = d.admin(command)
        replies.append(reply)
        if not reply["ok"]:
            assert reply["code"] == "store_unavailable", reply
        return reply["ok"]

    wait_until(attempt, 15, 0.1, f"'{command}' to be accepted")
    return replies[-1]


def test_killing_the_etcd_leader_of_three_keeps_the_fleet_changing(backends, switchyard, cluster):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    a = member(switchyard, cluster, "lb-a", blue, green)
    b = member(switchyard, cluster, "lb-b", blue, green)
    wait_store(a)
    wait_store(b)
    cluster.leader().kill()
    reply = change_accepted(a, "cutover web green")
    wait_until(lambda: web(b)["generation"] == reply["generation"], 15, 0.02, "B to apply the change")
    assert http_get(b.listen()) == "green-1"
    wait_store(a)
    wait_store(b)


def test_losing_quorum_refuses_changes_keeps_serving_and_recovers(backends, switchyard, cluster):
    blue, green = backends.name("blue-1"), backends.name("green-1")
    a = member(switchyard, cluster, "lb-a", blue, green)
    b = member(switchyard, cluster, "lb-b", blue, green)
    wait_store(a)
    wait_store(b)
    reply = a.admin("cutover web green")
    assert reply["ok"] is True
    wait_until(lambda: web(b)["generation"] == reply["generation"], 5, 0.02, "B to follow")
    lost = cluster.members[1:]
    for m in lost:
        m.kill()
    # Without a leader: no change is accepted (each fails at once: hasleader), and both serve on.
    wait_store(a, "unavailable", timeout=15)
    wait_store(b, "unavailable", timeout=15)
    refused = a.admin("cutover web blue")
    assert refused["ok"] is False and refused["code"] == "store_unavailable", refused
    assert http_get(a.listen()) == "green-1"
    assert http_get(b.listen()) == "green-1"
    for m in lost:
        m.launch()
    for m in cluster.members:
        wait_until(m.healthy, 20, 0.05, f"etcd {m.name} to be healthy again")
    wait_store(a, "ok", timeout=15)
    wait_store(b, "ok", timeout=15)
    back = change_accepted(b, "cutover web blue")
    wait_until(lambda: web(a)["generation"] == back["generation"], 5, 0.02, "A to apply B's change")
    assert http_get(a.listen()) == "blue-1"


def test_a_member_partitioned_from_etcd_serves_on_refuses_changes_and_converges_when_back(backends, switchyard,
                                                                                          cluster):
    """A talks only to etcd member 1, B only to member 2; member 1 stops, the cluster keeps its quorum."""
    blue, green = backends.name("blue-1"), backends.name("green-1")
    n1, n2, _ = cluster.members
    a = member(switchyard, n1, "lb-a", blue, green)
    b = member(switchyard, n2, "lb-b", blue, green)
    wait_store(a)
    wait_store(b)
    n1.kill()
    wait_store(a, "unavailable", timeout=15)
    assert http_get(a.listen()) == "blue-1"
    refused = a.admin("cutover web green")
    assert refused["ok"] is False and refused["code"] == "store_unavailable", refused
    # B's side still has a quorum (two of three): it takes changes, after an election if n1 led.
    reply = change_accepted(b, "cutover web green")
    assert http_get(b.listen()) == "green-1"
    assert fleet_of(b)["store"] == "ok"
    assert web(a)["split"] == {"blue": 100, "green": 0}
    assert http_get(a.listen()) == "blue-1"
    n1.launch()
    wait_until(n1.healthy, 20, 0.05, "etcd n1 to be healthy again")
    wait_store(a, "ok", timeout=15)
    wait_until(lambda: web(a)["generation"] == reply["generation"], 10, 0.02, "A to converge on B's change")
    assert http_get(a.listen()) == "green-1"
    wait_until(lambda: fleet_of(a)["converged"] and fleet_of(b)["converged"], 10, 0.05, "the fleet to converge")


def test_a_malformed_record_in_etcd_is_logged_and_the_intent_kept(pair, etcd):
    a, b = pair
    reply = a.admin("cutover web green")
    assert reply["ok"] is True
    wait_until(lambda: web(b)["generation"] == reply["generation"], 5, 0.02, "B to follow")
    key = base64.b64encode(b"/sy/test/services/web").decode()
    etcd.post("/v3/kv/put", {"key": key, "value": base64.b64encode(b'{"generation": "x"').decode()})
    # Both members must have seen the write: a change A sends before its watch delivers it
    # meets a newer revision than A knows and is refused (generation_mismatch), as designed.
    for member in (a, b):
        wait_until(lambda: "is unusable, keeping the current intent" in member.log(), 5, 0.02,
                   "the member to log the bad record")
    assert web(b)["split"] == {"blue": 0, "green": 100}
    assert http_get(b.listen()) == "green-1"
    # The next change replaces it.
    again = a.admin("cutover web blue")
    assert again["ok"] is True, again
    wait_until(lambda: web(b)["generation"] == again["generation"], 5, 0.02, "B to apply the next change")


def check_refused(d):
    """`switchyard --check` on `d`'s config as it is now: refused with exit 2."""
    d.write_config()
    result = subprocess.run([switchyard_bin(), "-c", str(d.config_path), "--check"], capture_output=True, text=True,
                            timeout=10)
    assert result.returncode == 2, result.stdout + result.stderr
    return result


def enable_auth(etcd, user, password, prefix):
    """root (required before auth can be enabled) and `user`, who may read and write `prefix` only."""
    b64 = lambda text: base64.b64encode(text.encode()).decode()
    etcd.post("/v3/auth/role/add", {"name": "root"})
    etcd.post("/v3/auth/user/add", {"name": "root", "password": "root-pw"})
    etcd.post("/v3/auth/user/grant", {"user": "root", "role": "root"})
    etcd.post("/v3/auth/role/add", {"name": "fleet"})
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    etcd.post("/v3/auth/role/grant", {"name": "fleet", "perm": {"permType": "READWRITE", "key": b64(prefix),
                                                                 "range_end": b64(end)}})
    etcd.post("/v3/auth/user/add", {"name": user, "password": password})
    etcd.post("/v3/auth/user/grant", {"user": user, "role": "fleet"})
    etcd.post("/v3/auth/enable", {})


def test_etcd_user_and_password_from_a_file(backends, switchyard, etcd, tmp_path):
    prefix = "/sy/test/"
    password = "s3cret-Fleet-pw"
    enable_auth(etcd, "lb", password, prefix)
    pw = tmp_path / "etcd.pw"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    blue, green = backends.name("blue-1"), backends.name("green-1")
    auth = {"user": "lb", "password_file": str(pw)}
    a = member(switchyard, etcd, "lb-a", blue, green, start=False)
    b = member(switchyard, etcd, "lb-b", blue, green, start=False)
    for d in (a, b):
        d.config["fleet"].update(auth)
        d.write_config()
        d.start()
        wait_store(d)
    reply = a.admin("cutover web green")
    assert reply["ok"] is True, reply
    wait_until(lambda: web(b)["generation"] == reply["generation"], 5, 0.02, "B to apply A's change")
    for d in (a, b):
        assert password not in d.log()


def test_a_wrong_etcd_password_leaves_the_store_unavailable_and_says_why(backends, switchyard, etcd, tmp_path):
    enable_auth(etcd, "lb", "right-password", "/sy/test/")
    pw = tmp_path / "etcd.pw"
    pw.write_text("wrong-password")
    pw.chmod(0o600)
    blue, green = backends.name("blue-1"), backends.name("green-1")
    a = member(switchyard, etcd, "lb-a", blue, green, start=False)
    a.config["fleet"].update({"user": "lb", "password_file": str(pw)})
    a.write_config()
    a.start()
    wait_until(lambda: "etcd authentication as 'lb' failed" in a.log(), 5, 0.05, "the failure to be logged")
    assert fleet_of(a)["store"] == "unavailable"
    refused = a.admin("cutover web green")
    assert refused["code"] == "store_unavailable"
    assert "wrong-password" not in a.log()


def test_a_password_file_others_can_read_is_refused_at_start(backends, switchyard, etcd, tmp_path):
    pw = tmp_path / "etcd.pw"
    pw.write_text("whatever-password")
    pw.chmod(0o644)
    blue, green = backends.name("blue-1"), backends.name("green-1")
    a = member(switchyard, etcd, "lb-a", blue, green, start=False)
    a.config["fleet"].update({"user": "lb", "password_file": str(pw)})
    result = check_refused(a)
    assert f"fleet.password_file {pw}: mode 0644 lets group or others read or change it; run chmod 600" in result.stderr
    assert "whatever-password" not in result.stderr


def tls_member(switchyard, etcd, name, blue, green, ca_file, cert):
    d = member(switchyard, etcd, name, blue, green, start=False)
    d.config["fleet"].update({"ca_file": str(ca_file), "cert_file": str(cert[0]), "key_file": str(cert[1])})
    d.write_config()
    d.start()
    return d


def test_tls_to_etcd_with_a_client_certificate_and_a_wrong_ca_refused(backends, switchyard, tmp_path):
    ca = make_ca(tmp_path, "fleet-ca")
    other_ca = make_ca(tmp_path, "other-ca")
    server = make_cert(tmp_path, ca, "etcd-server")
    client = make_cert(tmp_path, ca, "lb-client")
    etcd = TlsEtcd(tmp_path, ca, server).start()
    try:
        blue, green = backends.name("blue-1"), backends.name("green-1")
        a = tls_member(switchyard, etcd, "lb-a", blue, green, ca[0], client)
        b = tls_member(switchyard, etcd, "lb-b", blue, green, ca[0], client)
        wait_store(a)
        wait_store(b)
        reply = a.admin("cutover web green")
        assert reply["ok"] is True, reply
        wait_until(lambda: web(b)["generation"] == reply["generation"], 5, 0.02, "B to apply A's change over TLS")
        assert http_get(b.listen()) == "green-1"
        # etcd's certificate is not signed by the CA this member trusts: never reachable, says why.
        c = tls_member(switchyard, etcd, "lb-c", blue, green, other_ca[0], client)
        wait_until(lambda: "TLS handshake failed" in c.log(), 5, 0.05, "the handshake failure to be logged")
        assert "certificate verify failed" in c.log()
        assert fleet_of(c)["store"] == "unavailable"
        assert c.admin("cutover web green")["code"] == "store_unavailable"
        key = client[1].read_text().strip().splitlines()[1]
        for d in (a, b, c):
            assert key not in d.log()
    finally:
        etcd.kill()


def test_an_unusable_tls_file_is_refused_at_start_naming_the_key_and_file(backends, switchyard, etcd, tmp_path):
    ca = make_ca(tmp_path, "fleet-ca")
    client = make_cert(tmp_path, ca, "lb-client")
    not_a_ca = tmp_path / "not-a-ca.pem"
    not_a_ca.write_text("hello\n")
    blue, green = backends.name("blue-1"), backends.name("green-1")
    a = member(switchyard, etcd, "lb-a", blue, green, start=False)
    a.config["fleet"].update({"etcd": [etcd.url.replace("http://", "https://")], "ca_file": str(not_a_ca),
                              "cert_file": str(client[0]), "key_file": str(client[1])})
    result = check_refused(a)
    assert f"fleet.ca_file {not_a_ca}: not a usable CA certificate file (PEM)" in result.stderr
    a.config["fleet"]["ca_file"] = str(ca[0])
    client[1].chmod(0o644)
    result = check_refused(a)
    assert f"fleet.key_file {client[1]}: mode 0644 lets group or others read or change it" in result.stderr
    assert "PRIVATE KEY" not in result.stderr
