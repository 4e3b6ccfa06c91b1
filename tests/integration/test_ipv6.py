"""IPv6 listeners and backends on [::1] (skipped where ::1 is unavailable)."""

import os

import pytest

from clients import echo_roundtrip, http_get, sha256
from daemon import service
from netutil import free_address, ipv6_loopback_available

pytestmark = pytest.mark.skipif(not ipv6_loopback_available(), reason="::1 is not available")


def test_ipv6_listener_to_ipv6_backend(backends, switchyard):
    echo = backends.echo("::1")
    d = switchyard([service("v6", free_address("::1"), blue=[echo])])
    assert d.listen().startswith("[::1]:")
    payload = os.urandom(1024 * 1024)
    assert sha256(echo_roundtrip(d.listen(), payload)) == sha256(payload)


def test_ipv4_listener_to_ipv6_backends_and_back(backends, switchyard):
    v6 = backends.name("six", "::1")
    v4 = backends.name("four")
    d = switchyard([
        service("to6", free_address(), blue=[v6]),
        service("to4", free_address("::1"), blue=[v4]),
    ])
    assert http_get(d.listen("to6")) == "six"
    assert http_get(d.listen("to4")) == "four"
