"""contrib/: the Prometheus alert rules pass `promtool check rules` and their unit tests, and
the rules and the Grafana dashboard use only metric names the daemon exports."""

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from clients import echo_roundtrip
from daemon import service
from netutil import dead_address, free_address
from waiters import wait_until

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
RULES = CONTRIB / "prometheus" / "alerts.yml"
RULE_TESTS = CONTRIB / "prometheus" / "alerts_test.yml"
DASHBOARD = CONTRIB / "grafana" / "switchyard.json"

# PromQL words that look like metric names but are not.
PROMQL_WORDS = {
    "sum", "by", "on", "rate", "increase", "histogram_quantile", "max", "and", "or", "unless", "group_left",
    "changes", "le", "instance", "service", "pool", "backend", "reason", "outcome", "result", "state", "worker",
}


def promtool():
    path = shutil.which("promtool")
    assert path, "promtool not found: scripts/install-deps.sh installs Debian's prometheus package"
    return path


def metric_names(expr):
    """Metric names in a PromQL expression (identifiers outside {...} label matchers and strings)."""
    expr = re.sub(r'\{[^}]*\}', "", expr)
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r'\[[^\]]*\]', "", expr)
    expr = re.sub(r'\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)', "", expr)
    return {w for w in re.findall(r'\b[a-zA-Z_:][a-zA-Z0-9_:]*\b', expr) if w not in PROMQL_WORDS}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every sample name a daemon with every feature in use exports."""
    from daemon import SwitchyardDaemon
    from backends import EchoBackend
    echo, echo2 = EchoBackend("127.0.0.1"), EchoBackend("127.0.0.1")
    metrics = free_address()
    svc = service("web", free_address(), blue=[echo.address, dead_address()], green=[echo2.address], retries=1,
                  health={"interval": "100ms", "timeout": "100ms"})
    svc["pools"]["blue"][0]["max_connections"] = 50   # exports switchyard_backend_max_connections
    d = SwitchyardDaemon(tmp_path_factory.mktemp("contrib"), [svc], extra={"metrics": {"listen": metrics}})
    d.start()
    try:
        for _ in range(4):
            assert echo_roundtrip(d.listen(), b"x") == b"x"

        def scrape():
            with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as r:
                return r.read().decode()
        text = wait_until(lambda: (lambda t: t if re.search(r'check_failures_total\{[^}]*refused"\} [1-9]', t) else None)(
            scrape()), 5, 0.05, "a failed check")
        yield {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    finally:
        d.stop()
        echo.stop()
        echo2.stop()


def test_alert_rules_pass_promtool_check_rules():
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_alert_rules_pass_their_unit_tests():
    result = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_cover_what_operators_page_on():
    names = set(re.findall(r'^\s*- alert: (\w+)$', RULES.read_text(), re.M))
    assert names == {"SwitchyardBackendDown", "SwitchyardNoHealthyBackendInLivePool", "SwitchyardFallbackActive",
                     "SwitchyardPanic", "SwitchyardRolloutRolledBack", "SwitchyardStateSaveFailing",
                     "SwitchyardReloadFailed"}


def test_alert_rules_use_only_exported_metrics(exported):
    exprs = re.findall(r'expr: \|\n((?:\s{10,}.*\n)+)|expr: (.+)', RULES.read_text())
    used = set()
    for block, line in exprs:
        used |= metric_names(block or line)
    assert used, "no expressions found"
    assert used <= exported, sorted(used - exported)


def test_dashboard_imports_and_uses_only_exported_metrics(exported):
    dash = json.loads(DASHBOARD.read_text())
    # What Grafana's import needs: a title, a uid, a schema version and the data source input.
    assert dash["title"] == "switchyard" and dash["uid"] == "switchyard" and dash["schemaVersion"] >= 30
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    exprs += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    used = set()
    for e in exprs:
        used |= metric_names(re.sub(r"label_values\((\w+).*", r"\1", e))
    assert used <= exported, sorted(used - exported)
    # What the dashboard is for: traffic per pool, split intent vs effective, health, rollouts, p99s.
    for wanted in ("switchyard_pool_connections_total", "switchyard_pool_weight", "switchyard_pool_effective_weight",
                   "switchyard_backend_up", "switchyard_rollout_step", "switchyard_rollouts_total",
                   "switchyard_upstream_connect_seconds_bucket", "switchyard_upstream_ttfb_seconds_bucket"):
        assert wanted in used, wanted
    # Panels do not overlap on the grid.
    cells = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        for dx in range(g["w"]):
            for dy in range(g["h"]):
                cell = (g["x"] + dx, g["y"] + dy)
                assert cell not in cells, f"panel {p['title']!r} overlaps another"
                cells.add(cell)
