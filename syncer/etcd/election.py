"""One writer per owner id: leader election through etcd, and the fence every write of the leader carries.

etcd's own election recipe (``client/v3/concurrency``), on the records' etcd itself:

* **campaign**: a lease of ``ttl`` seconds is granted and ``<prefix><owner id>/<lease id>`` is created with it, in a
  transaction that compares ``create_revision == 0`` (the key is new); its value names the candidate (host, pid).
  The candidate whose key has the **lowest create revision** leads; the others wait for a key under the prefix to
  be deleted (a leader resigned or its lease ran out) and look again;
* **keep-alive**: the lease is refreshed every ``ttl / 3`` from the moment it is granted - while the candidate
  waits too, and once more the moment it wins, so a candidate never leads on a lease about to run out; a refresh
  answered with TTL 0 means the lease is gone (``lease expired``); no successful refresh for ``ttl`` seconds means
  etcd is unreachable - either way the lead is lost, locally, before or at the moment etcd itself lets the key go;
  a campaign retried after an error revokes its old lease first, so no stale key waits in the queue;
* **fencing**: every write transaction of the leader also compares ``create_revision(leader key) == the revision it
  was created at`` (:meth:`Leadership.compares`), so a leader that was paused, lost its lease and wakes up with a
  stale view can commit nothing: etcd checks it atomically with the write, whatever the clocks and pauses. The
  failure branch reads the leader key (:meth:`Leadership.failure_ops`), which tells "fenced" (the key is gone or
  another one) from an ordinary record conflict (:meth:`Leadership.still_held`);
* **resign**: revoking the lease deletes the key at once, so a waiting candidate leads within one watch round trip.

Nothing here decides what to write: the controller starts and stops its work on :meth:`Election.campaign`
returning and on :meth:`Election.keep` ending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from aetcd import rpc
from aetcd.utils import prefix_range_end

from skydns.etcd import compare_absent, compare_created, cut_by_close, get_op, put_op, txn
from skydns.mirror import REQUIRE_LEADER, within

log = structlog.get_logger("syncer.election")
CALL_TIMEOUT = 5.0


class LostLead(Exception):
    """We no longer lead; ``reason`` is ``fenced``, ``lease expired`` or ``etcd unreachable``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"lost the lead ({reason}){': ' + detail if detail else ''}")
        self.reason = reason


class Fenced(LostLead):
    """A write failed its leader compare: another candidate leads now (or our key is gone)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("fenced", detail)


@dataclass(frozen=True)
class Leadership:
    """What a leader's writes compare: its key, at the revision it was created."""

    key: bytes
    create_revision: int

    def compares(self) -> list[Any]:
        return [compare_created(self.key, self.create_revision)]

    def failure_ops(self) -> list[Any]:
        return [get_op(self.key)]

    def still_held(self, failure_response: Any) -> bool:
        """Whether the failure branch of a transaction (:meth:`failure_ops`) found our key still leading."""
        for response in failure_response.responses:
            kvs = response.response_range.kvs
            return bool(kvs) and kvs[0].create_revision == self.create_revision
        return False


def identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


class Election:
    def __init__(self, client: Any, prefix: str, owner_id: str, ttl: float) -> None:
        self.client = client
        self.prefix = f"{prefix.rstrip('/')}/{owner_id}/".encode()
        self.ttl = max(2, round(ttl))
        self.lease_id = 0
        self.leadership: Leadership | None = None
        self.renewed_at = 0.0  # monotonic instant of the last successful lease grant or refresh
        self.standing_by: dict[str, Any] | None = None  # who leads while we wait (None: leading or not known)

    # -- campaign -------------------------------------------------------------------------------------------

    async def campaign(self, timeout: float | None = None) -> Leadership:
        """Wait until we lead (``TimeoutError`` after ``timeout``); etcd errors propagate (the caller retries)."""
        async with asyncio.timeout(timeout):
            key, revision = await self._enter()
            while True:
                leader = await self._leader()
                if leader is not None and leader.key == key:
                    self.leadership = Leadership(key, leader.create_revision)
                    self.standing_by = None
                    return self.leadership
                if leader is None:  # our own key is gone (lease expired while we waited): campaign anew
                    key, revision = await self._enter()
                    continue
                if self.standing_by is None:
                    log.info("standing_by", leader=self._describe(leader))
                self.standing_by = self._describe(leader)
                revision = await self._wait_for_delete(revision)
                if not await self._refresh():  # a candidate's lease is kept alive while it waits, too
                    key, revision = await self._enter()

    async def _refresh(self) -> bool:
        """Refresh our lease once; False when etcd says it is gone."""
        reply = await within(CALL_TIMEOUT, self.client.refresh_lease(self.lease_id))
        if int(getattr(reply, "TTL", 0)) <= 0:
            return False
        self.renewed_at = time.monotonic()
        return True

    async def _enter(self) -> tuple[bytes, int]:
        if self.lease_id:  # a campaign retried after an error: our old key must not stand in the queue
            with contextlib.suppress(Exception):
                await within(CALL_TIMEOUT, self.client.revoke_lease(self.lease_id))
            self.lease_id = 0
        grant = await within(CALL_TIMEOUT, self.client.lease(self.ttl))
        self.lease_id = grant.id
        self.renewed_at = time.monotonic()
        key = self.prefix + f"{grant.id:016x}".encode()
        value = json.dumps(identity()).encode()
        ok, revision, _ = await within(CALL_TIMEOUT, txn(self.client, [compare_absent(key)],
                                                         [put_op(key, value, lease=grant.id)]))
        if not ok:  # cannot happen with a fresh lease id; be safe
            raise RuntimeError(f"election key {key.decode()} already exists")
        return key, revision

    async def _leader(self) -> Any | None:
        """The key-value with the lowest create revision under the prefix (the leader), or None."""
        await self.client.connect()  # where a suspect channel (a frozen member) is replaced
        assert self.client.kvstub is not None
        request = rpc.RangeRequest(key=self.prefix, range_end=prefix_range_end(self.prefix), limit=1,
                                   sort_target=rpc.RangeRequest.CREATE, sort_order=rpc.RangeRequest.ASCEND)
        response = await within(CALL_TIMEOUT, self.client.kvstub.Range(request, timeout=CALL_TIMEOUT,
                                                                       metadata=self.client.metadata))
        return response.kvs[0] if response.kvs else None

    async def _wait_for_delete(self, revision: int) -> int:
        """Block until a key under the prefix is deleted after ``revision`` (or a third of the TTL passes, so a
        missed event costs at most that); returns the revision to wait from next."""
        await self.client.connect()
        assert self.client.channel is not None
        call = rpc.WatchStub(self.client.channel).Watch(metadata=(*(self.client.metadata or ()), *REQUIRE_LEADER))
        try:
            create = rpc.WatchCreateRequest(key=self.prefix, range_end=prefix_range_end(self.prefix),
                                            start_revision=revision + 1,
                                            filters=[rpc.WatchCreateRequest.NOPUT])
            await within(CALL_TIMEOUT, call.write(rpc.WatchRequest(create_request=create)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ttl / 3):
                    while True:
                        response = await call.read()
                        if response is grpc.aio.EOF:
                            break
                        if response.compact_revision or response.canceled:
                            break
                        revision = max(revision, response.header.revision)
                        if response.events:
                            break
            return revision
        except asyncio.CancelledError:
            if cut_by_close():  # the client replaced its channel under us: look again
                return revision
            raise
        finally:
            call.cancel()

    # -- holding it -----------------------------------------------------------------------------------------

    async def keep(self) -> None:
        """Refresh the lease at once and then every TTL/3 until it can't be: raises :class:`LostLead` (never
        returns)."""
        first = True
        while True:
            if not first:
                await asyncio.sleep(self.ttl / 3)
            first = False
            try:
                reply = await within(CALL_TIMEOUT, self.client.refresh_lease(self.lease_id))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - self.renewed_at >= self.ttl:
                    raise LostLead("etcd unreachable", f"no lease refresh for {self.ttl} s ({exc!r})") from exc
                log.debug("lease_refresh_failed", error=repr(exc))
                continue
            if int(getattr(reply, "TTL", 0)) <= 0:
                raise LostLead("lease expired", f"lease {self.lease_id:x} is gone")
            self.renewed_at = time.monotonic()

    def valid(self) -> bool:
        """Whether the lease can still be alive in etcd (we refreshed it less than a TTL ago)."""
        return self.leadership is not None and time.monotonic() - self.renewed_at < self.ttl

    async def resign(self) -> None:
        """Give the lead up at once (revoke the lease: our key goes, a waiting candidate leads)."""
        self.leadership = None
        if self.lease_id:
            lease, self.lease_id = self.lease_id, 0
            with contextlib.suppress(Exception):
                await within(2.0, self.client.revoke_lease(lease))

    async def leader(self) -> dict[str, Any] | None:
        """Who leads now: the leader key's value (``host``, ``pid``) and its key, or None."""
        kv = await self._leader()
        return None if kv is None else self._describe(kv)

    @staticmethod
    def _describe(kv: Any) -> dict[str, Any]:
        try:
            info = json.loads(kv.value)
        except ValueError:
            info = {}
        return {**(info if isinstance(info, dict) else {}), "key": kv.key.decode("utf-8", "replace")}
