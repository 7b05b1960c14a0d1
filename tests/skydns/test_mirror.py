"""The etcd mirror against a real etcd: load, watch, transactions, compaction, restarts, a frozen etcd, leases,
a network cut, metrics per process role.

The store here is :class:`RecordingStore` (the store's interface, recording each call), so these tests check the
mirror's contract exactly: what reaches the store, in which groups, at which revision. The same behaviours seen
through the resolver's DNS answers are in ``tests/resolver/test_e2e.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from aetcd import rpc, transactions
from prometheus_client import REGISTRY, CollectorRegistry

from devtools.localetcd import LocalEtcd
from skydns.changes import KeyChange
from skydns.etcd import EtcdClient, EtcdSettings, read_prefix
from skydns.mirror import EtcdMirror, MirrorMetrics, group_by_revision
from tests.resolver.conftest import RecordingStore, eventually

PREFIX = "/skydns"


@contextlib.asynccontextmanager
async def running_mirror(endpoint: str, store: RecordingStore, wait_ready: bool = True,
                         metrics: MirrorMetrics | None = None) -> AsyncIterator[tuple[EtcdMirror, EtcdClient]]:
    client = EtcdClient(EtcdSettings.from_env(endpoint, env={}))
    mirror = EtcdMirror(client, store, PREFIX, backoff_initial=0.05, backoff_max=0.5, metrics=metrics)
    task = asyncio.create_task(mirror.run())
    try:
        if wait_ready:
            await asyncio.wait_for(mirror.ready.wait(), 15)
        yield mirror, client
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await asyncio.wait_for(client.close(), 10)


async def etcd_state(client: EtcdClient) -> tuple[int, dict[str, bytes]]:
    rev, kvs = await read_prefix(client, b"/skydns/")
    return rev, {kv.key.decode(): kv.value for kv in kvs}


def mirrored(store: RecordingStore) -> dict[str, bytes]:
    return {k: c.value for k, c in store.keys.items() if c.value is not None}


async def in_sync(store: RecordingStore, client: EtcdClient) -> bool:
    _, keys = await etcd_state(client)
    return mirrored(store) == keys


def test_events_are_grouped_by_revision_in_order() -> None:
    def event(kind: int, key: str, rev: int, value: bytes = b"", lease: int = 0) -> rpc.Event:
        return rpc.Event(type=kind, kv=rpc.KeyValue(key=key.encode(), value=value, mod_revision=rev, lease=lease))

    events = [event(rpc.Event.PUT, "/skydns/a", 5, b"1"), event(rpc.Event.DELETE, "/skydns/b", 6),
              event(rpc.Event.PUT, "/skydns/c", 6, b"2", lease=7), event(rpc.Event.PUT, "/skydns/a", 8, b"3")]
    groups = group_by_revision(events, lambda lease: 100.0 + lease)
    assert [(rev, [(c.key, c.value, c.lease_deadline) for c in changes]) for rev, changes in groups] == [
        (5, [("/skydns/a", b"1", None)]),
        (6, [("/skydns/b", None, None), ("/skydns/c", b"2", 107.0)]),
        (8, [("/skydns/a", b"3", None)]),
    ]


@pytest.mark.timeout(30)
async def test_load_then_changes_and_deletes_follow(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    await etcd.put(b"/skydns/test/skydns/a", b'{"host":"10.0.0.1"}')
    await etcd.put(b"/skydnsx/outside", b'{"host":"10.9.9.9"}')
    store = RecordingStore()
    async with running_mirror(etcd_server.endpoint, store) as (mirror, _):
        assert mirror.is_ready() and len(store.replaces) == 1
        assert mirrored(store) == {"/skydns/test/skydns/a": b'{"host":"10.0.0.1"}'}
        await etcd.put(b"/skydns/test/skydns/a", b'{"host":"10.0.0.2"}')
        await etcd.put(b"/skydns/test/skydns/b", b'{"host":"10.0.0.3"}')
        await etcd.delete(b"/skydns/test/skydns/a")
        await etcd.put(b"/skydnsx/outside2", b"{}")
        await eventually(lambda: in_sync(store, etcd), what="mirror equal to etcd")
        assert mirrored(store) == {"/skydns/test/skydns/b": b'{"host":"10.0.0.3"}'}
        assert [len(changes) for _, changes in store.applies] == [1, 1, 1]
        health = mirror.health()
        assert {k: health[k] for k in ("etcd", "ready", "revision", "connected")} == {
            "etcd": "connected", "ready": True, "revision": mirror.revision, "connected": True}
        assert not {"etcd_unreachable_since", "last_error", "detail"} & health.keys()


@pytest.mark.timeout(30)
async def test_a_transaction_reaches_the_store_whole(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    await etcd.put(b"/skydns/test/skydns/move/x", b'{"host":"10.0.0.1"}')
    store = RecordingStore()
    async with running_mirror(etcd_server.endpoint, store) as (mirror, _):
        for i in range(20):  # many transactions back to back: etcd may pack several into one watch response
            old, new = ("x", "y") if i % 2 == 0 else ("y", "x")
            await etcd.transaction(compare=[], success=[
                transactions.Delete(f"/skydns/test/skydns/move/{old}".encode()),
                transactions.Put(f"/skydns/test/skydns/move/{new}".encode(), f'{{"host":"10.0.0.{i + 2}"}}'.encode()),
            ], failure=[])
        await eventually(lambda: in_sync(store, etcd), what="mirror equal to etcd")
        assert len(store.applies) == 20
        assert all(sorted(c.value is None for c in changes) == [False, True] for _, changes in store.applies)
        assert mirror.revision == store.revision


@pytest.mark.timeout(30)
async def test_leased_keys_carry_their_deadline(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    lease = await etcd.lease(120)
    await etcd.put(b"/skydns/test/skydns/leased1", b'{"host":"10.0.0.1"}', lease=lease)
    store = RecordingStore()
    async with running_mirror(etcd_server.endpoint, store):
        loaded = store.keys["/skydns/test/skydns/leased1"].lease_deadline
        assert loaded is not None and 100 < loaded - time.monotonic() <= 120
        short = await etcd.lease(40)
        await etcd.put(b"/skydns/test/skydns/leased2", b'{"host":"10.0.0.2"}', lease=short)
        await etcd.put(b"/skydns/test/skydns/plain", b'{"host":"10.0.0.3"}')
        await eventually(lambda: in_sync(store, etcd), what="mirror equal to etcd")
        watched = store.keys["/skydns/test/skydns/leased2"].lease_deadline
        assert watched is not None and 20 < watched - time.monotonic() <= 40
        assert store.keys["/skydns/test/skydns/plain"].lease_deadline is None
        await lease.revoke()
        await eventually(lambda: in_sync(store, etcd), what="revoked lease's key deleted")
        assert "/skydns/test/skydns/leased1" not in store.keys


@pytest.mark.timeout(30)
async def test_a_kept_alive_lease_moves_its_keys_deadline(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    lease = await etcd.lease(100)
    await etcd.put(b"/skydns/test/skydns/kept", b'{"host":"10.0.0.1"}', lease=lease)
    store = RecordingStore()
    client = EtcdClient(EtcdSettings.from_env(etcd_server.endpoint, env={}))
    mirror = EtcdMirror(client, store, PREFIX, lease_refresh=0.1)
    task = asyncio.create_task(mirror.run())
    try:
        await asyncio.wait_for(mirror.ready.wait(), 15)
        first = store.keys["/skydns/test/skydns/kept"].lease_deadline
        assert first is not None
        loaded_at, refreshed = time.monotonic(), False

        async def moved() -> bool:
            nonlocal refreshed
            if not refreshed and time.monotonic() > loaded_at + 2.5:  # TTLs count in whole seconds
                await asyncio.wait_for(lease.refresh(), 5)  # a keep-alive: the lease has 100 s left again
                refreshed = True
            now = store.keys["/skydns/test/skydns/kept"].lease_deadline
            return now is not None and now > first + 1.0

        await eventually(moved, timeout=10, what="the deadline to follow the keep-alive")
        assert len(store.replaces) == 1 and store.applies[-1][0] == store.replaces[0]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


@pytest.mark.timeout(60)
async def test_compaction_past_the_mirror_reloads_whole(own_etcd: LocalEtcd, own_client: EtcdClient) -> None:
    for i in range(5):
        await own_client.put(f"/skydns/test/skydns/n{i}".encode(), b'{"host":"10.0.0.1"}')
    store = RecordingStore()
    client = EtcdClient(EtcdSettings.from_env(own_etcd.endpoint, env={}))
    mirror = EtcdMirror(client, store, PREFIX, backoff_initial=0.05, backoff_max=0.5)
    task = asyncio.create_task(mirror.run())
    try:
        await asyncio.wait_for(mirror.ready.wait(), 15)
        # The mirror is disconnected (its task stopped) while etcd moves on and compacts past its revision.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        loaded_at = mirror.revision
        await own_client.delete(b"/skydns/test/skydns/n0")
        await own_client.put(b"/skydns/test/skydns/n1", b'{"host":"10.0.0.9"}')
        rev = (await own_client.put(b"/skydns/test/skydns/new", b'{"host":"10.0.0.8"}')).header.revision
        await own_client.compact(rev)
        task = asyncio.create_task(mirror.run())  # resumes from loaded_at + 1: compacted
        await eventually(lambda: in_sync(store, own_client), timeout=20, what="mirror reloaded after compaction")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    assert store.replaces == [loaded_at, rev], "a compaction past the mirror's revision reloads at a fresh revision"
    assert mirror.revision == rev and mirror.loads == 2


@pytest.mark.timeout(90)
async def test_etcd_restart_loses_nothing(own_etcd: LocalEtcd, own_client: EtcdClient) -> None:
    store = RecordingStore()
    written: dict[str, bytes] = {}

    async def writer(stop: asyncio.Event) -> None:
        i = 0
        while not stop.is_set():
            key, value = f"/skydns/test/skydns/w{i % 40}", f'{{"host":"10.1.0.{i % 250}"}}'.encode()
            try:
                await own_client.put(key.encode(), value)
                written[key] = value
                i += 1
            except Exception:  # etcd is down for a moment: try the same write again
                await asyncio.sleep(0.01)
            await asyncio.sleep(0)

    async with running_mirror(own_etcd.endpoint, store) as (mirror, _):
        stop = asyncio.Event()
        task = asyncio.create_task(writer(stop))
        await eventually(lambda: asyncio.sleep(0, len(written) == 40), what="writes before the restart")
        await asyncio.to_thread(own_etcd.restart)
        before = dict(written)
        await eventually(lambda: asyncio.sleep(0, all(written[k] != v for k, v in before.items())), timeout=20,
                         what="every key written again after the restart")
        stop.set()
        await task
        await eventually(lambda: in_sync(store, own_client), timeout=20, what="mirror caught up after restart")
        assert mirror.watch_restarts >= 1 and len(store.replaces) == 1, "resumed, not reloaded"
        assert mirrored(store) == written
        revs = [rev for rev, _ in store.applies]
        assert revs == sorted(set(revs)), "every revision applied once, in order"


@pytest.mark.timeout(60)
async def test_a_frozen_etcd_is_noticed_and_the_last_state_kept(own_etcd: LocalEtcd,
                                                               own_client: EtcdClient) -> None:
    await own_client.put(b"/skydns/test/skydns/a", b'{"host":"10.0.0.1"}')
    store = RecordingStore()
    async with running_mirror(own_etcd.endpoint, store) as (mirror, _):
        own_etcd.freeze()
        try:
            await eventually(lambda: asyncio.sleep(0, mirror.health()["etcd"] == "unreachable"), timeout=25,
                             what="a frozen etcd reported in health")
            details = mirror.health()
            assert details["ready"] and "serving last good state" in details["detail"]
            assert details["etcd_unreachable_since"] and details["last_error"]
            assert mirrored(store) == {"/skydns/test/skydns/a": b'{"host":"10.0.0.1"}'}
        finally:
            own_etcd.thaw()
        await own_client.put(b"/skydns/test/skydns/b", b'{"host":"10.0.0.2"}')
        await eventually(lambda: in_sync(store, own_client), timeout=20, what="caught up after thaw")
        assert mirror.health()["etcd"] == "connected"


@pytest.mark.timeout(60)
async def test_etcd_down_at_start_is_retried_until_it_comes(own_etcd: LocalEtcd) -> None:
    own_etcd.stop()
    store = RecordingStore()
    async with running_mirror(own_etcd.endpoint, store, wait_ready=False) as (mirror, _):
        await eventually(lambda: asyncio.sleep(0, mirror.last_error is not None), what="a failed attempt")
        details = mirror.health()
        assert not mirror.is_ready() and details["etcd"] == "unreachable"
        assert details["detail"].startswith("no data loaded yet, etcd unreachable since")
        await asyncio.to_thread(own_etcd.start)
        await asyncio.wait_for(mirror.ready.wait(), 20)
        assert mirror.health()["etcd"] == "connected"


class FailingOnceStore(RecordingStore):
    """A store whose apply fails once (a bug, bad data): the mirror must log, reload and carry on."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def apply(self, revision: int, changes: Sequence[KeyChange]) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("boom")
        super().apply(revision, changes)


@pytest.mark.timeout(30)
async def test_a_failing_apply_is_survived_by_a_reload(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    store = FailingOnceStore()
    async with running_mirror(etcd_server.endpoint, store) as (mirror, _):
        await etcd.put(b"/skydns/test/skydns/a", b'{"host":"10.0.0.1"}')
        await etcd.put(b"/skydns/test/skydns/b", b'{"host":"10.0.0.2"}')
        await eventually(lambda: in_sync(store, etcd), what="mirror equal to etcd after the failure")
        assert store.failed and len(store.replaces) == 2 and mirror.is_ready()


@pytest.mark.timeout(60)
async def test_an_etcd_with_authentication_is_followed(own_etcd: LocalEtcd) -> None:
    etcdctl = [str(Path(sys.executable).parent / "etcdctl"), "--endpoints", own_etcd.endpoint]

    def ctl(*args: str) -> None:
        subprocess.run([*etcdctl, *args], check=True, capture_output=True, timeout=20)

    await asyncio.to_thread(ctl, "user", "add", "root:s3cret")
    await asyncio.to_thread(ctl, "auth", "enable")
    await asyncio.to_thread(ctl, "--user", "root:s3cret", "put", "/skydns/test/skydns/a", '{"host":"10.0.0.1"}')
    settings = EtcdSettings.from_env(own_etcd.endpoint, env={"ETCD_USERNAME": "root", "ETCD_PASSWORD": "s3cret"})
    client = EtcdClient(settings)
    store = RecordingStore()
    mirror = EtcdMirror(client, store, PREFIX, backoff_initial=0.05, backoff_max=0.5)
    task = asyncio.create_task(mirror.run())
    try:
        await asyncio.wait_for(mirror.ready.wait(), 15)
        assert mirrored(store) == {"/skydns/test/skydns/a": b'{"host":"10.0.0.1"}'}
        await asyncio.to_thread(ctl, "--user", "root:s3cret", "put", "/skydns/test/skydns/b", '{"host":"10.0.0.2"}')

        async def followed() -> bool:
            return "/skydns/test/skydns/b" in store.keys

        await eventually(followed, what="a change seen through the authenticated watch")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


def samples(registry: CollectorRegistry, namespace: str) -> dict[str, float]:
    """The registry's samples whose names start with ``namespace`` (``_created`` timestamps left out)."""
    return {s.name: s.value for family in registry.collect() for s in family.samples
            if s.name.startswith(namespace + "_") and not s.name.endswith("_created")}


def test_the_resolver_keeps_its_metric_names() -> None:
    registry = CollectorRegistry()
    MirrorMetrics("dnssync_resolver", registry)
    assert set(samples(registry, "dnssync_resolver")) == {
        "dnssync_resolver_etcd_connected", "dnssync_resolver_etcd_revision", "dnssync_resolver_ready",
        "dnssync_resolver_etcd_loads_total", "dnssync_resolver_etcd_watch_restarts_total",
        "dnssync_resolver_etcd_events_total"}
    MirrorMetrics("dnssync", registry, ready_name="dnssync_etcd_ready")
    assert "dnssync_etcd_ready" in samples(registry, "dnssync") and "dnssync_ready" not in samples(registry, "dnssync")


@pytest.mark.timeout(30)
async def test_two_mirrors_with_their_own_metrics_share_a_process(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    first, second = MirrorMetrics.of("test_mirror_first"), MirrorMetrics.of("test_mirror_second")
    assert MirrorMetrics.of("test_mirror_first") is first, "one set of metrics per namespace and process"
    with pytest.raises(ValueError):
        MirrorMetrics("test_mirror_first", REGISTRY)  # what caching by namespace avoids
    await etcd.put(b"/skydns/test/skydns/a", b'{"host":"10.0.0.1"}')
    store_one, store_two = RecordingStore(), RecordingStore()
    async with running_mirror(etcd_server.endpoint, store_one, metrics=first) as (one, _), \
            running_mirror(etcd_server.endpoint, store_two, metrics=second) as (two, _):
        rev = (await etcd.put(b"/skydns/test/skydns/b", b'{"host":"10.0.0.2"}')).header.revision
        await one.wait_revision(rev, 10)
        await two.wait_revision(rev, 10)
        assert mirrored(store_one) == mirrored(store_two) == {"/skydns/test/skydns/a": b'{"host":"10.0.0.1"}',
                                                              "/skydns/test/skydns/b": b'{"host":"10.0.0.2"}'}
        for namespace in ("test_mirror_first", "test_mirror_second"):
            assert samples(REGISTRY, namespace) == {
                f"{namespace}_etcd_connected": 1.0, f"{namespace}_etcd_revision": float(rev),
                f"{namespace}_ready": 1.0, f"{namespace}_etcd_loads_total": 1.0,
                f"{namespace}_etcd_watch_restarts_total": 0.0, f"{namespace}_etcd_events_total": 1.0}


class CuttableProxy:
    """A TCP forwarder on loopback: ``cut()`` drops every connection and refuses new ones (a network cut),
    ``heal()`` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    async def heal(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for transport in list(self._transports):
            transport.abort()
        await self._server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pair = {writer.transport, up_writer.transport}
        self._transports |= pair

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        for transport in pair:
            transport.abort()
        self._transports -= pair


@pytest.mark.timeout(60)
async def test_a_compaction_while_the_watch_is_cut_off_reloads_exactly_once(own_etcd: LocalEtcd,
                                                                             own_client: EtcdClient) -> None:
    for i in range(3):
        await own_client.put(f"/skydns/test/skydns/n{i}".encode(), b'{"host":"10.0.0.1"}')
    proxy = CuttableProxy(own_etcd.client_port)
    await proxy.heal()
    store = RecordingStore()
    try:
        async with running_mirror(f"http://127.0.0.1:{proxy.port}", store) as (mirror, _):
            live = (await own_client.put(b"/skydns/test/skydns/live", b'{"host":"10.0.0.2"}')).header.revision
            await mirror.wait_revision(live, 10)  # the watch is up and following
            await proxy.cut()
            await eventually(lambda: asyncio.sleep(0, not mirror.connected), what="the cut noticed")
            await own_client.delete(b"/skydns/test/skydns/n0")
            await own_client.put(b"/skydns/test/skydns/n1", b'{"host":"10.0.0.9"}')
            rev = (await own_client.put(b"/skydns/test/skydns/new", b'{"host":"10.0.0.8"}')).header.revision
            await own_client.compact(rev)  # past the revision the watch must resume from
            await proxy.heal()
            await eventually(lambda: in_sync(store, own_client), timeout=20, what="mirror reloaded after compaction")
            later = (await own_client.put(b"/skydns/test/skydns/later", b'{"host":"10.0.0.7"}')).header.revision
            await mirror.wait_revision(later, 10)  # followed by the watch again, not by another load
            assert store.replaces == [store.replaces[0], rev], "one reload, at the fresh revision"
            assert mirror.loads == 2 and mirror.reloads == 1
            assert [r for r, _ in store.applies if r > rev] == [later]
            assert mirror.health()["etcd"] == "connected"
    finally:
        await proxy.cut()
