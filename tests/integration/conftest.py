"""Fixtures for integration tests: real backends, the real switchyard binary."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from backends import EchoBackend, NameBackend, SendingBackend, SilentBackend  # noqa: E402
from daemon import SwitchyardDaemon, DaemonError  # noqa: E402


class BackendFactory:
    def __init__(self):
        self.started = []

    def _keep(self, b):
        self.started.append(b)
        return b

    def name(self, name, host="127.0.0.1"):
        return self._keep(NameBackend(name, host))

    def echo(self, host="127.0.0.1"):
        return self._keep(EchoBackend(host))

    def silent(self, host="127.0.0.1"):
        return self._keep(SilentBackend(host))

    def sending(self, payload, host="127.0.0.1"):
        return self._keep(SendingBackend(payload, host))

    def stop_all(self):
        for b in self.started:
            try:
                b.stop()
            except OSError:
                pass


@pytest.fixture
def backends():
    factory = BackendFactory()
    yield factory
    factory.stop_all()


@pytest.fixture
def switchyard(tmp_path):
    """switchyard(services, **options) starts the daemon and waits until it is ready.
    At teardown any daemon still running gets SIGTERM and must exit 0."""
    started = []

    def start(services, start=True, **options):
        d = SwitchyardDaemon(tmp_path / f"d{len(started)}", services, **options)
        started.append(d)
        if start:
            d.start()
        return d

    yield start

    problems = []
    for d in started:
        if d.proc is None:
            continue
        if d.running():
            try:
                d.stop(expect=0, timeout=10)
            except DaemonError as exc:
                problems.append(str(exc))
        d.kill()
        print(f"--- switchyard stderr ({d.stderr_path}) ---")
        print(d.log_tail(60))
    if problems:
        pytest.fail("\n".join(problems))
