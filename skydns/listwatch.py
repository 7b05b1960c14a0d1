"""The shape both list/watch loops share: the resolver's etcd mirror and the syncer's Kubernetes reflectors.

One loop, four verbs, the same rules on both sides (the Go informer/Reflector and clientv3 users' recipe):

* **load**: read everything at one version (a paged etcd range at one revision; a paged Kubernetes LIST) and
  hand it over whole, diffed against what was there before, so a reader never sees half a load;
* **apply**: hand over each change as the stream delivers it (one etcd revision; one watch event), in order;
* **resume**: follow the stream from the newest version seen (events and bookmarks alike, never the list's
  when something newer was heard); a clean end of the stream resumes at once;
* **reload**: the resume point is gone (etcd compaction, Kubernetes ``410 Gone``/``Expired``): :class:`Expired`
  is raised by ``resume`` and the loop loads again - exactly one load per expiry, never a loop of them.

Failures: a transient error (connection refused or cut, a timeout, a 5xx) is retried with jittered exponential
backoff, 0.1 s doubling to ``backoff_max`` (30 s); a stream that was established, ran for at least a second and
then broke resumes at once with a fresh backoff (one that breaks sooner is backed off: no hot loop against a
server that accepts and drops). ``retry_after(exc)`` lets a side honour a server's ``Retry-After`` (429). An
error that is not transient (a bug, a store that raised) is logged as an error and repaired by a full reload after the
backoff. Cancellation always propagates. While the source is away the last good state stays in use;
:meth:`ListWatch.health` says since when, and ``last_heard`` (``time.monotonic()``) tells how long the stream
has been silent.

A side implements ``load``, ``resume`` and ``transient`` (and may override ``retry_after``, ``on_failure``);
inside ``resume`` it calls :meth:`ListWatch.established` once the stream is open and :meth:`ListWatch.heard`
for every message (bookmarks and keep-alives included). This module does no I/O of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from abc import ABC, abstractmethod
from typing import Any

import structlog

log = structlog.get_logger("skydns.listwatch")
STEADY_SECONDS = 1.0  # a stream that broke sooner than this after opening is retried with backoff, not at once


class Expired(Exception):
    """The version to resume from is no longer available (etcd compaction, Kubernetes 410): load again."""

    def __init__(self, reason: str = "expired") -> None:
        super().__init__(reason)
        self.reason = reason


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Backoff:
    """Jittered exponential backoff: ``initial`` doubling to ``maximum``; each delay drawn in [d/2, d]."""

    def __init__(self, initial: float = 0.1, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** self.failures))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


class ListWatch(ABC):
    """``await loop.run()`` runs until cancelled (see the module docstring)."""

    #: names the loop in logs (``"etcd /skydns/"``, ``"Service"``)
    what: str = "list/watch"
    #: the log events of an outage (one warning) and of its end (one info); a side may name them after its source
    unreachable_event: str = "source_unreachable"
    reachable_event: str = "source_reachable_again"

    def __init__(self, *, backoff_initial: float = 0.1, backoff_max: float = 30.0) -> None:
        self.backoff = Backoff(backoff_initial, backoff_max)
        self.ready = asyncio.Event()  # set after the first load
        self.connected = False
        self.down_since: str | None = utc_now()  # wall-clock time the source became unreachable (None: up)
        self.last_error: str | None = None
        self.last_heard = time.monotonic()
        self.loads = 0
        self.reloads = 0  # loads after an expiry or a failure (not the first)
        self.resumes = 0  # streams resumed after a clean end or a break
        self.failures_in_a_row = 0
        self._need_load = True
        self._warned = False
        self._established = False
        self._established_at = 0.0

    # -- what a side implements ---------------------------------------------------------------------------

    @abstractmethod
    async def load(self) -> None:
        """Read everything at one version and hand it over whole."""

    @abstractmethod
    async def resume(self) -> None:
        """Follow the stream from the newest version seen; return on a clean end, raise :class:`Expired` when
        that version is gone, raise anything else on failure."""

    @abstractmethod
    def transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an outage (retried quietly) rather than a bug (logged as an error, then reload)."""

    def retry_after(self, exc: BaseException) -> float | None:
        """Seconds the server asked us to wait (``Retry-After``), if any."""
        return None

    def on_failure(self, exc: BaseException) -> None:
        """Called after every failed attempt (``failures_in_a_row`` already counts it)."""
        return None

    def on_expired(self, exc: Expired) -> None:
        """Called when the resume point is gone, before the reload."""
        return None

    def log_context(self) -> dict[str, Any]:
        """Extra fields for the outage and recovery log lines (``revision=...``)."""
        return {}

    # -- what a side calls ----------------------------------------------------------------------------------

    def established(self) -> None:
        """The stream is open: the source is reachable."""
        self._established = True
        self._established_at = time.monotonic()
        self.heard()
        self.mark_up()

    def heard(self) -> None:
        self.last_heard = time.monotonic()

    def silent_for(self) -> float:
        return time.monotonic() - self.last_heard

    def is_ready(self) -> bool:
        return self.ready.is_set()

    def mark_up(self) -> None:
        self.backoff.reset()
        self.failures_in_a_row = 0
        if not self.connected:
            self.connected = True
            if self._warned:
                log.info(self.reachable_event, source=self.what, down_since=self.down_since, **self.log_context())
            self._warned = False
            self.down_since = None
            self.last_error = None

    def mark_down(self, exc: BaseException) -> None:
        self.last_error = describe(exc)
        if self.connected or self.down_since is None:
            self.down_since = utc_now()
        self.connected = False
        if not self._warned:
            self._warned = True
            log.warning(self.unreachable_event, source=self.what, error=self.last_error,
                        serving="last good state" if self.is_ready() else "nothing loaded yet", **self.log_context())

    def health(self) -> dict[str, Any]:
        details: dict[str, Any] = {"ready": self.is_ready(), "connected": self.connected,
                                   "silent_seconds": round(self.silent_for(), 1)}
        if not self.connected:
            details["unreachable_since"] = self.down_since
            details["last_error"] = self.last_error
        return details

    # -- the loop -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self._established = False
            try:
                if self._need_load:
                    await self.load()
                    self._need_load = False
                    self.loads += 1
                    self.heard()
                    self.mark_up()
                    self.ready.set()
                await self.resume()
                self.resumes += 1  # a clean end of the stream: resume at once
            except Expired as exc:
                log.info("resume_point_gone_reloading", source=self.what, reason=exc.reason)
                self.on_expired(exc)
                self._need_load = True
                self.reloads += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(exc)

    async def _failed(self, exc: Exception) -> None:
        self.failures_in_a_row += 1
        if self.transient(exc):
            self.mark_down(exc)
        else:
            log.error("list_watch_failed", source=self.what, error=repr(exc), exc_info=exc)
            self.last_error = describe(exc)
            if self.loads:
                self.reloads += 1
            self._need_load = True  # never trust state a failed apply may have left half-done
        self.on_failure(exc)
        if self._established and self.transient(exc) and \
                time.monotonic() - self._established_at >= STEADY_SECONDS:
            self.backoff.reset()  # it was open for a while and broke: resume at once
            self.resumes += 1
            return
        delay = self.backoff.next()
        asked = self.retry_after(exc)
        if asked is not None:
            delay = max(delay, asked)
        log.debug("list_watch_retry", source=self.what, error=describe(exc), sleep=round(delay, 3))
        await asyncio.sleep(delay)


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
