"""What dnssync writes, a real dnssync-resolver answers: subprocesses, real etcd, real UDP queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localetcd import LocalEtcd, free_port
from resolver.server import free_dns_port
from tests.processes import Process, ask, http_status, wait_until
from tests.syncer.helpers import EXAMPLES, OWNER, ROOT, run_dnssync

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def resolver(etcd_server: LocalEtcd, tmp_path: Path) -> Iterator[int]:
    """A dnssync-resolver for example.org on free ports; yields its DNS port once /readyz says so."""
    dns_port, http_port = free_dns_port(), free_port()
    proc = Process(["--zone", "example.org.", "--etcd-endpoints", etcd_server.endpoint, "--listen",
                    f"127.0.0.1:{dns_port}", "--http-listen", f"127.0.0.1:{http_port}", "--log-level", "warning"],
                   tmp_path / "resolver.log")
    try:
        wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 20, "the resolver to be ready")
        yield dns_port
    finally:
        proc.stop()


def wait_answer(port: int, name: str, rtype: str, expected: set[tuple[str, str, str]]) -> None:
    """Bounded poll: the resolver follows etcd through a watch."""
    wait_until(lambda: ask(port, name, rtype)[1] == expected, 10, f"{name} {rtype} to answer {expected}")


async def test_the_resolver_answers_every_record_the_syncer_wrote(etcd: object, etcd_server: LocalEtcd,
                                                                  resolver: int, tmp_path: Path) -> None:
    done = run_dnssync("--once", "--owner-id", OWNER, "--policy", "sync", "--from-manifests", EXAMPLES,
                       endpoint=etcd_server.endpoint)
    assert done.returncode == 0, done.stderr
    wait_answer(resolver, "web.example.org.", "A", {("web.example.org.", "A", "203.0.113.10")})
    assert ask(resolver, "web.example.org.", "A")[0] == "NOERROR"
    wait_answer(resolver, "api.example.org.", "A", {("api.example.org.", "A", "203.0.113.20")})
    wait_answer(resolver, "shop.example.org.", "A", {("shop.example.org.", "A", "203.0.113.20")})
    wait_answer(resolver, "game.example.org.", "A", {("game.example.org.", "A", "198.51.100.11"),
                                                     ("game.example.org.", "A", "198.51.100.12")})
    wait_answer(resolver, "_game._tcp.game.example.org.", "SRV",
                {("_game._tcp.game.example.org.", "SRV", "10 100 30777 game.example.org.")})
    wait_answer(resolver, "docs.example.org.", "A", {("docs.example.org.", "CNAME", "docs.example.net.")})

    # A change in the cluster reaches DNS: the next sync rewrites the record, the resolver follows.
    web = (ROOT / EXAMPLES / "web-loadbalancer.yaml").read_text().replace("203.0.113.10", "203.0.113.77")
    done = run_dnssync("--once", "--owner-id", OWNER, "--policy", "sync", "--from-manifests", "-",
                       endpoint=etcd_server.endpoint, stdin=web)
    assert done.returncode == 0, done.stderr
    wait_answer(resolver, "web.example.org.", "A", {("web.example.org.", "A", "203.0.113.77")})
    wait_answer(resolver, "api.example.org.", "A", set())  # deleted: only web is wanted now
