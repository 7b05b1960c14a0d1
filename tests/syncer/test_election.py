"""Several syncer replicas: one writer elected through etcd, and a leader that lost the lead fenced out.

Real etcd, the fake API server, real controllers (in this process where a test needs to await their state,
as subprocesses where it needs SIGSTOP/SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from devtools.localetcd import LocalEtcd, free_port
from skydns.etcd import EtcdClient, compare_absent, put_op, read_prefix, txn
from syncer import metrics
from syncer.config import SyncConfig
from syncer.controller import Controller
from syncer.etcd.election import Election, Fenced
from syncer.etcd.writer import MAX_TXN_OPS, Writer
from syncer.plan import calculate
from tests.conftest import etcd_settings
from tests.fakekube import FakeKubeServer
from tests.processes import http_status, wait_until
from tests.syncer.helpers import ROOT, ep
from tests.syncer.running import eventually, truthy
from tests.syncer.test_continuous import OWNER, _has, answers, config_for, lb_service

ELECTION = b"/dnssync/election/" + OWNER.encode() + b"/"


@contextlib.asynccontextmanager
async def started(config: SyncConfig) -> AsyncIterator[tuple[Controller, asyncio.Task[int]]]:
    ctl = Controller(config, out=io.StringIO())
    task = asyncio.create_task(ctl.run())
    try:
        await eventually(lambda: truthy(ctl.ready() or task.done()), "the controller ready")
        assert not task.done(), task.result()
        yield ctl, task
    finally:
        ctl.stop()
        await asyncio.wait_for(task, 15)


async def candidates(etcd: EtcdClient) -> list[bytes]:
    _, kvs = await read_prefix(etcd, ELECTION)
    return [kv.key for kv in sorted(kvs, key=lambda kv: kv.create_revision)]


async def test_a_single_replica_leads_and_writes(etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(lb_service("web", "10.0.0.1"))
        async with started(config_for(kube, etcd_server.endpoint, tmp_path)) as (ctl, _):
            await eventually(lambda: truthy(ctl.leading and ctl.synced), "the lead")
            assert await answers(etcd) == {"web.example.org": ["10.0.0.1"]}
            assert ctl.health()[1]["role"] == "leader" and metrics.LEADER._value.get() == 1  # type: ignore[attr-defined]
            assert len(await candidates(etcd)) == 1
        assert await candidates(etcd) == []  # the lease was revoked on the way out


async def test_two_replicas_race_one_leads_the_other_stands_by_and_takes_over_at_once(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(lb_service("web", "10.0.0.1"))
        config = config_for(kube, etcd_server.endpoint, tmp_path)
        async with started(config) as (a, _), started(config) as (b, _):
            await eventually(lambda: truthy(a.leading != b.leading), "exactly one leader")
            leader, standby = (a, b) if a.leading else (b, a)
            assert standby.ready() and standby.health()[1]["role"] == "standby"  # warm caches: ready too
            assert len(await candidates(etcd)) == 2
            kube.apply(lb_service("web", "10.0.0.2"))
            await eventually(lambda: _has(etcd, "web.example.org", ["10.0.0.2"]), "the leader's write")
            leader.stop()  # SIGTERM: the lease is revoked, the standby leads at once
            started_at = time.monotonic()
            await eventually(lambda: truthy(standby.leading), "the standby to lead", timeout=5)
            assert time.monotonic() - started_at < 2.0
            kube.apply(lb_service("web", "10.0.0.3"))
            await eventually(lambda: _has(etcd, "web.example.org", ["10.0.0.3"]), "the new leader's write")


async def test_a_write_without_the_lead_is_fenced_and_commits_nothing(etcd: EtcdClient) -> None:
    election = Election(etcd, "/dnssync/election/", OWNER, ttl=10)
    leadership = await election.campaign(timeout=5)
    writer = Writer(etcd, prefix="/skydns", owner_id=OWNER, policy="sync")
    writer.fence = leadership
    desired = [ep("web.example.org", "A", "10.0.0.1")]
    await writer.apply(calculate(desired, [], OWNER, "sync").changes, desired)
    assert await answers(etcd) == {"web.example.org": ["10.0.0.1"]}
    # The lease runs out while this leader is paused; a successor takes the lead and writes newer state.
    await etcd.revoke_lease(election.lease_id)
    successor = Election(etcd, "/dnssync/election/", OWNER, ttl=10)
    await successor.campaign(timeout=5)
    before, _ = await read_prefix(etcd, b"/skydns/")
    stale = [ep("web.example.org", "A", "10.0.0.9")]
    current = await _records(etcd)
    try:
        await writer.apply(calculate(stale, current, OWNER, "sync").changes, stale)
        raise AssertionError("the stale leader's write went through")
    except Fenced:
        pass
    after, _ = await read_prefix(etcd, b"/skydns/")
    assert after == before and await answers(etcd) == {"web.example.org": ["10.0.0.1"]}
    await successor.resign()


async def _records(etcd: EtcdClient) -> list:  # type: ignore[type-arg]
    from syncer.etcd.state import read_current

    return (await read_current(etcd, "/skydns")).records


async def test_a_leader_whose_key_is_taken_steps_down_without_writing(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(lb_service("web", "10.0.0.1"))
        async with started(config_for(kube, etcd_server.endpoint, tmp_path)) as (ctl, _):
            await eventually(lambda: truthy(ctl.leading and ctl.synced), "the lead")
            assert ctl.election is not None
            fenced = metrics.FENCED_TXNS._value.get()  # type: ignore[attr-defined]
            # As if this leader had been paused past its TTL: its key is gone and another candidate leads.
            await etcd.revoke_lease(ctl.election.lease_id)
            other = Election(etcd, "/dnssync/election/", OWNER, ttl=10)
            await other.campaign(timeout=5)
            kube.apply(lb_service("web", "10.0.0.66"))  # its cache moves on, but it may not write any more
            await eventually(lambda: truthy(not ctl.leading), "the old leader stepping down")
            assert metrics.FENCED_TXNS._value.get() > fenced  # type: ignore[attr-defined]
            assert await answers(etcd) == {"web.example.org": ["10.0.0.1"]}
            assert ctl.health()[1]["role"] == "standby"
            await other.resign()  # the old leader campaigns again and leads, from a full sync
            await eventually(lambda: _has(etcd, "web.example.org", ["10.0.0.66"]), "the re-elected leader's sync")


async def test_etcd_unreachable_longer_than_the_ttl_makes_the_leader_step_down(
        own_etcd: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(lb_service("web", "10.0.0.1"))
        config = config_for(kube, own_etcd.endpoint, tmp_path, "--election-ttl", "2s")
        async with started(config) as (ctl, _):
            await eventually(lambda: truthy(ctl.leading), "the lead")
            own_etcd.stop()
            await eventually(lambda: truthy(not ctl.leading), "stepping down", timeout=15)
            own_etcd.start()
            await eventually(lambda: truthy(ctl.leading), "leading again", timeout=20)
            kube.apply(lb_service("web", "10.0.0.2"))
            client = EtcdClient(etcd_settings(own_etcd))
            try:
                await eventually(lambda: _has(client, "web.example.org", ["10.0.0.2"]), "writes again", timeout=20)
            finally:
                await client.close()


def _syncer(folder: Path, endpoint: str, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "syncer", "--owner-id", OWNER, "--policy", "sync",
                             "--from-manifests", str(folder), "--etcd-endpoints", endpoint,
                             "--http-listen", f"127.0.0.1:{port}", "--log-format", "json", *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w"))


def _role(port: int) -> str | None:
    status, body = http_status(port, "/healthz")
    return json.loads(body).get("role") if status in (200, 503) else None


async def test_a_paused_leader_is_fenced_out_and_steps_down_when_it_wakes(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    folder = tmp_path / "objects"
    folder.mkdir()
    manifest = folder / "web.json"
    manifest.write_text(json.dumps(lb_service("web", "10.0.0.1")))
    ports = free_port(), free_port()
    a = _syncer(folder, etcd_server.endpoint, ports[0], tmp_path / "a.log", "--election-ttl", "2s")
    try:
        wait_until(lambda: _role(ports[0]) == "leader", 20, "A leading")
        b = _syncer(folder, etcd_server.endpoint, ports[1], tmp_path / "b.log", "--election-ttl", "2s")
        try:
            wait_until(lambda: _role(ports[1]) == "standby", 20, "B standing by")
            a.send_signal(signal.SIGSTOP)  # a GC pause, a frozen VM
            wait_until(lambda: _role(ports[1]) == "leader", 20, "B taking over")
            paused_at, _ = await read_prefix(etcd, b"/skydns/")
            manifest.write_text(json.dumps(lb_service("web", "10.0.0.2")))  # A's cache is now stale
            await eventually(lambda: _has(etcd, "web.example.org", ["10.0.0.2"]), "B's write")
            a.send_signal(signal.SIGCONT)
            wait_until(lambda: _role(ports[0]) == "standby", 20, "A stepping down")
            # Whatever A tried after waking, nothing of it committed: every change since the pause is B's.
            _, kvs = await read_prefix(etcd, b"/skydns/")
            assert all(kv.mod_revision > paused_at for kv in kvs)
            assert await answers(etcd) == {"web.example.org": ["10.0.0.2"]}
            manifest.write_text(json.dumps(lb_service("web", "10.0.0.3")))
            await eventually(lambda: _has(etcd, "web.example.org", ["10.0.0.3"]), "B still the writer")
        finally:
            b.send_signal(signal.SIGTERM)
            assert b.wait(10) == 0
    finally:
        a.send_signal(signal.SIGCONT)
        a.send_signal(signal.SIGTERM)
        assert a.wait(10) == 0
    lines = [json.loads(x) for x in (tmp_path / "a.log").read_text().splitlines() if x.startswith("{")]
    assert any(x["event"] == "lost_the_lead" for x in lines)


async def test_once_waits_for_the_lead_and_names_the_leader_when_it_cannot_have_it(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    holder = Election(etcd, "/dnssync/election/", OWNER, ttl=10)
    await holder.campaign(timeout=5)
    keep = asyncio.create_task(holder.keep())
    try:
        once = [sys.executable, "-m", "syncer", "--once", "--owner-id", OWNER, "--policy", "sync",
                "--from-manifests", str(ROOT / "manifests/examples"), "--etcd-endpoints", etcd_server.endpoint,
                "--election-ttl", "2s"]
        done = await asyncio.to_thread(subprocess.run, once, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.returncode == 1
        last = done.stderr.strip().splitlines()[-1]
        assert "another dnssync leads for owner id" in last and "pid" in last and "host" in last
        assert await answers(etcd) == {}
        dry = await asyncio.to_thread(subprocess.run, [*once, "--dry-run"], capture_output=True, text=True,
                                      cwd=ROOT, timeout=60)
        assert dry.returncode == 0 and "6 to create" in dry.stdout  # a dry run never campaigns
    finally:
        keep.cancel()
        await holder.resign()
    done = await asyncio.to_thread(subprocess.run, once, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert await candidates(etcd) == []
    assert "web.example.org" in await answers(etcd)


async def test_the_fence_compare_fits_a_full_transaction(etcd: EtcdClient) -> None:
    """etcd allows 128 operations per transaction: a full chunk of ours plus the fence still goes through."""
    election = Election(etcd, "/dnssync/election/", OWNER, ttl=10)
    leadership = await election.campaign(timeout=5)
    keys = [f"/skydns/org/example/big/{i:08x}".encode() for i in range(MAX_TXN_OPS)]
    ok, _, _ = await txn(etcd, [*leadership.compares(), *(compare_absent(k) for k in keys)],
                         [put_op(k, b'{"host":"10.0.0.1"}') for k in keys])
    assert ok
    await election.resign()
