"""The etcd mirror: load the whole prefix at one revision, then follow it with a watch, one revision at a time.

Rules (the same the Go clientv3 users follow):

* start: a paged range read of the prefix at one revision R (:func:`skydns.etcd.read_prefix`), swapped into the
  store whole (``store.replace``); then watch the prefix from R + 1;
* the events of one etcd revision (one transaction) are applied together (``store.apply``), so a reader never
  sees half of a change. We drive etcd's Watch RPC ourselves instead of aetcd's ``watch_prefix``: aetcd hands
  events over one by one and loses the response boundary, while etcd never splits one revision over two
  responses (we do not ask for ``fragment``);
* the stream breaks (etcd restarted, a network cut, a frozen etcd caught by the gRPC keepalive): resume from the
  last applied revision + 1, with exponential backoff (tenacity); nothing is missed and nothing applied twice;
* that revision was compacted: reload at a fresh revision while the old state keeps being served, swap the new
  one in whole, watch from there;
* after every third failed attempt in a row, or an authentication error (an expired etcd token), the gRPC
  channel is rebuilt (and the client re-authenticates);
* any other failure (a bug, a store that raised) is logged as an error and repaired by a full reload;
* while etcd is unreachable the last good state keeps being served; :meth:`EtcdMirror.health` says so, the log
  says so once (a warning on loss, an info on recovery; single retries only at debug level).

Keys attached to an etcd lease carry the instant their lease runs out (``KeyChange.lease_deadline``), from
etcd's LeaseTimeToLive, cached per lease for a few seconds so a load of many keys on one lease asks once. A
lease kept alive makes no watch event, so every 10 s the TTLs of the leases holding keys are read again and the
keys whose deadline moved are handed to the store again (same value and revision, new deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import grpc
import structlog
from aetcd import exceptions as etcd_errors
from aetcd import rpc
from aetcd.utils import prefix_range_end
from prometheus_client import Counter, Gauge
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from resolver.changes import KeyChange
from skydns.etcd import read_prefix

log = structlog.get_logger("resolver.watch")
T = TypeVar("T")

ETCD_CONNECTED = Gauge("dnssync_resolver_etcd_connected", "1 while the etcd watch is established")
MIRROR_REVISION = Gauge("dnssync_resolver_etcd_revision", "The last etcd revision applied to the in-memory store")
MIRROR_READY = Gauge("dnssync_resolver_ready", "1 once the first full load from etcd is done")
MIRROR_LOADS = Counter("dnssync_resolver_etcd_loads", "Full loads of the prefix (start-up and after compaction)")
WATCH_RESTARTS = Counter("dnssync_resolver_etcd_watch_restarts", "Watches resumed after the stream broke")
EVENTS_APPLIED = Counter("dnssync_resolver_etcd_events", "Key changes applied from the etcd watch")

RETRYABLE: tuple[type[BaseException], ...] = (etcd_errors.ClientError, grpc.aio.AioRpcError, OSError, TimeoutError)
PUT = rpc.Event.PUT
LEASE_CACHE_SECONDS = 5.0
LEASE_REFRESH_SECONDS = 10.0  # how often kept-alive leases are re-read (their keys' TTLs follow)
RECONNECT_EVERY = 3  # failed attempts in a row after which the gRPC channel is rebuilt
LOAD_TIMEOUT = 120.0  # a full read of the prefix, all pages
LEASE_TIMEOUT = 30.0  # all lease look-ups of one load or one watch response
LEASE_LOOKUPS_IN_FLIGHT = 32


class MirrorStore(Protocol):
    def replace(self, revision: int, changes: Iterable[KeyChange]) -> None: ...
    def apply(self, revision: int, changes: Sequence[KeyChange]) -> None: ...


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


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _StreamBroke(Exception):
    """The watch had been established and then broke: resume at once, with a fresh backoff."""


def _is_auth_error(exc: BaseException) -> bool:
    if isinstance(exc, etcd_errors.UnauthenticatedError):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAUTHENTICATED


def _worth_retrying(exc: BaseException) -> bool:
    """Any error, but not a cancellation (tenacity would swallow it) nor a broken stream (resumed at once)."""
    return isinstance(exc, Exception) and not isinstance(exc, _StreamBroke)


class EtcdMirror:
    """Keeps ``store`` equal to the keys under ``prefix`` in etcd. ``await mirror.run()`` (runs until cancelled)."""

    def __init__(self, client: Any, store: MirrorStore, prefix: str = "/skydns", *,
                 on_first_load: Callable[[], None] | None = None, backoff_initial: float = 0.1,
                 backoff_max: float = 5.0, create_timeout: float = 5.0, page: int = 5000,
                 lease_refresh: float = LEASE_REFRESH_SECONDS) -> None:
        self.client = client
        self.store = store
        self.prefix = prefix.rstrip("/") + "/"
        self._prefix_bytes = self.prefix.encode()
        self._on_first_load = on_first_load
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._create_timeout = create_timeout
        self._page = page
        self._leases = LeaseDeadlines(client)
        self._lease_refresh = lease_refresh
        self._leased: dict[str, tuple[int, KeyChange]] = {}  # key -> (lease id, the change the store holds)
        self.revision = 0  # last etcd revision applied to the store
        self.ready = asyncio.Event()  # set once the first full load is in the store
        self.connected = False
        self.down_since: str | None = _utc_now()  # wall-clock time etcd became unreachable (None: connected)
        self.last_error: str | None = None
        self.loads = 0
        self.watch_restarts = 0
        self._need_load = True
        self._new_channel = False
        self._warned = False
        self._applied = asyncio.Condition()

    # -- status -----------------------------------------------------------------------------------------------

    def is_ready(self) -> bool:
        return self.ready.is_set()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Liveness: always OK while the process serves; the details say whether etcd is followed live."""
        details: dict[str, Any] = {"ready": self.is_ready(), "revision": self.revision}
        if self.connected:
            details["etcd"] = "connected"
        else:
            details["etcd"] = "unreachable"
            details["etcd_unreachable_since"] = self.down_since
            details["last_error"] = self.last_error
            details["detail"] = (f"serving last good state (revision {self.revision}), etcd unreachable since "
                                 f"{self.down_since}" if self.is_ready() else
                                 f"no data loaded yet, etcd unreachable since {self.down_since}")
        return True, details

    async def wait_revision(self, revision: int, timeout: float) -> None:
        """Wait until the store has applied ``revision`` (for tests and tools; raises ``TimeoutError``)."""
        async with asyncio.timeout(timeout), self._applied:
            await self._applied.wait_for(lambda: self.revision >= revision)

    def _mark_up(self) -> None:
        if not self.connected:
            self.connected = True
            ETCD_CONNECTED.set(1)
            if self._warned:
                log.info("etcd_reachable_again", down_since=self.down_since, revision=self.revision)
            self._warned = False
            self.down_since = None
            self.last_error = None

    def _mark_down(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}".strip()
        if self.connected or self.down_since is None:
            self.down_since = _utc_now()
        self.connected = False
        ETCD_CONNECTED.set(0)
        if not self._warned:
            self._warned = True
            log.warning("etcd_unreachable", error=self.last_error, revision=self.revision,
                        serving=("last good state" if self.is_ready() else "SERVFAIL, nothing loaded yet"))

    # -- the loop ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        refresher = asyncio.create_task(self._refresh_leases_forever(), name="etcd-lease-refresh")
        try:
            await self._run()
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    async def _run(self) -> None:
        while True:
            retrying = AsyncRetrying(
                wait=wait_exponential_jitter(multiplier=self._backoff_initial, max=self._backoff_max,
                                             jitter=self._backoff_initial),
                retry=retry_if_exception(_worth_retrying), before_sleep=self._before_retry, reraise=True)
            try:
                async for attempt in retrying:
                    with attempt:
                        await self._session()
            except _StreamBroke:
                self.watch_restarts += 1
                WATCH_RESTARTS.inc()

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and not isinstance(exc, RETRYABLE):
            # Not an etcd outage but a bug or bad data: keep serving the last good state, say so loudly, and
            # rebuild from a fresh full load rather than trust a store an apply may have left half-done.
            log.error("etcd_mirror_failed", error=repr(exc), exc_info=exc, revision=self.revision)
            self._need_load = True
            self.last_error = f"{type(exc).__name__}: {exc}"
        elif exc is not None:
            self._mark_down(exc)
        if exc is not None and (state.attempt_number % RECONNECT_EVERY == 0 or _is_auth_error(exc)):
            self._new_channel = True  # an expired auth token, or a channel in a bad state: start afresh
        log.debug("etcd_retry", attempt=state.attempt_number, error=repr(exc),
                  sleep=round(state.next_action.sleep, 3) if state.next_action else None)

    async def _session(self) -> None:
        if self._new_channel:
            self._new_channel = False
            log.debug("etcd_new_channel")
            try:
                await within(self._create_timeout, self.client.close())
            except Exception as exc:  # closing a broken channel may fail; the new one is what matters
                log.debug("etcd_channel_close_failed", error=repr(exc))
        await self.client.connect()  # (re)authenticates when the client was closed
        while True:
            if self._need_load:
                await self._load()
            try:
                await self._watch(self.revision + 1)
            except etcd_errors.RevisionCompactedError as exc:
                log.info("etcd_compacted_reloading", revision=self.revision, compacted=exc.compacted_revision)
                self._need_load = True

    async def _load(self) -> None:
        started = time.monotonic()
        # gRPC deadlines bound each call; the asyncio timeouts are a second fence, so that no stuck channel can
        # hold the mirror for ever (it would silently stop following etcd).
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
        # The loaded index is long-lived: move it out of the cyclic GC's reach, so a full collection (which
        # would otherwise walk every record object) cannot pause the answers for tens of milliseconds.
        gc.collect()
        gc.freeze()
        self._need_load = False
        self.loads += 1
        MIRROR_LOADS.inc()
        await self._advance(revision)
        self._mark_up()
        log.info("etcd_loaded", keys=loaded, revision=revision,
                 seconds=round(time.monotonic() - started, 3))
        if not self.ready.is_set():
            self.ready.set()
            MIRROR_READY.set(1)
            if self._on_first_load is not None:
                self._on_first_load()

    async def _advance(self, revision: int) -> None:
        self.revision = revision
        MIRROR_REVISION.set(revision)
        async with self._applied:
            self._applied.notify_all()

    async def _watch(self, start_revision: int) -> None:
        assert self.client.channel is not None
        stub = rpc.WatchStub(self.client.channel)
        call = stub.Watch(metadata=self.client.metadata)
        established = False
        try:
            create = rpc.WatchCreateRequest(key=self._prefix_bytes, range_end=prefix_range_end(self._prefix_bytes),
                                            start_revision=start_revision)
            await within(self._create_timeout, call.write(rpc.WatchRequest(create_request=create)))
            first = await within(self._create_timeout, call.read())
            self._check(first)
            if not first.created:
                raise etcd_errors.ClientError("etcd watch: no 'created' response")
            established = True
            self._mark_up()
            await self._apply(first.events)
            while True:
                resp = await call.read()
                self._check(resp)
                if resp.events:
                    await self._apply(resp.events)
        except etcd_errors.RevisionCompactedError:
            raise
        except RETRYABLE as exc:
            if not established:
                raise
            self._mark_down(exc)
            raise _StreamBroke from exc
        finally:
            call.cancel()

    @staticmethod
    def _check(resp: Any) -> None:
        if resp is grpc.aio.EOF:
            raise etcd_errors.ConnectionFailedError("etcd closed the watch stream")
        if resp.compact_revision:
            raise etcd_errors.RevisionCompactedError(resp.compact_revision)
        if resp.canceled:
            raise etcd_errors.ClientError(f"etcd cancelled the watch: {resp.cancel_reason or 'no reason given'}")

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
            EVENTS_APPLIED.inc(len(changes))
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
