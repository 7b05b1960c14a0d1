"""One kind's list/watch reflector: a projection cache kept exact by a paged LIST, then a WATCH (client-go's
Reflector on :class:`skydns.listwatch.ListWatch`; no ``Watch``/``SharedInformer`` helpers, no model classes).

Rules:

* **load** lists the kind in pages (``limit`` + ``continue``; an expired continue token, HTTP 410, restarts the
  list from scratch once, a second 410 fails the load), projects each page as it arrives (the whole objects
  are dropped at once), replaces the cache and hands over the diff: only the objects whose projection really
  changed (:func:`syncer.kube.projection.same`), nothing at all on an unchanged cluster. After a failure that
  was not an outage (the consumer may have missed changes) the next load hands over every object instead.
  One attempt: it raises on failure (the loop retries; ``--once`` calls it under its own bounded retry,
  :func:`list_snapshot`).
* **resume** watches from the newest resourceVersion seen, events and BOOKMARKs alike (opaque: only ever
  sent back, never compared), with ``allowWatchBookmarks=true``, ``timeoutSeconds`` drawn from
  ``watch_timeout`` and a client deadline 30 s above it. No line for ``inactivity_timeout`` seconds ends the
  watch (logged, counted) and it resumes at once, which replays what a dead connection lost. ADDED/MODIFIED
  are projected and handed over only when the projection changed; DELETED removes (an unknown object is
  ignored); BOOKMARK moves the resourceVersion only. An ERROR event with code 410, or HTTP 410 on the watch
  request, raises :class:`~skydns.listwatch.Expired` (the loop loads exactly once); other ERROR events are
  outages. Lines already buffered are applied together and handed over in one call.
* **failures**: connection errors, timeouts, 5xx and 429 are outages (429/503 wait at least the server's
  ``Retry-After``). 401/403 are retried with the same backoff, because RBAC may be fixed while we run, but
  logged as an error, ``kube_access_denied`` with the server's message, once per outage, and shown in
  :meth:`Reflector.health` as ``"forbidden": true`` until the API answers again.
* **metrics**: ``dnssync_watch_events_total{kind,type}`` per event, ``dnssync_relists_total{kind,reason}``
  per load after the first (``expired``, ``error``), ``dnssync_cached_objects{kind}``, ``dnssync_kube_api_up{kind}``
  (1 while the API answers this kind, 0 during an outage or a refusal) and ``dnssync_kube_forbidden{kind}``.

Each :class:`~syncer.kube.changes.ObjectChange` carries ``received``, the ``time.monotonic()`` instant its line
(or the last list page) was read.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from tenacity import AsyncRetrying

from skydns.listwatch import Expired, ListWatch
from syncer.config import ANNOTATION_PREFIXES
from syncer.kube.api import (
    PAGE,
    ApiStatusError,
    KubeApiError,
    KubeClient,
    KubeProtocolError,
    describe,
    is_access_denied,
    is_outage,
)
from syncer.kube.changes import Key, Obj, ObjectChange, OnChanges
from syncer.kube.projection import object_key, project, same
from syncer.metrics import CACHED_OBJECTS, KUBE_API_UP, KUBE_FORBIDDEN, RELISTS, WATCH_EVENTS, WATCH_RESTARTS
from syncer.model import KINDS, ClusterSnapshot
from syncer.retrying import budget, retry_policy

READ_MARGIN = 30.0  # the client's deadline for a whole watch, beyond the server's timeoutSeconds
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")


class WatchError(KubeApiError):
    """An ERROR event other than 410 Expired: the server gave up on the watch; an outage, resumed."""

    def __init__(self, code: Any, reason: str, message: str) -> None:
        self.code = code
        super().__init__(f"watch ERROR event {code} {reason}: {message}")


def diff(kind: str, old: Mapping[Key, Obj], new: Mapping[Key, Obj], received: float,
         everything: bool = False) -> list[ObjectChange]:
    """The changes from ``old`` to ``new``: objects whose projection changed (all of them with ``everything``),
    then the ones that went away."""
    out = [ObjectChange(kind, key, old.get(key), obj, received)
           for key, obj in new.items() if everything or not same(old.get(key), obj)]
    out += [ObjectChange(kind, key, obj, None, received) for key, obj in old.items() if key not in new]
    return out


class Reflector(ListWatch):
    """``await r.run()`` keeps ``r.cache`` exact until cancelled; ``await r.load()`` alone is one paged list.

    ``run()`` always starts with a load: a ``load()`` called before it is repeated (not counted as a relist)."""

    unreachable_event = "kube_api_unreachable"
    reachable_event = "kube_api_reachable_again"

    def __init__(self, client: KubeClient, kind: str, *, namespace: str | None = None, label_selector: str = "",
                 field_selector: str = "", on_changes: OnChanges | None = None,
                 annotation_prefixes: tuple[str, ...] = ANNOTATION_PREFIXES, page: int = PAGE,
                 watch_timeout: tuple[int, int] = (300, 600), inactivity_timeout: float = 70.0,
                 backoff_max: float = 30.0) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; known: {sorted(KINDS)}")
        super().__init__(backoff_max=backoff_max)
        self.client = client
        self.kind = kind
        self.namespace = namespace if KINDS[kind].namespaced and KINDS[kind].scoped else None
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.on_changes = on_changes
        self.annotation_prefixes = annotation_prefixes
        self.page = page
        self.watch_timeout = watch_timeout
        self.inactivity_timeout = inactivity_timeout
        self.what = kind if not self.namespace else f"{kind} in namespace {self.namespace}"
        self.cache: dict[Key, Obj] = {}
        self.resource_version = ""
        self.forbidden = False  # the last attempt got 401/403, and nothing succeeded since
        KUBE_API_UP.labels(kind).set(0)  # until the first list answers
        KUBE_FORBIDDEN.labels(kind).set(0)
        self.denied: str | None = None  # the server's message for it
        self.inactivity_restarts = 0
        self.list_restarts = 0  # lists restarted after an expired continue token
        self._listed = False
        self._relist_reason: str | None = None  # why the loop loads again: "expired" or "error"
        self._hand_over_all = False
        self.log = structlog.get_logger("syncer.kube.reflector").bind(
            kind=kind, **({"namespace": self.namespace} if self.namespace else {}))

    # -- load ----------------------------------------------------------------------------------------------

    async def load(self) -> None:
        items, resource_version = await self._list()
        received = time.monotonic()
        changes = diff(self.kind, self.cache, items, received, everything=self._hand_over_all)
        self.cache = items
        self.resource_version = resource_version
        self._hand_over_all = False
        if self._listed and self._relist_reason:
            RELISTS.labels(self.kind, self._relist_reason).inc()
            self.log.info("relisted", reason=self._relist_reason, objects=len(items), changed=len(changes),
                          resource_version=resource_version)
        self._listed = True
        self._relist_reason = None
        CACHED_OBJECTS.labels(self.kind).set(len(self.cache))
        self._hand_over(changes)
        # The cache is long-lived: out of the cyclic GC's scans, which would otherwise walk every cached object
        # again and again while a large cluster loads (and pause the loop for seconds each time).
        gc.freeze()

    async def _list(self) -> tuple[dict[Key, Obj], str]:
        items: dict[Key, Obj] = {}
        token: str | None = None
        restarted = False
        while True:
            try:
                page = await self.client.list_page(self.kind, self.namespace, label_selector=self.label_selector,
                                                   field_selector=self.field_selector, limit=self.page,
                                                   continue_token=token)
            except ApiStatusError as exc:
                if exc.status != 410 or restarted:
                    raise
                self.log.info("list_expired_restarting", error=exc.message, objects_so_far=len(items))
                items, token, restarted = {}, None, True
                self.list_restarts += 1
                continue
            for item in page.get("items") or []:
                if isinstance(item, dict):
                    projected = project(item, self.kind, self.annotation_prefixes)
                    items[object_key(projected)] = projected
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    # -- resume --------------------------------------------------------------------------------------------

    async def resume(self) -> None:
        timeout = random.randint(*self.watch_timeout)
        stream = self.client.watch(self.kind, self.namespace, resource_version=self.resource_version,
                                   label_selector=self.label_selector, field_selector=self.field_selector,
                                   timeout_seconds=timeout, read_timeout=timeout + READ_MARGIN)
        try:
            await stream.open()
        except ApiStatusError as exc:
            if exc.status == 410:
                raise Expired(f"watch from {self.resource_version}: {exc.message}") from exc
            raise
        try:
            self.established()
            while await self._next_batch(stream):
                pass
        finally:
            await stream.aclose()

    async def _next_batch(self, stream: Any) -> bool:
        """Wait for a line, apply it and every line already buffered, hand the changes over; False at the end."""
        timer = asyncio.timeout(self.inactivity_timeout)
        try:
            async with timer:
                event = await anext(stream)
        except StopAsyncIteration:
            return False
        except TimeoutError:
            if not timer.expired():
                raise
            self.inactivity_restarts += 1
            WATCH_RESTARTS.labels(self.kind, "inactivity").inc()
            self.log.info("watch_inactive_restarting", silent_seconds=self.inactivity_timeout,
                          resource_version=self.resource_version)
            return False
        changes: list[ObjectChange] = []
        try:
            while True:
                received = time.monotonic()
                self.heard()
                self.apply_event(event, received, changes)
                if not stream.buffered():
                    break
                event = await anext(stream)
        finally:
            CACHED_OBJECTS.labels(self.kind).set(len(self.cache))
            self._hand_over(changes)
        return True

    def apply_event(self, event: Mapping[str, Any], received: float, changes: list[ObjectChange]) -> None:
        """Apply one watch event to the cache and the resourceVersion; append the real change, if any."""
        kind_of_event = event.get("type")
        obj = event.get("object")
        if kind_of_event not in EVENT_TYPES or not isinstance(obj, dict):
            raise KubeProtocolError(f"watch {self.kind}: not a watch event: type {kind_of_event!r}")
        WATCH_EVENTS.labels(self.kind, kind_of_event).inc()
        if kind_of_event == "ERROR":
            raise self._error_event(obj)
        meta = obj.get("metadata")
        resource_version = str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
        if kind_of_event != "BOOKMARK":
            self._apply_object(kind_of_event, obj, received, changes)
        if resource_version:
            self.resource_version = resource_version

    def _apply_object(self, kind_of_event: str, obj: Obj, received: float, changes: list[ObjectChange]) -> None:
        projected = project(obj, self.kind, self.annotation_prefixes)
        key = object_key(projected)
        old = self.cache.get(key)
        if kind_of_event == "DELETED":
            if old is not None:
                del self.cache[key]
                changes.append(ObjectChange(self.kind, key, old, None, received))
            return
        self.cache[key] = projected
        if not same(old, projected):
            changes.append(ObjectChange(self.kind, key, old, projected, received))

    def _error_event(self, status: Obj) -> Exception:
        code, reason, message = status.get("code"), str(status.get("reason") or ""), str(status.get("message") or "")
        if code == 410 or reason in ("Expired", "Gone"):
            return Expired(f"watch from {self.resource_version}: {message or reason}")
        return WatchError(code, reason, message)

    def _hand_over(self, changes: list[ObjectChange]) -> None:
        if changes and self.on_changes is not None:
            self.on_changes(changes)

    # -- failures ------------------------------------------------------------------------------------------

    def transient(self, exc: BaseException) -> bool:
        return is_outage(exc) or is_access_denied(exc) or isinstance(exc, WatchError)

    def retry_after(self, exc: BaseException) -> float | None:
        if isinstance(exc, ApiStatusError) and exc.status in (429, 503):
            return exc.retry_after
        return None

    def on_failure(self, exc: BaseException) -> None:
        if is_access_denied(exc):
            assert isinstance(exc, ApiStatusError)
            if not self.forbidden:
                self.log.error("kube_access_denied", status=exc.status, message=exc.message, verb=exc.verb,
                               server=self.client.server)
            self.forbidden = True
            self.denied = exc.message
            KUBE_FORBIDDEN.labels(self.kind).set(1)
            KUBE_API_UP.labels(self.kind).set(0)
        elif not self.transient(exc):
            self._hand_over_all = True  # the consumer may have missed what the failed attempt applied
            self._relist_reason = "error"

    def on_expired(self, exc: Expired) -> None:
        self._relist_reason = "expired"

    def mark_up(self) -> None:
        super().mark_up()
        KUBE_API_UP.labels(self.kind).set(1)
        if self.forbidden:
            self.log.info("kube_access_restored")
            self.forbidden = False
            self.denied = None
            KUBE_FORBIDDEN.labels(self.kind).set(0)

    def mark_down(self, exc: BaseException) -> None:
        super().mark_down(exc)
        KUBE_API_UP.labels(self.kind).set(0)

    def log_context(self) -> dict[str, Any]:
        return {"kind": self.kind, "resource_version": self.resource_version}

    def health(self) -> dict[str, Any]:
        details = super().health()
        details.update(kind=self.kind, resource_version=self.resource_version, cached=len(self.cache),
                       forbidden=self.forbidden, inactivity_restarts=self.inactivity_restarts)
        if self.namespace:
            details["namespace"] = self.namespace
        if self.forbidden:
            details["access_denied"] = self.denied
        return details


# ---------------------------------------------------------------------------------------------- --once


async def list_snapshot(client: KubeClient, kinds: Iterable[str], *, namespace: str | None = None,
                        label_selector: str = "", annotation_prefixes: tuple[str, ...] = ("",),
                        resource_versions: dict[str, str] | None = None) -> ClusterSnapshot:
    """One paged list of each kind (``label_selector`` only for the kinds it applies to) into a snapshot of
    projections, each under a bounded retry of outages (:mod:`syncer.retrying`); :class:`KubeApiError` when it
    runs out or on any other API error. The default ``annotation_prefixes`` keeps every Pod annotation."""
    snapshot = ClusterSnapshot()
    for kind in kinds:
        spec = KINDS[kind]
        reflector = Reflector(client, kind, namespace=namespace,
                              label_selector=label_selector if spec.selectable else "",
                              annotation_prefixes=annotation_prefixes)
        await _load_with_retries(reflector)
        getattr(snapshot, spec.field).extend(reflector.cache.values())
        if resource_versions is not None:
            resource_versions[kind] = reflector.resource_version
        reflector.log.debug("listed", count=len(reflector.cache), resource_version=reflector.resource_version)
    return snapshot


async def _load_with_retries(reflector: Reflector) -> None:
    server, kind = reflector.client.server, reflector.kind
    seconds = budget()
    try:
        async for attempt in AsyncRetrying(**retry_policy(f"list {kind} from {server}", seconds, is_outage,
                                                           describe)):
            with attempt:
                await reflector.load()
    except ApiStatusError as exc:
        if is_outage(exc):
            raise KubeApiError(f"Kubernetes API {server}: list {kind}: still failing after {seconds:g} s of retries "
                               f"({describe(exc)})") from None
        raise KubeApiError(f"Kubernetes API {server}: list {kind}: {describe(exc)}") from None
    except Exception as exc:
        if is_outage(exc):
            raise KubeApiError(f"Kubernetes API {server} unreachable after {seconds:g} s of retries "
                               f"(list {kind}: {describe(exc)})") from None
        raise
