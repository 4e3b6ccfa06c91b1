"""The status page at / rendered by a real browser (Debian's headless Chromium): the DOM shows
every service, pool, split and backend from /status, and shows a new split after `split`."""

import html.parser
import os
import subprocess

from browser import COMMON_FLAGS, LivePage, chromium, profile_dir
from daemon import service
from netutil import free_address
from waiters import wait_until


def browse(url, tmp_path, *extra, timeout=60):
    """Loads `url` headless and returns the rendered DOM (--dump-dom), or runs `extra` (--screenshot)."""
    # --virtual-time-budget lets the page's fetch of /status finish before the DOM is dumped.
    cmd = [chromium(), *COMMON_FLAGS, f"--user-data-dir={profile_dir(tmp_path)}", "--virtual-time-budget=3000",
           *(extra or ("--dump-dom",)), url]
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


def test_an_open_page_follows_a_split_without_reloading(backends, switchyard, tmp_path):
    metrics = free_address()
    d = switchyard([service("web", free_address(), blue=[backends.name("blue-1")], green=[backends.name("green-1")])],
                   extra={"metrics": {"listen": metrics}})
    page = LivePage(f"http://{metrics}/", tmp_path)
    try:
        intent = "document.querySelector('[data-service=\"web\"] [data-split=\"intent\"] .bar')?.dataset.blue"
        wait_until(lambda: page.evaluate(intent) == "100", 30, 0.1, "the page to show blue=100")
        page.evaluate("window.stillTheSamePage = true")
        assert d.admin("split web blue=30 green=70")["ok"] is True
        # The page polls /status every 2 s: the bar moves within a few seconds, in the same document.
        wait_until(lambda: page.evaluate(intent) == "30", 10, 0.1, "the open page to show the new split")
        assert page.evaluate("window.stillTheSamePage") is True
        effective = intent.replace("intent", "effective").replace(".blue", ".green")
        assert page.evaluate(effective) == "70"
        assert page.evaluate("document.getElementById('conn').className") == "meta"   # not stale
    finally:
        page.close()
