"""Applies a plan to etcd: per name, one transaction guarded by the mod revisions that were read.

Every name's changes are applied in one etcd transaction (several small names share one, to save round trips;
when such a shared transaction fails, each of its names is retried alone):

* compares, for every key it touches or relies on, the ``mod_revision`` it read (our current records), and
  ``version == 0`` for every key it creates, so a concurrent change by anybody else makes it fail instead of
  being overwritten;
* puts the new values (a value that is already byte-for-byte right is not rewritten) and deletes our records
  that are no longer wanted, each **by its exact key** - never a prefix range, so deleting ``foo`` can't touch
  ``foo2`` or ``bar.foo``.

When the compare fails, the name is read again, planned again (same desired endpoints, same rules) and retried,
up to ``attempts`` times; then the name is reported as failed (the CLI exits 1) and the other names go on.
etcd outages are retried with backoff (:mod:`syncer.retrying`) and end in :class:`~syncer.retrying.Unavailable`.

A leader's writer carries a **fence** (:class:`syncer.etcd.election.Leadership`): every transaction also compares
the leader key's create revision, and its failure branch reads that key. A transaction that failed because the
key is gone or is another candidate's raises :class:`~syncer.etcd.election.Fenced` - never retried, never re-planned
- and no further transaction of that writer is sent until a new fence is set.

etcd refuses transactions of more than 128 operations (``--max-txn-ops``; 127 of ours plus the fence); a name with
more keys than that (a headless Service with hundreds of pods) is written in several transactions, each still
guarded by its keys' revisions, so nothing is overwritten, but that name's change is then not atomic as a whole
(logged); its puts go first and its deletes last, so the name keeps an answer in between.

An adopted name (``adopt`` changes, :mod:`syncer.adoption`) is one such transaction too: our new keys put,
ExternalDNS's record keys and its ownership TXT keys (at other names, ``a-<name>/...``) deleted, every one of them
compared at the revision it was read, so a resolver watching the prefix sees the name go from their answer to
ours in one revision. Re-planning an adopted name reads the name and the names its ownership TXTs may live at.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aetcd
import structlog

from skydns.etcd import compare_absent, compare_mod, delete_op, put_op, txn
from skydns.record import encode
from syncer.adoption import AdoptionRules
from syncer.current import CurrentRecord
from syncer.domains import DomainFilter
from syncer.etcd.election import Fenced, Leadership
from syncer.etcd.state import read_name
from syncer.model import Endpoint
from syncer.plan import Change, calculate
from syncer.retrying import retry_async

MAX_TXN_OPS = 127  # etcd refuses more than 128 compares: one is kept for the leader's fence
log = structlog.get_logger()


@dataclass
class ApplyResult:
    names: int = 0  # names whose records were changed
    adopted: int = 0  # of them, names adopted from ExternalDNS
    puts: int = 0
    deletes: int = 0
    replanned: list[str] = field(default_factory=list)  # names re-planned after a concurrent change
    failed: dict[str, str] = field(default_factory=dict)  # name -> why it was given up


@dataclass(frozen=True)
class _Op:
    key: bytes
    compare: Any  # an etcd Compare message
    action: Any | None  # an etcd RequestOp (put/delete), or None when the key is only checked
    kind: str  # "put" | "delete" | "check"


def _ops(changes: Sequence[Change]) -> list[_Op]:
    old: dict[str, CurrentRecord] = {r.key: r for c in changes for r in (*c.current, *c.ownership)}
    new: dict[str, bytes] = {}
    for change in changes:
        for rec in change.records:
            new[rec.key] = encode(rec.record)
    ops: list[_Op] = []
    for key in sorted(set(old) | set(new)):
        raw = key.encode()
        if key in old:
            compare = compare_mod(raw, old[key].mod_revision)
            if key not in new:
                ops.append(_Op(raw, compare, delete_op(raw), "delete"))
            elif encode(old[key].record) != new[key]:
                ops.append(_Op(raw, compare, put_op(raw, new[key]), "put"))
            else:
                ops.append(_Op(raw, compare, None, "check"))
        else:
            ops.append(_Op(raw, compare_absent(raw), put_op(raw, new[key]), "put"))
    return ops


def _count_written(result: ApplyResult, ops: list[_Op]) -> None:
    """Count (and debug-log) the puts and deletes of a transaction that succeeded."""
    for op in ops:
        if op.kind == "check":
            continue
        if op.kind == "put":
            result.puts += 1
        else:
            result.deletes += 1
        log.debug(op.kind, key=op.key.decode())


def _chunks(ops: list[_Op]) -> list[list[_Op]]:
    """Transactions of at most MAX_TXN_OPS; when there are several, the deletes go last."""
    if len(ops) > MAX_TXN_OPS:
        ops = sorted(ops, key=lambda op: op.kind == "delete")
    return [ops[i:i + MAX_TXN_OPS] for i in range(0, len(ops), MAX_TXN_OPS)] if ops else []


def _adopting(changes: Iterable[Change]) -> bool:
    return any(c.action == "adopt" for c in changes)


class Writer:
    """Applies plans for one owner id under one prefix; holds what re-planning a name needs."""

    def __init__(self, client: aetcd.Client, *, prefix: str, owner_id: str, policy: str,
                 domain_filter: DomainFilter | None = None, attempts: int = 3, concurrency: int = 32,
                 adoption: AdoptionRules | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.owner_id = owner_id
        self.policy = policy
        self.domain_filter = domain_filter or DomainFilter()
        self.attempts = attempts
        self.concurrency = concurrency
        self.adoption = adoption  # --adopt-txt-owner: re-planning a name adopts as the first plan did
        self.last_revision = 0  # the newest revision a transaction of ours committed at
        #: told every write of ours: its revision and the keys it put (with their values) or deleted (None)
        self.on_commit: Callable[[int, list[tuple[bytes, bytes | None]]], None] | None = None
        self.fence: Leadership | None = None  # when set, every transaction also checks that we still lead
        self.fenced: Fenced | None = None  # set once a transaction found the lead lost (until the next fence)

    async def apply(self, changes: Sequence[Change], desired: Sequence[Endpoint]) -> ApplyResult:
        """Apply ``changes`` (from :func:`syncer.plan.calculate` over ``desired``), name by name, concurrently."""
        by_name: dict[str, list[Change]] = defaultdict(list)
        for change in changes:
            by_name[change.name].append(change)
        wanted: dict[str, list[Endpoint]] = defaultdict(list)
        for ep in desired:
            if ep.name in by_name:
                wanted[ep.name].append(ep)
        result = ApplyResult()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(name: str) -> None:
            async with gate:
                await self._apply_name(name, by_name[name], wanted.get(name, []), result)

        async def batch(names: list[str], ops: list[_Op]) -> None:
            async with gate:
                done = await self._transaction(f"{names[0]} and {len(names) - 1} more names", ops)
            if done:
                result.names += len(names)
                result.adopted += sum(1 for name in names if _adopting(by_name[name]))
                _count_written(result, ops)
                return
            await _all(one(name) for name in names)  # someone changed one of them: name by name

        batches, singles = self._batches({name: _ops(cs) for name, cs in by_name.items()})
        await _all([*(batch(names, ops) for names, ops in batches), *(one(name) for name in singles)])
        return result

    @staticmethod
    def _batches(ops_by_name: dict[str, list[_Op]]) -> tuple[list[tuple[list[str], list[_Op]]], list[str]]:
        """Names packed into shared transactions (all of a name's keys in one, at most MAX_TXN_OPS per
        transaction); a name too big for one transaction goes alone."""
        batches: list[tuple[list[str], list[_Op]]] = []
        singles: list[str] = []
        names: list[str] = []
        ops: list[_Op] = []
        for name in sorted(ops_by_name):
            mine = ops_by_name[name]
            if all(op.kind == "check" for op in mine):
                continue
            if len(mine) > MAX_TXN_OPS:
                singles.append(name)
                continue
            if len(ops) + len(mine) > MAX_TXN_OPS:
                batches.append((names, ops))
                names, ops = [], []
            names.append(name)
            ops.extend(mine)
        if names:
            batches.append((names, ops))
        return batches, singles

    async def _apply_name(self, name: str, changes: list[Change], desired: list[Endpoint],
                          result: ApplyResult) -> None:
        for attempt in range(1, self.attempts + 1):
            ops = _ops(changes)
            if all(op.kind == "check" for op in ops):
                return
            chunks = _chunks(ops)
            if len(chunks) > 1:
                log.warning("name_split_over_transactions", name=name, keys=len(ops), transactions=len(chunks))
            done = True
            for chunk in chunks:
                if not await self._transaction(name, chunk):
                    done = False
                    break
                _count_written(result, chunk)
            if done:
                result.names += 1
                result.adopted += _adopting(changes)
                return
            if attempt == self.attempts:
                break
            log.warning("concurrent_change", name=name, attempt=attempt,
                        action="re-reading and re-planning this name")
            if name not in result.replanned:
                result.replanned.append(name)
            records = await self._read(name)
            plan = calculate(desired, records, self.owner_id, self.policy, self.domain_filter, self.prefix,
                             adoption=self.adoption)
            changes = [c for c in plan.changes if c.name == name]
            if not changes:
                return
        reason = f"records at {name} kept changing concurrently; gave up after {self.attempts} attempts"
        log.error("name_failed", name=name, reason=reason)
        result.failed[name] = reason

    async def _read(self, name: str) -> list[CurrentRecord]:
        """The records at ``name`` (and, when adopting, at the names of its ExternalDNS ownership TXTs)."""
        names = self.adoption.names_to_read([name]) if self.adoption is not None else [name]
        records: list[CurrentRecord] = []
        for one in names:
            state = await retry_async(partial(read_name, self.client, self.prefix, one), f"etcd read of {one}")
            records.extend(state.records)
        return records

    async def _transaction(self, name: str, ops: list[_Op]) -> bool:
        fence = self.fence
        compare = [*(fence.compares() if fence else ()), *(op.compare for op in ops)]
        success = [op.action for op in ops if op.action is not None]
        failure = fence.failure_ops() if fence else []

        async def call() -> bool:
            if self.fenced is not None:
                raise self.fenced  # a sibling transaction found the lead lost: send nothing more
            succeeded, revision, response = await txn(self.client, compare, success, failure)
            if succeeded:
                self.last_revision = max(self.last_revision, revision)
                if self.on_commit is not None:
                    self.on_commit(revision, _written(ops))
            elif fence is not None and not fence.still_held(response):
                self.fenced = Fenced(f"the leader key {fence.key.decode()} is gone or no longer ours")
                raise self.fenced
            return succeeded

        return await retry_async(call, f"etcd transaction for {name}")


def _written(ops: list[_Op]) -> list[tuple[bytes, bytes | None]]:
    """What a committed transaction wrote: each key put, with its value, or deleted (None)."""
    out: list[tuple[bytes, bytes | None]] = []
    for op in ops:
        if op.kind == "put" and op.action is not None:
            out.append((op.key, op.action.request_put.value))
        elif op.kind == "delete":
            out.append((op.key, None))
    return out


async def _all(calls: Iterable[Awaitable[None]]) -> None:
    """Run ``calls`` concurrently to the end; then raise the first failure (a lost lead first of all)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if isinstance(error, Fenced):
            raise error
    if errors:
        raise errors[0]
