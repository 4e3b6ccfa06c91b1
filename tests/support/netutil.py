"""Addresses and ports for tests."""

import socket


def split_address(address):
    """"127.0.0.1:8080" or "[::1]:8080" -> (host, port, family)."""
    host, _, port = address.rpartition(":")
    if host.startswith("["):
        return host[1:-1], int(port), socket.AF_INET6
    return host, int(port), socket.AF_INET


def join_address(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (bind to 0, read it back, release)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_address(host="127.0.0.1"):
    return join_address(host, free_port(host))


def dead_address(host="127.0.0.1"):
    """An address nobody listens on: a port we bound and closed, so connects are refused."""
    return free_address(host)


def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            with socket.create_connection(("::1", port), timeout=1):
                pass
        return True
    except OSError:
        return False


def port_is_free(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
