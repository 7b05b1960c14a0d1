"""A served zone as a set of DNS records, kept equal to what the resolver answers, for zone transfers. Pure.

**What the zone holds** (RFC 5936's "zone contents", which a secondary serves): for every *explicit* name of the
zone - the name each etcd key spells, and its parent (which answers the key as an instance or a per-target leaf)
- the records :class:`resolver.lookup.Lookup` answers at that very name for A, AAAA, TXT, SRV, MX and PTR, or its
CNAME alone when the name is an alias; at the apex its A, AAAA, TXT, SRV, MX and NS, and the NS hosts' addresses
(glue) where those hosts are inside the zone. The SOA is not part of the set: a transfer puts it first and
last with the serial of the moment. At a zone cut C (a name strictly below the apex with ``ns.dns.C`` keys, a
delegation: :mod:`resolver.lookup`) the zone holds C's NS RRset and its in-domain glue (the addresses of the NS
targets at or below C) and nothing else at or below C: not C's other records, not the child's names, not the
``<leaf>.ns.dns.C`` key names; sibling glue (a target below another cut) comes only with that cut, when it is
one of its targets. Records another name only brings along (the CNAME chase, an SRV target's
address) are the other name's own. Names inside a more specific served zone belong to that zone. A key whose
path spells no valid lower-case DNS name (the resolver never finds such a key either) adds nothing. Each RRset
has one TTL (the smallest, as the resolver answers it). A leased key's TTL in the zone is fixed: its
``--min-lease-ttl`` floor (or its own smaller ``ttl``), as if the lease were about to run out - so the zone only
changes when etcd does (the resolver's own answers count the lease down), and the secondaries learn of the
key's end through the NOTIFY and IXFR that its deletion brings.

**Building.** The first load, and every reload, computes every name again: :meth:`ZoneContent.build_steps`
does it a chunk of names at a time (the caller lets the event loop answer in between), into new records while
the old ones (and their serial) stay the ones served; the names that changed meanwhile are computed again at
the end, and a rebuild's net change becomes one delta (so an IXFR can still bridge a reload).

**Following the store.** :meth:`ZoneContent.on_change` takes the store's listener calls: the keys that changed
(each changes at most the names of the key, its parent and its grandparent - the parent's direct children stop
or start being leaves - plus the apex, recomputed every time as it reads ``dns/apex``, ``dns/ns`` and the glue;
with ``--subtree-answers``, where a name answers its whole subtree, every ancestor of the key, and every name with
a query-wildcard label ``*``/``any``, which reads across the zone; a key under ``C/dns/ns/`` also C and every
name below C, as the cut appears or ends; a key below a cut also the cut, whose glue it may be), or ``None``
after a reload (every name recomputed). The zone's net change is accumulated (:class:`resolver.journal.Pending`)
until the zone's serial moves, then written to the journal as one delta from the old serial to the new one, so
:meth:`ZoneContent.serial` and the records always belong together.

**The serial** is the store's (:meth:`resolver.store.Store.last_change`, the etcd revision of the zone's latest
change, 32 bits) - the same number the resolver's SOA answers carry, identical on every replica for the same
state.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence

from resolver import wire
from resolver.journal import Delta, Journal, Pending, ZoneRecords
from resolver.lookup import RR, T_A, T_AAAA, T_SOA, Lookup, Mode, Zone, lower
from resolver.store import Labels

END_OF_TIME = 1e18  # the lookup's clock for the zone: every lease at its TTL floor (module docstring)
_RR_FIXED = struct.Struct("!HHIH")
_QUERY_WILDCARDS = {"*", "any"}


class _PlainWriter(wire._Writer):
    """Names never compressed: each RR stands alone (a transfer message is made by concatenating them)."""

    __slots__ = ()

    def name(self, labels: Labels, *, compress: bool = True) -> None:
        super().name(labels, compress=False)


def rr_wire(owner: Labels, ttl: int, rdtype: int, rdata: object) -> bytes:
    """One RR, class IN, in uncompressed wire form."""
    out = bytearray()
    writer = _PlainWriter(out, {})
    writer.name(owner)
    fixed_at = len(out)
    out += _RR_FIXED.pack(rdtype, 1, ttl & 0xFFFFFFFF, 0)
    writer.rdata(rdtype, rdata)
    out[fixed_at + 8:fixed_at + 10] = (len(out) - fixed_at - 10).to_bytes(2, "big")
    return bytes(out)


def rrsets_wire(records: Iterable[RR]) -> frozenset[bytes]:
    """The records in wire form, each RRset (owner, type) with its smallest TTL (RFC 2181)."""
    ttls: dict[tuple[Labels, int], int] = {}
    items = list(records)
    for owner, ttl, rdtype, _ in items:
        key = (lower(owner), rdtype)
        if key not in ttls or ttl < ttls[key]:
            ttls[key] = ttl
    return frozenset(rr_wire(owner, ttls[(lower(owner), rdtype)], rdtype, rdata) for owner, _, rdtype, rdata in items)


def name_labels(key: str, prefix: str) -> list[str]:
    """The labels (leftmost first) an etcd key spells under ``prefix``."""
    return key[len(prefix) + 1:].split("/")[::-1]


def _ns_key(labels: Sequence[str], depth: int) -> bool:
    """The name of a key ``C/dns/ns/<leaf>`` with C strictly below an apex of ``depth`` labels: C's NS record."""
    return len(labels) > depth + 3 and labels[1] == "ns" and labels[2] == "dns"


def valid_name(labels: Sequence[str]) -> bool:
    """Lower-case ASCII labels of 1-63 characters, at most 255 bytes in all: a name the resolver can find."""
    if sum(len(label) + 1 for label in labels) + 1 > 255:
        return False
    for label in labels:
        if not 0 < len(label) <= 63 or not label.isascii() or label != label.lower():
            return False
        if "/" in label or any(ch <= " " or ch == "\x7f" for ch in label):
            return False
    return True


class _Build:
    """A (re)build under way: the names left to compute, the new records, the names changed meanwhile."""

    __slots__ = ("dirty", "left", "records")

    def __init__(self, names: set[str]) -> None:
        self.left = sorted(names)
        self.records = ZoneRecords()
        self.dirty: set[str] = set()


class ZoneContent:
    """One zone's records and journal, following the store (module docstring)."""

    def __init__(self, lookup: Lookup, zone: Zone, *, journal: Journal | None = None, build: bool = True) -> None:
        """``build`` False: nothing is built until the store's first load (its first ``on_change(None)``)."""
        self.lookup = lookup
        self.zone = zone
        self.journal = journal if journal is not None else Journal()
        self.records: ZoneRecords | None = None  # None until the first build is done
        self._pending = Pending()
        self._apex = ".".join(zone.labels)
        self._prefix = lookup.store.prefix
        self._serial = lookup.serial(zone)
        self._wild: set[str] = set()  # --subtree-answers: the names with a query wildcard label (* or any)
        self._build: _Build | None = _Build(self._all_names()) if build else None

    @property
    def serial(self) -> int:
        """The serial the records belong to."""
        return self._serial

    @property
    def name(self) -> str:
        """The zone's name, lower case, without the trailing dot."""
        return self._apex

    @property
    def ready(self) -> bool:
        """The first build is done: :attr:`records` can be transferred (an older state while a rebuild runs)."""
        return self.records is not None

    @property
    def building(self) -> bool:
        return self._build is not None

    def soa(self, serial: int | None = None) -> bytes:
        """The zone's SOA in wire form, with ``serial`` (default: the current one)."""
        owner, ttl, rdtype, rdata = self.lookup.soa(self.zone)
        rdata = (*rdata[:2], self._serial if serial is None else serial, *rdata[3:])
        return rr_wire(owner, ttl, rdtype, rdata)

    # -- following the store -------------------------------------------------------------------------------

    def on_change(self, keys: set[str] | None) -> Delta | None:
        """Recompute what ``keys`` can have changed, or start a rebuild (None: everything may have changed);
        the new delta when the serial moved. While a build runs, changes are only noted."""
        if keys is None:
            self._build = _Build(self._all_names())
            return None
        names = self._affected(keys)
        if self._build is not None:
            self._build.dirty |= names
            return None
        if self.records is None:  # not loaded yet: the first load builds everything
            return None
        for name in names:
            self._set(self.records, name)
        return self._close()

    def build_steps(self, chunk: int = 1000) -> Iterator[int]:
        """Run the pending build ``chunk`` names at a time, yielding the names left after each chunk (the caller
        gives other work a turn in between); the records are swapped in at the end. Nothing to do: no step."""
        while self._build is not None:
            build = self._build
            while build.left:
                batch, build.left = build.left[-chunk:], build.left[:-chunk]
                for name in batch:
                    self._set(build.records, name)
                yield len(build.left)
                if self._build is not build:  # a reload restarted it
                    break
            else:
                self._finish(build)

    def build_now(self) -> None:
        """Run the pending build to its end at once."""
        for _ in self.build_steps(chunk=1 << 30):
            pass

    def _finish(self, build: _Build) -> None:
        for name in build.dirty:
            self._set(build.records, name)
        old, self.records, self._build = self.records, build.records, None
        if old is not None:  # a rebuild: its net change is one more delta
            before, after = set(old.records()), set(build.records.records())
            self._pending.add(before - after, after - before)
            self._close()
        else:
            self._pending = Pending()
            self._serial = self.lookup.serial(self.zone)

    def _all_names(self) -> set[str]:
        """Every name that can hold records: each key's and its parent's (every ancestor's with
        ``--subtree-answers``, where a name answers its whole subtree)."""
        names = {self._apex}
        depth = len(self.zone.labels)
        levels = 2 if self.lookup.mode is not Mode.SUBTREE else 1 << 30
        for entry in self.lookup.store.subtree(self.zone.path):
            labels = name_labels(entry.key, self._prefix)
            for cut in range(min(levels, len(labels) - depth + 1)):
                names.add(".".join(labels[cut:]))
            if _ns_key(labels, depth):
                names.add(".".join(labels[3:]))  # a zone cut: its NS set and glue are its own records
        if self.lookup.mode is Mode.SUBTREE:
            self._wild = {n for n in names if _QUERY_WILDCARDS & set(n.split("."))}
        return names

    def _affected(self, keys: set[str]) -> set[str]:
        path = self.zone.path
        inside = path + "/"
        names = {self._apex}
        depth = len(self.zone.labels)
        subtree = self.lookup.mode is Mode.SUBTREE
        for key in keys:
            if key == path or key.startswith(inside):
                labels = name_labels(key, self._prefix)
                for cut in range(len(labels) - depth + 1 if subtree else 3):
                    if len(labels) - cut >= depth:
                        names.add(".".join(labels[cut:]))
                names |= self._cuts_affected(labels)
        if subtree:  # names with query wildcards read across the zone: every change may change them
            self._wild.update(n for n in names if _QUERY_WILDCARDS & set(n.split(".")))
            names |= self._wild
        return names

    def _cuts_affected(self, labels: list[str]) -> set[str]:
        """The names a key (its name's ``labels``) changes through zone cuts: a key under ``C/dns/ns/`` makes,
        moves or ends the cut at C (C and every name below it); any key below a cut can be the cut's glue."""
        store = self.lookup.store
        depth = len(self.zone.labels)
        names: set[str] = set()
        if _ns_key(labels, depth):
            cut = labels[3:]
            names.add(".".join(cut))
            for entry in store.subtree(self._prefix + "".join("/" + label for label in reversed(cut))):
                below = name_labels(entry.key, self._prefix)
                names.update(".".join(below[i:]) for i in range(len(below) - len(cut)))
        path = self.zone.path
        for i in range(len(labels) - depth - 1, 0, -1):  # the ancestors strictly between the apex and the name
            path += "/" + labels[i]
            if store.exists(path + "/dns/ns"):
                names.add(".".join(labels[i:]))
        return names

    def _set(self, records: ZoneRecords, name: str) -> None:
        lost, gained = records.set_name(name, self.name_records(name.split(".")))
        if (lost or gained) and records is self.records:
            self._pending.add(lost, gained)

    def _close(self) -> Delta | None:
        serial = self.lookup.serial(self.zone)
        if serial == self._serial:
            return None
        delta = self._pending.take(self._serial, serial)
        self._serial = serial
        self.journal.record(delta)
        return delta

    # -- one name ------------------------------------------------------------------------------------------

    def name_records(self, labels: list[str]) -> frozenset[bytes]:
        """The records the resolver answers at the name ``labels`` (module docstring), in wire form."""
        lookup = self.lookup
        if not valid_name(labels) or lookup.zone_for(labels) is not self.zone:
            return frozenset()
        qname = tuple(label.encode("ascii") for label in labels)
        answer, additional = lookup.name_data(qname, END_OF_TIME)
        found = [rr for rr in answer if rr[2] != T_SOA and lower(rr[0]) == qname]
        found.extend(rr for rr in additional if rr[2] in (T_A, T_AAAA) and self._inside(rr[0]))
        return rrsets_wire(found)

    def _inside(self, owner: Labels) -> bool:
        labels = [label.decode("ascii", "replace").lower() for label in owner]
        return valid_name(labels) and self.lookup.zone_for(labels) is self.zone

    def records_now(self) -> list[bytes]:
        """A snapshot of the zone's records (without the SOA); empty before the first build."""
        return [] if self.records is None else self.records.records()

