"""Adopting an ExternalDNS installation end to end: a real etcd seeded byte for byte as ExternalDNS's coredns
provider and TXT registry write it, the real CLI (``--once``) and the real controller (continuous), a watch on the
prefix that replays every revision, and a real dnssync-resolver answering."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devtools.localetcd import LocalEtcd
from skydns.etcd import EtcdClient, read_prefix
from skydns.record import decode, host_kind
from syncer import metrics
from syncer.adoption import AdoptionRules
from syncer.cli import parse_config
from syncer.controller import Controller
from syncer.etcd.state import read_current
from syncer.etcd.writer import Writer
from syncer.keys import record_key
from syncer.model import Endpoint
from syncer.plan import calculate
from tests.processes import ask, wait_until
from tests.syncer.helpers import OWNER, PREFIX, run_dnssync
from tests.syncer.running import eventually, truthy

pytestmark = pytest.mark.timeout(60)
EXT = "ext-1"


def ownership(owner: str, resource: str) -> bytes:
    """The coredns provider's value of a TXT-registry record (Go's json.Marshal of its Service)."""
    return (b'{"text":"\\"heritage=external-dns,external-dns/owner=' + owner.encode()
            + b",external-dns/resource=" + resource.encode() + b'\\"","targetstrip":1}')


EXTERNALDNS = {  # what ExternalDNS v0.22 (--provider coredns, --registry txt, --txt-owner-id ext-1) left behind
    "/skydns/org/example/web/2f6b1c3a": b'{"host":"203.0.113.9","targetstrip":1}',
    "/skydns/org/example/a-web/0c9d8e7f": ownership(EXT, "service/demo/web"),
    "/skydns/org/example/api/5a5a5a5a": b'{"host":"203.0.113.21","targetstrip":1}',
    "/skydns/org/example/a-api/6b6b6b6b": ownership("team-b", "service/demo/api"),  # another instance's
    "/skydns/org/example/docs/7c7c7c7c": b'{"host":"docs.example.net","targetstrip":1}',  # no ownership TXT
}
OURS_WEB = record_key(PREFIX, "web.example.org", "A", "203.0.113.10")
SENTINEL = "/skydns/test/watch-sentinel"


def lb_service(name: str, ip: str, ttl: str = "") -> str:
    ttl_line = f'\n    external-dns.alpha.kubernetes.io/ttl: "{ttl}"' if ttl else ""
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: demo
  annotations:
    external-dns.alpha.kubernetes.io/hostname: {name}.example.org{ttl_line}
spec:
  type: LoadBalancer
status:
  loadBalancer:
    ingress:
      - ip: {ip}
"""


DOCS = """apiVersion: v1
kind: Service
metadata:
  name: docs
  namespace: demo
  annotations:
    external-dns.alpha.kubernetes.io/hostname: docs.example.org
spec:
  type: ExternalName
  externalName: docs.example.net
"""


def manifests(folder: Path, **services: str) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in services.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


async def seed(client: EtcdClient, keys: dict[str, bytes]) -> int:
    for key, value in keys.items():
        await client.put(key.encode(), value)
    return (await read_prefix(client, b"/skydns/"))[0]


async def contents(client: EtcdClient) -> dict[str, bytes]:
    _, kvs = await read_prefix(client, b"/skydns/")
    return {kv.key.decode(): kv.value for kv in kvs}


class Watcher:
    """A client watching the prefix from a revision: every event, grouped by the revision that made it."""

    def __init__(self, client: EtcdClient, start: int) -> None:
        self.client, self.start = client, start
        self.revisions: dict[int, list[tuple[str, str, bytes]]] = {}  # revision -> [(kind, key, value)]
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        watch = await self.client.watch_prefix(b"/skydns/", start_revision=self.start)

        async def run() -> None:
            try:
                async for event in watch:
                    self.revisions.setdefault(event.kv.mod_revision, []).append(
                        (event.kind, event.kv.key.decode(), event.kv.value))
            finally:
                await watch.cancel()

        self._task = asyncio.create_task(run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def catch_up(self) -> None:
        """Wait until the watch has delivered everything written so far: a marker key put now (and then left out
        of :attr:`revisions`) must come through."""
        await self.client.put(SENTINEL.encode(), b"{}")
        _, [kv] = await read_prefix(self.client, SENTINEL.encode())
        await eventually(lambda: truthy(kv.mod_revision in self.revisions), "the watch to catch up")
        del self.revisions[kv.mod_revision]
        await self.client.delete(SENTINEL.encode())

    def replay(self, state: dict[str, bytes], names: list[str]) -> list[int]:
        """Apply each revision to ``state``; assert after each that every name answers A. The revisions that
        touched the names' keys."""
        touched = []
        for revision in sorted(self.revisions):
            for kind, key, value in self.revisions[revision]:
                if kind == "DELETE":
                    state.pop(key, None)
                else:
                    state[key] = value
            for name in names:
                assert answers_a(state, name), f"{name} had no A answer at revision {revision}"
            if any(key.startswith(name_path(n) + "/") for _, key, _ in self.revisions[revision] for n in names):
                touched.append(revision)
        return touched


def name_path(name: str) -> str:
    return "/skydns/" + "/".join(reversed(name.split(".")))


def answers_a(state: dict[str, bytes], name: str) -> bool:
    """Whether the keys hold an A record at ``name`` (a ``<name>/<leaf>`` value with an IPv4 host)."""
    path = name_path(name) + "/"
    for key, value in state.items():
        if key.startswith(path) and "/" not in key[len(path):] and host_kind(decode(value, key)).value == "A":
            return True
    return False


def wait_answer(port: int, name: str, rtype: str, expected: tuple[str, set[tuple[str, str, str]]]) -> None:
    wait_until(lambda: ask(port, name, rtype) == expected, 10, f"{name} {rtype} to answer {expected}")


async def test_once_adopts_in_one_revision_and_the_resolver_follows(etcd: EtcdClient, etcd_server: LocalEtcd,
                                                                     resolver: int, tmp_path: Path) -> None:
    folder = manifests(tmp_path / "m", web=lb_service("web", "203.0.113.10", ttl="60"),
                       api=lb_service("api", "203.0.113.20"), docs=DOCS)
    seeded = await seed(etcd, EXTERNALDNS)
    wait_answer(resolver, "web.example.org.", "A", ("NOERROR", {("web.example.org.", "A", "203.0.113.9")}))
    args = ("--once", "--owner-id", OWNER, "--policy", "sync", "--from-manifests", str(folder),
            "--adopt-txt-owner", EXT)

    dry = run_dnssync(*args, "--dry-run", endpoint=etcd_server.endpoint)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert ("* web.example.org A 203.0.113.10 (was 203.0.113.9) ttl=60 service/demo/web adopted from ExternalDNS "
            "owner ext-1, deleting its ownership TXT a-web.example.org") in lines
    assert lines[-1] == "0 to create, 0 to update, 0 to delete, 1 to adopt, 2 skipped"
    api = next(line for line in lines if line.startswith("! service/demo/api"))
    assert "not adopted: ExternalDNS's ownership TXT says owner 'team-b'" in api
    docs = next(line for line in lines if line.startswith("! service/demo/docs"))
    assert "not adopted: its CNAME record /skydns/org/example/docs/7c7c7c7c has no ExternalDNS ownership TXT" in docs
    assert await contents(etcd) == EXTERNALDNS  # a dry run writes nothing

    async with Watcher(etcd, seeded + 1) as watcher:
        done = run_dnssync(*args, endpoint=etcd_server.endpoint)
        assert done.returncode == 0, done.stderr
        assert "adopted=1" in done.stderr and "record_adopted" not in done.stdout
        final = await contents(etcd)
        await watcher.catch_up()
        touched = watcher.replay(dict(EXTERNALDNS), ["web.example.org"])
    assert len(touched) == 1  # one revision: ours put, theirs and the ownership TXT deleted
    assert sorted((kind, key) for kind, key, _ in watcher.revisions[touched[0]]) == [
        ("DELETE", "/skydns/org/example/a-web/0c9d8e7f"), ("DELETE", "/skydns/org/example/web/2f6b1c3a"),
        ("PUT", OURS_WEB)]

    expected = {k: v for k, v in EXTERNALDNS.items() if "/web/" not in k and "/a-web/" not in k}
    assert {k: v for k, v in final.items() if k != OURS_WEB} == expected  # nothing of anyone else touched
    web = decode(final[OURS_WEB], OURS_WEB)
    assert (web.host, web.ttl, web.targetstrip, web.owner, web.resource, web.text) == (
        "203.0.113.10", 60, 1, OWNER, "service/demo/web", "")
    wait_answer(resolver, "web.example.org.", "A", ("NOERROR", {("web.example.org.", "A", "203.0.113.10")}))
    assert ask(resolver, "a-web.example.org.", "TXT")[0] == "NXDOMAIN"  # the ownership TXT is gone
    assert ask(resolver, "api.example.org.", "A") == ("NOERROR", {("api.example.org.", "A", "203.0.113.21")})

    again = run_dnssync(*args, endpoint=etcd_server.endpoint)  # now simply ours: nothing to do
    assert again.returncode == 0, again.stderr
    assert "0 to create, 0 to update, 0 to delete, 2 skipped" in again.stdout
    assert await contents(etcd) == final


async def test_externaldns_flag_names_find_prefixed_ownership_records(etcd: EtcdClient, etcd_server: LocalEtcd,
                                                                      tmp_path: Path) -> None:
    folder = manifests(tmp_path / "m", web=lb_service("web", "203.0.113.10"))
    await seed(etcd, {"/skydns/org/example/web/2f6b1c3a": b'{"host":"203.0.113.9","targetstrip":1}',
                      "/skydns/org/example/txt/a-web/0c9d8e7f": ownership(EXT, "service/demo/web")})
    args = ("--once", "--txt-owner-id", OWNER, "--policy", "upsert-only", "--from-manifests", str(folder),
            "--adopt-txt-owner", EXT, "--txt-suffix", ".txt", "--output", "json")
    done = run_dnssync(*args, endpoint=etcd_server.endpoint)
    assert done.returncode == 0, done.stderr
    assert '"adopted": {' in done.stdout and '"ownership_records": [\n' in done.stdout
    assert await contents(etcd) == {OURS_WEB: (await contents(etcd))[OURS_WEB]}

    bad = run_dnssync("--once", "--owner-id", OWNER, "--policy", "sync", "--from-manifests", str(folder),
                      "--txt-prefix", "x.", endpoint=etcd_server.endpoint)
    assert bad.returncode == 2 and "needs --adopt-txt-owner" in bad.stderr
    bad = run_dnssync("--once", "--owner-id", OWNER, "--policy", "create-only", "--from-manifests", str(folder),
                      "--adopt-txt-owner", EXT, endpoint=etcd_server.endpoint)
    assert bad.returncode == 2 and "create-only" in bad.stderr


@contextlib.asynccontextmanager
async def running(folder: Path, endpoint: str, *extra: str) -> AsyncIterator[tuple[Controller, io.StringIO]]:
    config = parse_config(["--owner-id", OWNER, "--policy", "sync", "--from-manifests", str(folder),
                           "--etcd-endpoints", endpoint, "--http-listen", "127.0.0.1:0", "--resync-interval", "0",
                           "--adopt-txt-owner", EXT, "--txt-suffix=-reg", *extra], env={})
    out = io.StringIO()
    ctl = Controller(config, out=out)
    task = asyncio.create_task(ctl.run())

    async def ready() -> bool:
        if task.done():
            raise AssertionError(f"the controller stopped: {task.result()}")
        return ctl.ready()

    await eventually(ready, "the first full sync")
    try:
        yield ctl, out
    finally:
        ctl.stop()
        assert await asyncio.wait_for(task, 15) == 0


async def test_continuous_adopts_at_start_and_when_the_ownership_record_appears(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    folder = manifests(tmp_path / "m", web=lb_service("web", "203.0.113.10"), late=lb_service("late", "203.0.113.30"))
    externaldns = {"/skydns/org/example/web/2f6b1c3a": b'{"host":"203.0.113.9","targetstrip":1}',
                   "/skydns/org/example/a-web-reg/0c9d8e7f": ownership(EXT, "service/demo/web"),
                   "/skydns/org/example/late/3d3d3d3d": b'{"host":"203.0.113.29","targetstrip":1}'}
    seeded = await seed(etcd, externaldns)
    adopted = metrics.ADOPTIONS._value.get()
    late_txt = "/skydns/org/example/a-late-reg/4e4e4e4e"
    ours_late = record_key(PREFIX, "late.example.org", "A", "203.0.113.30")
    async with Watcher(etcd, seeded + 1) as watcher, running(folder, etcd_server.endpoint) as (ctl, _):
        await eventually(lambda: truthy(ctl.idle()), "the first sync to settle")
        held = await contents(etcd)
        assert OURS_WEB in held and "/skydns/org/example/a-web-reg/0c9d8e7f" not in held
        assert "/skydns/org/example/late/3d3d3d3d" in held and ours_late not in held  # no TXT yet: not ours

        # ExternalDNS wrote its ownership TXT after the record (separate puts): the name is adopted now.
        await etcd.put(late_txt.encode(), ownership(EXT, "service/demo/late"))

        async def late_adopted() -> bool:
            now = await contents(etcd)
            return ours_late in now and late_txt not in now and "/skydns/org/example/late/3d3d3d3d" not in now

        await eventually(late_adopted, "late.example.org to be adopted")
        # counted once the writer has the commit's answer, which can be after a watcher sees the keys
        await eventually(lambda: truthy(metrics.ADOPTIONS._value.get() == adopted + 2), "both adoptions counted")
        await watcher.catch_up()
    touched = watcher.replay(dict(externaldns), ["web.example.org", "late.example.org"])
    for revision in touched:  # each adoption: ours put and theirs deleted in the one revision
        kinds = {(kind, key.rsplit("/", 2)[-2]) for kind, key, _ in watcher.revisions[revision]}
        assert kinds in ({("PUT", "web"), ("DELETE", "web"), ("DELETE", "a-web-reg")},
                         {("PUT", "late"), ("DELETE", "late"), ("DELETE", "a-late-reg")}), kinds
    assert len(touched) == 2


async def test_continuous_dry_run_prints_the_adoption(etcd: EtcdClient, etcd_server: LocalEtcd,
                                                      tmp_path: Path) -> None:
    folder = manifests(tmp_path / "m", web=lb_service("web", "203.0.113.10"))
    externaldns = {"/skydns/org/example/web/2f6b1c3a": b'{"host":"203.0.113.9","targetstrip":1}',
                   "/skydns/org/example/a-web-reg/0c9d8e7f": ownership(EXT, "service/demo/web")}
    await seed(etcd, externaldns)
    async with running(folder, etcd_server.endpoint, "--dry-run") as (_, out):
        await eventually(lambda: truthy("1 to adopt" in out.getvalue()), "the plan")
    assert ("* web.example.org A 203.0.113.10 (was 203.0.113.9) ttl=- service/demo/web adopted from ExternalDNS "
            "owner ext-1, deleting its ownership TXT a-web-reg.example.org") in out.getvalue().splitlines()
    assert await contents(etcd) == externaldns


async def _plan_and_race(client: EtcdClient, race: dict[str, bytes]) -> tuple[Any, dict[str, bytes]]:
    """Plan the adoption of web.example.org, let ExternalDNS write ``race`` before our transaction, apply."""
    externaldns = {"/skydns/org/example/web/2f6b1c3a": b'{"host":"203.0.113.9","targetstrip":1}',
                   "/skydns/org/example/a-web/0c9d8e7f": ownership(EXT, "service/demo/web")}
    await seed(client, externaldns)
    rules = AdoptionRules((EXT,))
    desired = [Endpoint("web.example.org", "A", ("203.0.113.10",), None, "service/demo/web")]
    plan = calculate(desired, (await read_current(client, PREFIX)).records, OWNER, "sync", adoption=rules)
    assert [c.action for c in plan.changes] == ["adopt"]
    await seed(client, race)
    writer = Writer(client, prefix=PREFIX, owner_id=OWNER, policy="sync", adoption=rules)
    result = await writer.apply(plan.changes, desired)
    return result, await contents(client)


async def test_a_concurrent_change_by_externaldns_is_re_read_with_its_ownership_record(etcd: EtcdClient) -> None:
    result, held = await _plan_and_race(etcd, {"/skydns/org/example/web/2f6b1c3a":
                                               b'{"host":"203.0.113.8","targetstrip":1}'})
    assert result.replanned == ["web.example.org"] and result.adopted == 1 and not result.failed
    assert held == {OURS_WEB: held[OURS_WEB]}  # re-planned with the TXT re-read: adopted, everything of theirs gone


async def test_an_ownership_record_that_changes_hands_meanwhile_stops_the_adoption(etcd: EtcdClient) -> None:
    race = {"/skydns/org/example/a-web/0c9d8e7f": ownership("team-b", "service/demo/web")}
    result, held = await _plan_and_race(etcd, race)
    assert result.replanned == ["web.example.org"] and result.adopted == 0 and not result.failed
    assert OURS_WEB not in held and held["/skydns/org/example/a-web/0c9d8e7f"] == race[
        "/skydns/org/example/a-web/0c9d8e7f"]
