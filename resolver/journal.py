"""A zone's records as a set of wire-form RRs, and the bounded journal of its changes (IXFR, RFC 1995). Pure.

**Records.** One RR is its uncompressed wire form (owner, type, class, TTL, RDLENGTH, RDATA): equal bytes are the
same record, so a zone is a set of byte strings and two zones compare exactly. :class:`ZoneRecords` keeps them
grouped by the name that produced them (:mod:`resolver.zonecontent` recomputes one name at a time), with a count
per RR: the same RR can come from two names (the apex's glue and the host's own address record), and it leaves
the zone only when no name holds it any more. :meth:`ZoneRecords.set_name` returns what the zone as a whole lost
and gained.

**Changes.** :class:`Pending` accumulates those losses and gains until the zone's serial moves (a record deleted
and added again before that cancels out), then becomes one :class:`Delta` from the old serial to the new one.

**Journal.** :class:`Journal` keeps the newest deltas, chained (each one starts at the serial the previous one
ends at), bounded by a number of deltas and a number of RRs in them; the oldest go first. :meth:`Journal.since`
gives the chain from a client's serial to the newest, or ``None`` when the journal does not reach back to it (an
unknown serial, or one older than the journal): the caller falls back to a full transfer. A delta that does not
start where the chain ends (the resolver reloaded in a way it could not follow) starts a new chain.

**Serials** are 32-bit and compared with RFC 1982's arithmetic (:func:`serial_lt`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

SERIAL_BITS = 32
_HALF = 1 << (SERIAL_BITS - 1)
_MOD = 1 << SERIAL_BITS

DEFAULT_MAX_DELTAS = 1000
DEFAULT_MAX_RECORDS = 200_000


def serial_lt(a: int, b: int) -> bool:
    """RFC 1982: serial ``a`` is before serial ``b`` (undefined pairs, exactly half the space apart, are not)."""
    a, b = a % _MOD, b % _MOD
    return a != b and ((a < b and b - a < _HALF) or (a > b and a - b > _HALF))


class ZoneRecords:
    """The zone's RRs (wire form), grouped by the name that produced them, counted (module docstring)."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[bytes, ...]] = {}
        self._all: set[bytes] = set()
        self._extra: dict[bytes, int] = {}  # RRs held by more than one name: how many names beyond the first

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, rr: bytes) -> bool:
        return rr in self._all

    def records(self) -> list[bytes]:
        """Every RR of the zone once (a snapshot: a list that later changes do not touch)."""
        return list(self._all)

    def names(self) -> list[str]:
        return list(self._by_name)

    def set_name(self, name: str, rrs: frozenset[bytes]) -> tuple[list[bytes], list[bytes]]:
        """Make ``name`` hold exactly ``rrs``; returns (RRs the zone lost, RRs the zone gained)."""
        old = frozenset(self._by_name.get(name, ()))
        if old == rrs:
            return [], []
        if rrs:
            self._by_name[name] = tuple(rrs)
        else:
            self._by_name.pop(name, None)
        held, extra = self._all, self._extra
        lost: list[bytes] = []
        gained: list[bytes] = []
        for rr in old - rrs:
            more = extra.get(rr, 0)
            if more > 1:
                extra[rr] = more - 1
            elif more:
                del extra[rr]
            else:
                held.discard(rr)
                lost.append(rr)
        for rr in rrs - old:
            if rr in held:
                extra[rr] = extra.get(rr, 0) + 1
            else:
                held.add(rr)
                gained.append(rr)
        return lost, gained


class Pending:
    """The zone's net change since the last serial (a deletion and an addition of one RR cancel out)."""

    def __init__(self) -> None:
        self._net: dict[bytes, int] = {}

    def __bool__(self) -> bool:
        return bool(self._net)

    def add(self, lost: Iterable[bytes], gained: Iterable[bytes]) -> None:
        net = self._net
        for rr in lost:
            if net.get(rr) == 1:
                del net[rr]
            else:
                net[rr] = -1
        for rr in gained:
            if net.get(rr) == -1:
                del net[rr]
            else:
                net[rr] = 1

    def take(self, old_serial: int, new_serial: int) -> Delta:
        """The delta from ``old_serial`` to ``new_serial``; empties the pending change."""
        net, self._net = self._net, {}
        deleted = tuple(rr for rr, sign in net.items() if sign < 0)
        added = tuple(rr for rr, sign in net.items() if sign > 0)
        return Delta(old_serial, new_serial, deleted, added)


@dataclass(frozen=True, slots=True)
class Delta:
    """One step of the zone: the RRs deleted and added from serial ``old`` to serial ``new``."""

    old: int
    new: int
    deleted: tuple[bytes, ...]
    added: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return len(self.deleted) + len(self.added)


class Journal:
    """The newest deltas of one zone, chained and bounded (module docstring)."""

    def __init__(self, *, max_deltas: int = DEFAULT_MAX_DELTAS, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        self.max_deltas = max(max_deltas, 1)
        self.max_records = max(max_records, 1)
        self._deltas: deque[Delta] = deque()
        self._index: dict[int, int] = {}  # old serial -> position in the chain, offset by self._dropped
        self._dropped = 0
        self._records = 0

    def __len__(self) -> int:
        return len(self._deltas)

    def __iter__(self) -> Iterator[Delta]:
        return iter(self._deltas)

    @property
    def records(self) -> int:
        """RRs held in the deltas (deleted plus added)."""
        return self._records

    @property
    def oldest(self) -> int | None:
        """The oldest serial an IXFR can start from, or None when the journal is empty."""
        return self._deltas[0].old if self._deltas else None

    def record(self, delta: Delta) -> None:
        """Append ``delta``; a delta that does not continue the chain starts a new one."""
        if delta.old == delta.new:
            return
        if self._deltas and self._deltas[-1].new != delta.old:
            self.clear()
        if delta.old in self._index:  # the serial came round again (32-bit wrap): the older path is gone
            self.clear()
        self._index[delta.old] = self._dropped + len(self._deltas)
        self._deltas.append(delta)
        self._records += delta.size
        while len(self._deltas) > self.max_deltas or (self._records > self.max_records and len(self._deltas) > 1):
            self._drop_oldest()
        if self._records > self.max_records:  # one delta alone is over the bound: keep nothing
            self.clear()

    def _drop_oldest(self) -> None:
        gone = self._deltas.popleft()
        self._records -= gone.size
        del self._index[gone.old]
        self._dropped += 1

    def clear(self) -> None:
        self._dropped += len(self._deltas)
        self._deltas.clear()
        self._index.clear()
        self._records = 0

    def since(self, serial: int) -> list[Delta] | None:
        """The chain of deltas from ``serial`` to the newest, [] when ``serial`` is the newest, None when the
        journal does not reach back to ``serial``."""
        if self._deltas and self._deltas[-1].new == serial:
            return []
        pos = self._index.get(serial)
        if pos is None:
            return None
        start = pos - self._dropped
        return list(self._deltas)[start:]
