"""The etcd mirror: keep a store equal to the keys under a prefix, one etcd revision at a time.

Both processes follow their prefix with it: the resolver answers from its copy, the syncer repairs drift in its
own records. :class:`EtcdMirror` is a :class:`skydns.listwatch.ListWatch` (the loop, backoff, outage reporting and
health are the base's; the same verbs as the syncer's Kubernetes reflectors). Rules (those Go clientv3 users
follow):

* **load**: a paged range read of the prefix at one revision R (:func:`skydns.etcd.read_prefix`), swapped into
  the store whole (``store.replace(R, changes)``). The loaded state is long-lived, so it is then moved out of the
  cyclic garbage collector's scans (``gc.freeze``);
* **resume**: etcd's Watch RPC on the prefix from the last applied revision + 1. We drive the RPC ourselves instead
  of aetcd's ``watch_prefix``, which hands events over one by one and loses the response boundary: etcd never
  splits one revision over two responses (we do not ask for ``fragment``), so the events of one revision (one
  transaction) reach the store together (``store.apply(revision, changes)``) and a reader never sees half of a
  change. Every change carries its revision; a revision at or below the applied one is never applied again;
* the stream breaks (etcd restarted, a network cut, a frozen etcd caught by the gRPC keepalive): resume from the
  last applied revision + 1 at once, then with backoff; nothing is missed and nothing applied twice;
* that revision was compacted: :class:`skydns.listwatch.Expired`, so exactly one reload at a fresh revision while
  the old state keeps being served, swapped in whole;
* after every third failed attempt in a row, or an authentication error (an expired etcd token), the gRPC
  channel is rebuilt (and the client re-authenticates);
* **a member that stops answering** (a frozen process keeps its TCP connection, so nothing breaks): a watch
  silent for ``probe_after`` seconds asks etcd for progress (a ``progress_request``, answered at once by the
  member itself, events or not); no answer within ``probe_timeout`` - or a watch create that timed out - means
  the member is not answering, and the watch resumes at once on a new channel, which passes over a member that
  does not complete its handshake (:meth:`skydns.etcd.EtcdClient.replace_channel`). The gRPC keepalive would
  notice too, but only after its keepalive time and ping timeout. The replaced channel is left open for calls
  still on it (closing it would cancel them); a stream cut by a channel closing is a broken stream here, not
  the mirror's own cancellation;
* **a member cut off from its cluster**: the watch asks for a member with a leader (etcd's ``hasleader``
  metadata, as Go's ``clientv3.WithRequireLeader``), so a member that lost its leader ends the stream ("no
  leader") instead of keeping it open and silent, and the watch resumes elsewhere. Watching from
  ``revision + 1`` on another member is exact: every member serves the same revisions (one that is behind
  delivers them once it has applied them);
* any other failure (a bug, a store that raised) is logged as an error and repaired by a full reload;
* gRPC deadlines bound each call and an asyncio timeout (:func:`within`) fences every unary call again, so that
  no stuck channel can hold the mirror for ever;
* while etcd is unreachable the last good state keeps being served; :meth:`EtcdMirror.health` says so, the log
  says so once (``etcd_unreachable`` on loss, ``etcd_reachable_again`` on recovery; retries at debug level).

Keys attached to an etcd lease carry the instant their lease runs out (``KeyChange.lease_deadline``), from
etcd's LeaseTimeToLive, cached per lease for a few seconds so a load of many keys on one lease asks once. A
lease kept alive makes no watch event, so every 10 s the TTLs of the leases holding keys are read again and the
keys whose deadline moved are handed to the store again (same value and mod revision, new deadline, applied at
the store's current revision).

Metrics are per process role: :meth:`MirrorMetrics.of` names them ``<namespace>_etcd_connected``,
``_etcd_revision``, ``_ready``, ``_etcd_loads``, ``_etcd_watch_restarts`` and ``_etcd_events`` (the resolver's
namespace is ``dnssync_resolver``), created once per namespace in the default registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

import grpc
import structlog
from aetcd import exceptions as etcd_errors
from aetcd import rpc
from aetcd.utils import prefix_range_end
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from skydns.changes import KeyChange
from skydns.etcd import cut_by_close, read_prefix
from skydns.listwatch import Expired, ListWatch

log = structlog.get_logger("skydns.mirror")
T = TypeVar("T")

RETRYABLE: tuple[type[BaseException], ...] = (etcd_errors.ClientError, grpc.aio.AioRpcError, OSError, TimeoutError)
PUT = rpc.Event.PUT
LEASE_CACHE_SECONDS = 5.0
LEASE_REFRESH_SECONDS = 10.0  # how often kept-alive leases are re-read (their keys' TTLs follow)
RECONNECT_EVERY = 3  # failed attempts in a row after which the gRPC channel is rebuilt
PROBE_AFTER = 2.0  # seconds of watch silence after which etcd is asked for progress
PROBE_TIMEOUT = 3.0  # seconds the member has to answer that
REQUIRE_LEADER = (("hasleader", "true"),)  # etcd's require-leader metadata (rpctypes.MetadataRequireLeaderKey)
LOAD_TIMEOUT = 120.0  # a full read of the prefix, all pages
LEASE_TIMEOUT = 30.0  # all lease look-ups of one load or one watch response
LEASE_LOOKUPS_IN_FLIGHT = 32


class MirrorStore(Protocol):
    def replace(self, revision: int, changes: Iterable[KeyChange]) -> None: ...
    def apply(self, revision: int, changes: Sequence[KeyChange]) -> None: ...


class MirrorMetrics:
    """The Prometheus metrics of one process role's mirror.

    ``MirrorMetrics.of(namespace)`` gives the ones registered in the default registry, created on first use
    (Prometheus refuses a name twice, so there is one instance per namespace and process). Constructed directly,
    they go to ``registry`` (``None``: registered nowhere, still counted).
    """

    _registered: ClassVar[dict[str, MirrorMetrics]] = {}

    def __init__(self, namespace: str, registry: CollectorRegistry | None = None, *,
                 ready_name: str | None = None) -> None:
        self.namespace = namespace
        self.ready_name = ready_name or f"{namespace}_ready"
        self.connected = Gauge(f"{namespace}_etcd_connected", "1 while the etcd watch is established",
                               registry=registry)
        self.revision = Gauge(f"{namespace}_etcd_revision", "The last etcd revision applied to the in-memory store",
                              registry=registry)
        self.ready = Gauge(self.ready_name, "1 once the first full load from etcd is done", registry=registry)
        self.loads = Counter(f"{namespace}_etcd_loads", "Full loads of the prefix (start-up and after compaction)",
                             registry=registry)
        self.watch_restarts = Counter(f"{namespace}_etcd_watch_restarts", "Watches resumed after the stream broke",
                                      registry=registry)
        self.events = Counter(f"{namespace}_etcd_events", "Key changes applied from the etcd watch",
                              registry=registry)

    @classmethod
    def of(cls, namespace: str, *, ready_name: str | None = None) -> MirrorMetrics:
        """The metrics of ``namespace`` in the default registry (``ready_name`` defaults to ``<namespace>_ready``;
        asking again with another one is a ``ValueError``)."""
        known = cls._registered.get(namespace)
        if known is None:
            known = cls._registered[namespace] = cls(namespace, REGISTRY, ready_name=ready_name)
        elif ready_name is not None and ready_name != known.ready_name:
            raise ValueError(f"mirror metrics {namespace!r} exist with the ready gauge {known.ready_name!r}")
        return known


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``await awaitable`` with a time limit (``TimeoutError``). Unlike ``asyncio.wait_for`` on Python 3.11, it
    never swallows a cancellation that arrives as the awaitable completes (which would leave a stopping mirror
    running, waiting on a quiet watch)."""
    async with asyncio.timeout(seconds):
        return await awaitable


def _key(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def group_by_revision(events: Iterable[Any], lease_deadline: Callable[[int], float]
                      ) -> list[tuple[int, list[KeyChange]]]:
    """Watch events (etcd ``Event`` messages, in order) -> ``[(revision, changes)]``, one entry per revision."""
    groups: list[tuple[int, list[KeyChange]]] = []
    for event in events:
        kv = event.kv
        rev = kv.mod_revision
        if event.type == PUT:
            change = KeyChange(_key(kv.key), kv.value, rev, lease_deadline(kv.lease) if kv.lease else None)
        else:
            change = KeyChange(_key(kv.key), None, rev)
        if groups and groups[-1][0] == rev:
            groups[-1][1].append(change)
        else:
            groups.append((rev, [change]))
    return groups


class LeaseDeadlines:
    """``lease id -> time.monotonic()`` instant it runs out, from etcd, remembered for a few seconds."""

    def __init__(self, client: Any, max_age: float = LEASE_CACHE_SECONDS) -> None:
        self._client = client
        self._max_age = max_age
        self._known: dict[int, tuple[float, float]] = {}  # id -> (deadline, fetched at)

    async def fetch(self, lease_ids: Iterable[int], force: bool = False) -> None:
        """Ask etcd for every lease not known (or known for too long, or all: ``force``); raises client errors."""
        now = time.monotonic()
        wanted = {i for i in lease_ids
                  if i and (force or i not in self._known or now - self._known[i][1] > self._max_age)}
        if not wanted:
            return
        if len(self._known) > 100_000:
            self._known = {i: v for i, v in self._known.items() if v[0] > now}
        limit = asyncio.Semaphore(LEASE_LOOKUPS_IN_FLIGHT)

        async def one(lease_id: int) -> None:
            async with limit:
                resp = await self._client.get_lease_info(lease_id, keys=False)
            fetched = time.monotonic()
            self._known[lease_id] = (fetched + max(int(resp.TTL), 0), fetched)

        await asyncio.gather(*(one(i) for i in wanted))

    def deadline(self, lease_id: int) -> float:
        """When the lease runs out; a lease etcd did not tell us about counts as running out now."""
        known = self._known.get(lease_id)
        return known[0] if known else time.monotonic()


class MemberSilent(etcd_errors.ConnectionTimeoutError):
    """The etcd member under the watch stopped answering (a progress request or a watch create timed out)."""


def _is_auth_error(exc: BaseException) -> bool:
    if isinstance(exc, etcd_errors.UnauthenticatedError):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAUTHENTICATED


class EtcdMirror(ListWatch):
    """Keeps ``store`` equal to the keys under ``prefix`` in etcd. ``await mirror.run()`` (runs until cancelled).

    ``revision`` is the last etcd revision applied to the store; ``ready``, ``connected``, ``down_since``,
    ``last_error``, ``loads`` and :meth:`health` are the base's (:class:`skydns.listwatch.ListWatch`).
    """

    unreachable_event = "etcd_unreachable"
    reachable_event = "etcd_reachable_again"

    def __init__(self, client: Any, store: MirrorStore, prefix: str = "/skydns", *,
                 metrics: MirrorMetrics | None = None, on_first_load: Callable[[], None] | None = None,
                 backoff_initial: float = 0.1, backoff_max: float = 5.0, create_timeout: float = 5.0,
                 page: int = 5000, lease_refresh: float = LEASE_REFRESH_SECONDS, freeze_gc: bool = True,
                 probe_after: float = PROBE_AFTER, probe_timeout: float = PROBE_TIMEOUT) -> None:
        super().__init__(backoff_initial=backoff_initial, backoff_max=backoff_max)
        self.client = client
        self.store = store
        self.prefix = prefix.rstrip("/") + "/"
        self.what = f"etcd {self.prefix}"
        self.metrics = metrics if metrics is not None else MirrorMetrics("dnssync_mirror")  # counted, not exported
        self._prefix_bytes = self.prefix.encode()
        self._on_first_load = on_first_load
        self._create_timeout = create_timeout
        self._page = page
        self._freeze_gc = freeze_gc
        self._probe_after = probe_after
        self._probe_timeout = probe_timeout
        self._leases = LeaseDeadlines(client)
        self._lease_refresh = lease_refresh
        self._leased: dict[str, tuple[int, KeyChange]] = {}  # key -> (lease id, the change the store holds)
        self.revision = 0  # last etcd revision applied to the store
        self.watch_restarts = 0  # watches resumed after an established stream broke
        self._streaming = False  # the current watch stream was established
        self._new_channel = False
        self._applied = asyncio.Condition()

    # -- status -----------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The base's details plus ``revision``, ``etcd`` (connected/unreachable) and, while etcd is away,
        ``etcd_unreachable_since``, ``last_error`` and a ``detail`` sentence."""
        details = super().health()
        details["revision"] = self.revision
        if self.connected:
            details["etcd"] = "connected"
            return details
        details["etcd"] = "unreachable"
        details["etcd_unreachable_since"] = self.down_since
        details["last_error"] = self.last_error
        details["detail"] = (f"serving last good state (revision {self.revision}), etcd unreachable since "
                             f"{self.down_since}" if self.is_ready() else
                             f"no data loaded yet, etcd unreachable since {self.down_since}")
        return details

    async def wait_revision(self, revision: int, timeout: float) -> None:
        """Wait until the store has applied ``revision`` (raises ``TimeoutError``)."""
        async with asyncio.timeout(timeout), self._applied:
            await self._applied.wait_for(lambda: self.revision >= revision)

    def mark_up(self) -> None:
        super().mark_up()
        self.metrics.connected.set(1)

    def mark_down(self, exc: BaseException) -> None:
        super().mark_down(exc)
        self.metrics.connected.set(0)

    def log_context(self) -> dict[str, Any]:
        return {"revision": self.revision}

    # -- the ListWatch verbs ----------------------------------------------------------------------------------

    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, RETRYABLE)

    def on_failure(self, exc: BaseException) -> None:
        if self._streaming and self.transient(exc):
            self.watch_restarts += 1
            self.metrics.watch_restarts.inc()
        self._streaming = False
        if isinstance(exc, MemberSilent) or self.failures_in_a_row % RECONNECT_EVERY == 0 or _is_auth_error(exc):
            self._new_channel = True  # a silent member, an expired auth token, a channel in a bad state: afresh

    async def run(self) -> None:
        refresher = asyncio.create_task(self._refresh_leases_forever(), name="etcd-lease-refresh")
        try:
            await super().run()
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    async def load(self) -> None:
        """Read the prefix at one revision and swap it into the store whole."""
        self._streaming = False
        await self._connect()
        started = time.monotonic()
        revision, kvs = await within(LOAD_TIMEOUT, read_prefix(self.client, self._prefix_bytes, page=self._page))
        await within(LEASE_TIMEOUT, self._leases.fetch(kv.lease for kv in kvs if kv.lease))
        deadline = self._leases.deadline
        changes = [KeyChange(_key(kv.key), kv.value, kv.mod_revision, deadline(kv.lease) if kv.lease else None)
                   for kv in kvs]
        self._leased = {c.key: (kv.lease, c) for kv, c in zip(kvs, changes, strict=True) if kv.lease}
        loaded = len(changes)
        del kvs
        self.store.replace(revision, changes)
        del changes[:]
        if self._freeze_gc:
            # The loaded index is long-lived: move it out of the cyclic GC's reach, so a full collection (which
            # would otherwise walk every record object) cannot pause the answers for tens of milliseconds.
            gc.collect()
            gc.freeze()
        self.metrics.loads.inc()
        await self._advance(revision)
        self.mark_up()
        log.info("etcd_loaded", prefix=self.prefix, keys=loaded, revision=revision,
                 seconds=round(time.monotonic() - started, 3))
        if not self.ready.is_set():
            self.ready.set()
            self.metrics.ready.set(1)
            if self._on_first_load is not None:
                self._on_first_load()

    async def resume(self) -> None:
        """Watch the prefix from ``revision + 1``, applying each revision whole; never returns cleanly."""
        await self._connect()
        self._streaming = False
        assert self.client.channel is not None
        call = rpc.WatchStub(self.client.channel).Watch(metadata=(*(self.client.metadata or ()), *REQUIRE_LEADER))
        try:
            create = rpc.WatchCreateRequest(key=self._prefix_bytes, range_end=prefix_range_end(self._prefix_bytes),
                                            start_revision=self.revision + 1)
            try:
                await within(self._create_timeout, call.write(rpc.WatchRequest(create_request=create)))
                first = await within(self._create_timeout, call.read())
            except TimeoutError:
                raise MemberSilent(f"etcd watch: not created within {self._create_timeout:g} s") from None
            self._check(first)
            if not first.created:
                raise etcd_errors.ClientError("etcd watch: no 'created' response")
            self._streaming = True
            self.established()
            await self._apply(first.events)
            while True:
                resp = await self._next(call)
                self.heard()
                self._check(resp)
                if resp.events:
                    await self._apply(resp.events)
        except asyncio.CancelledError:
            if cut_by_close():
                raise etcd_errors.ConnectionFailedError("etcd watch stream cut: its channel was closed") from None
            raise
        finally:
            call.cancel()

    async def _next(self, call: Any) -> Any:
        """The next watch response; a silent stream is probed (see the module docstring). The read runs as a task
        of its own because cancelling a gRPC read cancels the whole call."""
        read = asyncio.ensure_future(call.read())
        try:
            done, _ = await asyncio.wait({read}, timeout=self._probe_after)
            if not done:
                progress = rpc.WatchRequest(progress_request=rpc.WatchProgressRequest())
                await within(self._probe_timeout, call.write(progress))
                done, _ = await asyncio.wait({read}, timeout=self._probe_timeout)
            if not done:
                raise MemberSilent(f"etcd member silent: no answer to a watch progress request within "
                                   f"{self._probe_timeout:g} s")
            return read.result()
        except TimeoutError:
            raise MemberSilent(f"etcd member silent: a watch progress request not sent within "
                               f"{self._probe_timeout:g} s") from None
        finally:
            if not read.done():
                read.cancel()

    # -- the I/O behind them ----------------------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._new_channel:
            self._new_channel = False
            log.debug("etcd_new_channel", prefix=self.prefix)
            replace = getattr(self.client, "replace_channel", None)
            if replace is not None:  # our client: the old channel stays open for the lease look-ups still on it
                await within(self._create_timeout, replace())
                return
            try:
                await within(self._create_timeout, self.client.close())
            except Exception as exc:  # closing a broken channel may fail; the new one is what matters
                log.debug("etcd_channel_close_failed", error=repr(exc))
        await self.client.connect()  # (re)authenticates when the client was closed

    def _check(self, resp: Any) -> None:
        if resp is grpc.aio.EOF:
            raise etcd_errors.ConnectionFailedError("etcd closed the watch stream")
        if resp.compact_revision:
            raise Expired(f"revision {self.revision + 1} compacted (etcd keeps from {resp.compact_revision})")
        if resp.canceled:
            raise etcd_errors.ClientError(f"etcd cancelled the watch: {resp.cancel_reason or 'no reason given'}")

    async def _advance(self, revision: int) -> None:
        self.revision = revision
        self.metrics.revision.set(revision)
        async with self._applied:
            self._applied.notify_all()

    async def _apply(self, events: Sequence[Any]) -> None:
        if not events:
            return
        leases_by_key = {_key(e.kv.key): e.kv.lease for e in events if e.type == PUT and e.kv.lease}
        if leases_by_key:
            await within(LEASE_TIMEOUT, self._leases.fetch(leases_by_key.values()))
        for revision, changes in group_by_revision(events, self._leases.deadline):
            if revision <= self.revision:
                continue  # already in the store (cannot happen with etcd's ordering; cheap to be sure)
            self.store.apply(revision, changes)
            self.metrics.events.inc(len(changes))
            self._track_leases(changes, leases_by_key)
            await self._advance(revision)

    def _track_leases(self, changes: Sequence[KeyChange], leases_by_key: dict[str, int]) -> None:
        for change in changes:
            lease = leases_by_key.get(change.key) if change.value is not None else None
            if lease and change.lease_deadline is not None:
                self._leased[change.key] = (lease, change)
            else:
                self._leased.pop(change.key, None)

    # -- lease keep-alives ------------------------------------------------------------------------------------

    async def _refresh_leases_forever(self) -> None:
        """A kept-alive lease produces no watch event: re-read the leases' TTLs now and then."""
        while True:
            await asyncio.sleep(self._lease_refresh)
            if not self._leased or not self.connected:
                continue
            try:
                await within(LEASE_TIMEOUT, self.refresh_leases())
            except Exception as exc:  # etcd is away: the watch loop reports it; try again next period
                log.debug("lease_refresh_failed", error=repr(exc))
            except asyncio.CancelledError:
                if not cut_by_close():
                    raise
                log.debug("lease_refresh_failed", error="its channel was closed")

    async def refresh_leases(self) -> int:
        """Ask etcd for the TTL of every lease holding a key; hand the store the keys whose deadline moved.

        Returns how many keys were updated. The update is applied at the store's current revision (the keys'
        values and mod revisions are unchanged); only the answers built from those keys are re-made.
        """
        await self._leases.fetch({lease for lease, _ in self._leased.values()}, force=True)
        deadline = self._leases.deadline
        moved = []
        for key, (lease, change) in self._leased.items():
            new = deadline(lease)
            if change.lease_deadline is not None and abs(new - change.lease_deadline) > 1.0:
                moved.append(KeyChange(key, change.value, change.mod_revision, new))
        if moved:
            self.store.apply(self.revision, moved)
            for change in moved:
                self._leased[change.key] = (self._leased[change.key][0], change)
        return len(moved)
