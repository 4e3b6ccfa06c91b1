"""affinity: client — each client address keeps its colour while the split moves,
and moves only one way (issue 9). Clients come from many 127.0.0.0/8 source addresses."""

from collections import Counter

from daemon import service
from netutil import free_address
from source_clients import http_get_from, loopback_sources

CLIENTS = 120


def colours(d, sources, repeat=2):
    """Each source's colour; asserts a source sees one colour on every connection."""
    seen = {}
    for src in sources:
        names = {http_get_from(src, d.listen())[0] for _ in range(repeat)}
        assert len(names) == 1, f"{src} saw {names} at one split"
        seen[src] = names.pop()
    return seen


def set_split(d, blue, green):
    reply = d.admin(f"split web blue={blue} green={green}")
    assert reply["ok"], reply


def test_clients_keep_their_colour_while_the_split_rises_and_move_only_to_green(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green], affinity="client",
                            split={"blue": 100, "green": 0})])
    sources = loopback_sources(CLIENTS)
    before = colours(d, sources)
    assert set(before.values()) == {"blue"}
    greens = []
    for share in (1, 5, 25, 50, 100):
        set_split(d, 100 - share, share)
        now = colours(d, sources)
        for src in sources:
            if before[src] == "green":
                assert now[src] == "green", f"{src} went back to blue at green={share}"
        greens.append(sum(1 for c in now.values() if c == "green"))
        before = now
    assert greens == sorted(greens)
    assert greens[-1] == CLIENTS
    # About half at 50% (120 addresses: a generous band).
    assert 0.3 * CLIENTS <= greens[3] <= 0.7 * CLIENTS, greens


def test_lowering_greens_share_only_moves_clients_back_to_blue(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green], affinity="client",
                            split={"blue": 50, "green": 50})])
    sources = loopback_sources(CLIENTS, block=4)
    before = colours(d, sources, repeat=1)
    for share in (25, 5, 0):
        set_split(d, 100 - share, share)
        now = colours(d, sources, repeat=1)
        for src in sources:
            if before[src] == "blue":
                assert now[src] == "blue", f"{src} went to green when green's share fell to {share}"
        before = now
    assert set(before.values()) == {"blue"}


def test_rollback_returns_every_client_to_the_colour_it_had(backends, switchyard):
    blue, green = backends.name("blue"), backends.name("green")
    d = switchyard([service("web", free_address(), blue=[blue], green=[green], affinity="client",
                            split={"blue": 75, "green": 25})])
    sources = loopback_sources(60, block=5)
    at25 = colours(d, sources, repeat=1)
    set_split(d, 50, 50)
    assert d.admin("rollback web")["ok"]
    assert colours(d, sources, repeat=1) == at25


def test_hash_keeps_each_client_address_on_one_backend_inside_its_pool(backends, switchyard):
    names = [backends.name(f"b{i}") for i in range(3)]
    d = switchyard([service("web", free_address(), balance="hash", blue=names)])
    sources = loopback_sources(60, block=6)
    first = colours(d, sources, repeat=3)
    # Spread over the backends, and stable.
    assert len(Counter(first.values())) == 3, Counter(first.values())
    assert colours(d, sources, repeat=1) == first
