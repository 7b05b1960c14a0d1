"""What dnssync writes, a real dnssync-resolver answers: subprocesses, real etcd, real UDP queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.localetcd import LocalEtcd
from tests.processes import ask
from tests.syncer.helpers import EXAMPLES, OWNER, ROOT, run_dnssync
from tests.syncer.running import wait_answer

pytestmark = pytest.mark.timeout(60)


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
