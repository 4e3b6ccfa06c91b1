"""The status page at / rendered by a real browser (Debian's headless Chromium): the DOM shows
every service, pool, split and backend from /status, and shows a new split after `split`."""

import html.parser
import os
import shutil
import subprocess
import tempfile

from daemon import service
from netutil import free_address
from waiters import wait_until


def chromium():
    path = shutil.which("chromium")
    assert path, "chromium not found: scripts/install-deps.sh installs Debian's chromium package"
    return path


def browse(url, tmp_path, *extra, timeout=60):
    """Loads `url` headless and returns the rendered DOM (--dump-dom), or runs `extra` (--screenshot)."""
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    # --virtual-time-budget lets the page's fetch of /status finish before the DOM is dumped.
    # A profile of its own per run: a second Chromium on a profile still in use
    # hands the URL to the first one and exits at once, printing nothing.
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
           "--virtual-time-budget=3000", *(extra or ("--dump-dom",)), url]
    env = dict(os.environ, HOME=str(tmp_path))
    result = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result.stdout.decode()


class Dom(html.parser.HTMLParser):
    """The rendered elements' data-* attributes and the page's text."""

    def __init__(self, text):
        super().__init__()
        self.elements = []
        self.text = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def having(self, attr, value=None):
        return [a for _, a in self.elements if attr in a and (value is None or a[attr] == value)]


def rendered(address, tmp_path, until):
    """The DOM once `until(dom)` holds (a slow machine may need a second load)."""
    def load():
        dom = Dom(browse(f"http://{address}/", tmp_path))
        return dom if until(dom) else None
    return wait_until(load, 90, 0.5, "the status page to render /status")


def test_browser_renders_services_pools_splits_and_backends_and_follows_a_split(backends, switchyard, tmp_path):
    blue = [backends.name("blue-1"), backends.name("blue-2")]
    green = [backends.name("green-1")]
    metrics = free_address()
    d = switchyard([service("web", free_address(), blue=blue, green=green),
                    service("api", free_address(), blue=[backends.name("api-blue")])],
                   extra={"metrics": {"listen": metrics}})

    dom = rendered(metrics, tmp_path, lambda dom: dom.having("data-service", "api"))
    assert [a["data-service"] for a in dom.having("data-service")] == ["web", "api"]
    assert len(dom.having("data-pool", "blue")) == 2 and len(dom.having("data-pool", "green")) == 2
    shown = {a["data-backend"] for a in dom.having("data-backend")}
    assert shown == {b.address for b in blue + green} | {d.services[1]["pools"]["blue"][0]["address"]}
    bars = [a for a in dom.having("data-blue")]
    # web: intent and effective 100/0; api the same.
    assert [(a["data-blue"], a["data-green"]) for a in bars] == [("100", "0")] * 4
    text = "".join(dom.text)
    for b in blue + green:
        assert b.address in text
    assert "up" in text

    assert d.admin("split web blue=30 green=70")["ok"] is True
    dom = rendered(metrics, tmp_path, lambda dom: any(a.get("data-blue") == "30" for a in dom.having("data-blue")))
    web_bars = [(a["data-blue"], a["data-green"]) for a in dom.having("data-blue")][:2]
    assert web_bars == [("30", "70"), ("30", "70")]   # intent and effective
    assert "30/70" in "".join(dom.text)


def test_browser_screenshot_of_the_status_page(backends, switchyard, tmp_path):
    d = switchyard([service("web", free_address(), blue=[backends.name("blue-1")], green=[backends.name("green-1")])],
                   extra={"metrics": {"listen": free_address()}})
    metrics = d.config["metrics"]["listen"]
    assert d.admin("split web blue=80 green=20")["ok"] is True
    shot = tmp_path / "status.png"
    browse(f"http://{metrics}/", tmp_path, f"--screenshot={shot}", "--window-size=390,844")   # a phone
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
