"""Headless Chromium for tests: one-shot --dump-dom/--screenshot runs, and a live page driven
over the DevTools protocol on --remote-debugging-pipe (no extra Python package needed)."""

import json
import os
import select
import shutil
import subprocess
import tempfile
import time

# --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
COMMON_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check"]


def chromium():
    path = shutil.which("chromium")
    assert path, "chromium not found: scripts/install-deps.sh installs Debian's chromium package"
    return path


def profile_dir(parent):
    # A profile of its own per browser: a second Chromium on a profile still in use
    # hands the URL to the first one and exits at once, printing nothing.
    return tempfile.mkdtemp(prefix="chromium-", dir=parent)


class LivePage:
    """A page that stays open: evaluate JavaScript in it while the test changes the daemon.
    Commands go to Chromium's fd 3 and replies come from its fd 4, NUL-terminated JSON."""

    def __init__(self, url, workdir):
        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()

        def child_fds():
            a, b = os.dup(commands_r), os.dup(replies_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self._stderr = open(os.path.join(workdir, "chromium.stderr"), "wb")
        self.proc = subprocess.Popen(
            [chromium(), *COMMON_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile_dir(workdir)}",
             "about:blank"],
            preexec_fn=child_fds, close_fds=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._stderr, env=dict(os.environ, HOME=str(workdir)))
        os.close(commands_r)
        os.close(replies_w)
        self._buffer = b""
        self._next_id = 0
        target = self._call("Target.createTarget", url=url)["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _call(self, method, session=None, timeout=30, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium did not answer {method}")
            ready, _, _ = select.select([self._replies], [], [], left)
            if ready:
                chunk = os.read(self._replies, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium exited")
                self._buffer += chunk

    def evaluate(self, expression):
        result = self._call("Runtime.evaluate", session=self._session, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def close(self):
        try:
            self.proc.kill()
            self.proc.wait(10)
        finally:
            os.close(self._commands)
            os.close(self._replies)
            self._stderr.close()
