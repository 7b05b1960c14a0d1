"""The CoreDNS server block that sends the zone from the cluster's DNS to the resolver (``manifests/coredns/``).

No CoreDNS binary can be installed here (Debian has none, and building it needs a newer Go and the module
proxy), so the block is read with the Corefile grammar CoreDNS uses (Caddy's: tokens split on white space,
``#`` comments, quoted strings, blocks in braces that stand alone, a server block = keys + ``{ directives }``) and
checked for what CoreDNS would refuse or do differently: only plugins CoreDNS ships and options its ``forward``
and ``cache`` plugins take, ``forward .`` to an IP address (forward refuses host names), one block per zone of
``dnssync-config``, and the same block in ``dnssync.server`` and the ``coredns-custom`` ConfigMap. Forwarding a
stub zone to the resolver is exercised with real recursors in ``tests/resolver/test_recursors.py``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest
import yaml

from tests.rendered import MANIFESTS, generated, overlay

PLACEHOLDER = "RESOLVER_CLUSTER_IP"
PLUGINS = {"errors", "cache", "forward", "log", "prometheus", "reload", "loop", "health", "ready", "loadbalance"}
FORWARD_OPTIONS = {"except", "force_tcp", "prefer_udp", "expire", "max_fails", "tls", "tls_servername", "policy",
                   "health_check", "max_concurrent", "next", "failfast_all_unhealthy_upstreams"}


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] = field(default_factory=list)


@dataclass
class ServerBlock:
    keys: list[str]
    directives: list[Directive]


def tokens(text: str) -> list[tuple[int, str]]:
    """``(line, token)`` pairs, as Caddy's lexer splits a Caddyfile."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        i = 0
        while i < len(line):
            if line[i].isspace():
                i += 1
            elif line[i] == "#":
                break
            elif line[i] in "\"`":
                end = line.index(line[i], i + 1)
                found.append((number, line[i + 1:end]))
                i = end + 1
            else:
                end = i
                while end < len(line) and not line[end].isspace():
                    end += 1
                found.append((number, line[i:end]))
                i = end
    return found


def parse(text: str) -> list[ServerBlock]:
    toks = tokens(text)
    pos = 0

    def directives(depth: int) -> list[Directive]:
        nonlocal pos
        out: list[Directive] = []
        while pos < len(toks) and toks[pos][1] != "}":
            line, name = toks[pos]
            pos += 1
            args = []
            while pos < len(toks) and toks[pos][0] == line and toks[pos][1] not in "{}":
                args.append(toks[pos][1])
                pos += 1
            block: list[Directive] = []
            if pos < len(toks) and toks[pos] == (line, "{"):
                pos += 1
                block = directives(depth + 1)
                assert toks[pos][1] == "}", f"line {toks[pos][0]}: unclosed block"
                pos += 1
            out.append(Directive(name, args, block))
        return out

    blocks = []
    while pos < len(toks):
        line = toks[pos][0]
        keys = []
        while toks[pos][0] == line and toks[pos][1] != "{":
            keys.append(toks[pos][1])
            pos += 1
        assert toks[pos][1] == "{", f"line {line}: a server block opens with {{ after its keys"
        pos += 1
        body = directives(1)
        assert pos < len(toks) and toks[pos][1] == "}", f"server block of line {line} is not closed"
        pos += 1
        blocks.append(ServerBlock(keys, body))
    return blocks


def snippet() -> str:
    return (MANIFESTS / "coredns" / "dnssync.server").read_text()


def custom_map() -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((MANIFESTS / "coredns" / "coredns-custom.yaml").read_text())
    return loaded


def zones() -> list[str]:
    config = generated(overlay("dev"), "ConfigMap", "dnssync-config")
    return [z.strip().rstrip(".") for z in config["data"]["zone"].split(",")]


def test_the_block_serves_each_zone_of_the_config_and_forwards_it_to_an_address() -> None:
    blocks = parse(snippet())
    assert [b.keys for b in blocks] == [[f"{z}:53"] for z in zones()]
    for block in blocks:
        names = [d.name for d in block.directives]
        assert set(names) <= PLUGINS and len(names) == len(set(names)), names
        (forward,) = [d for d in block.directives if d.name == "forward"]
        assert forward.args == [".", PLACEHOLDER]
        assert {d.name for d in forward.block} <= FORWARD_OPTIONS
        address = forward.args[1].replace(PLACEHOLDER, "10.96.0.53")
        ipaddress.ip_address(address)  # what `kubectl get service ... clusterIP` gives; host names are refused
        (cache,) = [d for d in block.directives if d.name == "cache"]
        assert len(cache.args) == 1 and 0 < int(cache.args[0]) <= 30, "cache bounds staleness to a few seconds"


def test_the_coredns_custom_config_map_carries_the_same_block() -> None:
    custom = custom_map()
    assert custom["kind"] == "ConfigMap"
    assert custom["metadata"] == {"name": "coredns-custom", "namespace": "kube-system"}
    data = custom["data"]
    assert isinstance(data, dict) and list(data) == ["dnssync.server"]
    assert parse(data["dnssync.server"]) == parse(snippet())


@dataclass(frozen=True)
class Case:
    name: str
    text: str


BROKEN = [
    Case("unclosed server block", "example.org:53 {\n    errors\n"),
    Case("no braces", "example.org:53\n    forward . 10.0.0.1\n"),
    Case("unclosed directive block", "example.org:53 {\n    forward . 10.0.0.1 {\n        force_tcp\n}\n"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c.name for c in BROKEN])
def test_the_reader_refuses_what_coredns_would_not_parse(case: Case) -> None:
    with pytest.raises((AssertionError, IndexError)):
        parse(case.text)
