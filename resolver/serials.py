"""SOA serials that count deletes a load cannot see: one read of each zone's etcd history after the first load.

A zone's serial is the etcd revision of its latest change (:mod:`resolver.store`). A load sees only the keys
that remain, so when the latest change was a delete the newest remaining key is older than it; a replica that
restarted would serve a lower serial than before, and a lower one than the replicas that kept running.
:func:`catch_up` closes that gap from etcd's own history, so the serial depends on etcd alone:

* per zone, a watch on the zone's keys from its newest key's revision M (the store's anchor), so the first
  response etcd sends holds at least that key's own put (the *anchor* - watch history comes in revision order and
  without gaps, so once it is there every event up to the revision etcd synced to is there too; etcd sends a
  replay in batches of at most 1,000 revisions, so a full batch means more follows);
* the newest event at or under the zone's path up to the load revision (only deletes, or puts later deleted,
  can be newer than M) raises the zone's serial (:meth:`resolver.store.Store.apply_history`);
* etcd has compacted revision M away: the history from the compaction revision C on is read instead (it holds no
  anchor, so it ends when etcd has replayed nothing for a second), and C is the floor (every change we cannot see
  happened at or before C), so the serial never goes below what it was
  before a restart - though a replica that restarted after a compaction may then serve C while one that kept
  running serves an older change's revision, until the zone's next change puts them level (logged); no answer in
  ``timeout`` seconds, or etcd failing: the serial stays M, so a slow etcd can delay nothing but this.

It runs once, right after the first load, while the resolver already answers; until it is done (normally one
etcd sync interval, ~100 ms) a zone whose latest change was a delete shows its newest key's revision.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import structlog
from aetcd import rpc

from resolver.store import Store

log = structlog.get_logger("resolver.serials")

ETCD_WATCH_BATCH_REVISIONS = 1000  # etcd's watchBatchMaxRevs: a replay batch with this many revisions is not the last
CATCH_UP_TIMEOUT = 10.0
QUIET_END_SECONDS = 1.0  # after a compaction: no replayed event for this long ends the history read


async def catch_up(client: Any, store: Store, *, timeout: float = CATCH_UP_TIMEOUT) -> dict[str, int | None]:
    """Read each anchored zone's history and hand the newest change to the store; returns path -> revision
    found (None: compacted or timed out)."""
    found: dict[str, int | None] = {}
    anchors = store.serial_anchors()
    for path, anchor in sorted(anchors.items()):
        try:
            async with asyncio.timeout(timeout):
                found[path] = await _newest_change(client, path, anchor, store.loaded_revision)
        except TimeoutError:
            log.warning("serial_history_timeout", path=path, anchor=anchor, seconds=timeout)
            found[path] = None
        except Exception as exc:  # etcd went away: the serial stays the newest key's revision
            log.warning("serial_history_failed", path=path, anchor=anchor, error=repr(exc))
            found[path] = None
        store.apply_history(path, found[path])
    log.debug("serial_history_read", found=found)
    return found


async def _newest_change(client: Any, path: str, anchor: int, upto: int) -> int | None:
    """The newest event at or under ``path`` with a revision in [anchor, upto]. When etcd compacted the history
    from ``anchor`` away, the history from the compaction on is read instead and the compaction revision is the
    floor: any change we could not see happened at or before it."""
    start, floor = anchor, anchor
    while True:
        newest = await _newest_since(client, path, start, upto, anchored=start == anchor)
        if isinstance(newest, _Compacted):
            log.info("serial_history_compacted", path=path, anchor=anchor, compacted=newest.revision)
            if newest.revision <= start:  # cannot happen with etcd; never loop
                return None
            start = floor = newest.revision
            continue
        return max(floor, newest) if newest is not None else floor


class _Compacted:
    def __init__(self, revision: int) -> None:
        self.revision = revision


async def _newest_since(client: Any, path: str, start: int, upto: int, *, anchored: bool = True
                       ) -> int | _Compacted | None:
    anchor_of_watch = start if anchored else -1
    key = path.encode()
    await client.connect()
    call = rpc.WatchStub(client.channel).Watch(metadata=client.metadata)
    try:
        create = rpc.WatchCreateRequest(key=key, range_end=key + b"0", start_revision=start)
        await call.write(rpc.WatchRequest(create_request=create))
        newest: int | None = None
        inside = (path, path + "/")
        while True:
            try:  # after a compaction the history may hold nothing of ours: no event for a moment is its end
                async with asyncio.timeout(None if start == anchor_of_watch else QUIET_END_SECONDS):
                    resp = await call.read()
            except TimeoutError:
                return newest
            if resp is grpc.aio.EOF:
                raise ConnectionError("etcd closed the watch stream")
            if resp.compact_revision:
                return _Compacted(resp.compact_revision)
            if resp.canceled:
                raise ConnectionError(f"etcd cancelled the watch: {resp.cancel_reason or 'no reason given'}")
            revisions = {ev.kv.mod_revision for ev in resp.events}
            for ev in resp.events:
                name = ev.kv.key.decode("utf-8", "replace")
                rev = ev.kv.mod_revision
                if rev <= upto and (name == inside[0] or name.startswith(inside[1])):
                    newest = rev if newest is None else max(newest, rev)
            if revisions and (len(revisions) < ETCD_WATCH_BATCH_REVISIONS or max(revisions) >= upto):
                return newest

    finally:
        call.cancel()
