"""The current records: every key under the prefix, classified the way CoreDNS reads it. Pure, no I/O.

One :class:`CurrentRecord` per etcd key. What we find there, and how it is classified:

* our own records: ``<name>/<8-hex leaf>`` with ``targetstrip: 1``, ``owner`` = our id, ``resource`` set;
* ExternalDNS's: ``<name>/<random 8-hex leaf>`` with ``targetstrip: 1`` (an ``owner`` only with
  ``--coredns-strictly-owned``), and its TXT registry's ownership keys ``a-<name>/<leaf>`` holding
  ``{"text": "\\"heritage=external-dns,...\\""}`` - a TXT record at the name ``a-<name>``;
* hand-written keys, often the bare name path (``/skydns/org/example/www``) with no ``targetstrip``.

The name comes from the key with ``targetstrip`` applied; the type from the host, as
:func:`skydns.record.host_kind` says CoreDNS serves it: an IP -> ``A``/``AAAA``; a name host -> ``CNAME``, or
``SRV`` when it has a port, priority or weight (how we store SRV; the target is the host with ``targetstrip``
labels stripped, as CoreDNS serves it), ``MX`` when it has ``mail`` and ``NS`` at ``<N>/dns/ns/<leaf>`` (both
as :func:`syncer.keys.typed_value` says); a text -> ``TXT``; nothing -> ``NONE``. The plan manages A, AAAA,
CNAME, SRV, MX, TXT and NS, and only records whose ``owner`` is ours; everything else is only looked at (it may
block creating records at its name, :func:`syncer.keys.blocks`). A value that does not decode is reported as
:class:`Malformed` and left alone - it is not ours to fix, and it can't be owned by us.

:class:`CurrentRecords` keeps the same classification up to date change by change, for continuous mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skydns.names import InvalidKeyError, key_to_name, normalize_prefix
from skydns.record import HostKind, Record, RecordDecodeError, decode, host_kind, parse_ip
from syncer.keys import typed_value


@dataclass(frozen=True)
class CurrentRecord:
    """One etcd key as a DNS record. ``name`` has no trailing dot; ``ttl`` is None when the value has none."""

    key: str
    name: str
    type: str
    target: str
    ttl: int | None = None
    owner: str = ""
    resource: str = ""
    group: str = ""
    mod_revision: int = 0
    record: Record = field(default_factory=Record)


@dataclass(frozen=True)
class Malformed:
    """A key whose value (or path) can't be read as a SkyDNS record; skipped and counted."""

    key: str
    reason: str


@dataclass
class CurrentState:
    revision: int
    records: list[CurrentRecord]
    malformed: list[Malformed]


def classify(key: str, record: Record, prefix: str, mod_revision: int = 0) -> CurrentRecord:
    """The record type and canonical target of one decoded value (see the module docstring)."""
    name = key_to_name(key, prefix, record.targetstrip).rstrip(".")
    ip = parse_ip(record.host)  # once: the slow part at scale; host_kind() only for the non-IP cases
    kind = (HostKind.A if ip.version == 4 else HostKind.AAAA) if ip is not None else host_kind(record)
    if ip is not None:
        record_type, target = kind.value, str(ip)
    elif kind is HostKind.CNAME:
        host = record.host.rstrip(".").lower()
        typed = typed_value(key, name, record, host)  # an MX, or an NS at <name>/dns/ns/<leaf>
        if typed is not None:
            name, record_type, target = typed
        elif record.port > 0 or record.priority or record.weight:
            served = strip_labels(host, record.targetstrip)  # the SRV target CoreDNS serves
            record_type, target = "SRV", f"{record.priority} {record.weight} {record.port} {served}"
        else:
            record_type, target = "CNAME", host
    elif kind is HostKind.TXT:
        record_type, target = "TXT", record.text
    else:
        record_type, target = "NONE", ""
    return CurrentRecord(key=key, name=name, type=record_type, target=target, ttl=record.ttl or None,
                         owner=record.owner, resource=record.resource, group=record.group,
                         mod_revision=mod_revision, record=record)


def strip_labels(host: str, count: int) -> str:
    """CoreDNS's ``targetStrip``: drop ``count`` leftmost labels, unless that would drop them all."""
    labels = host.split(".")
    return ".".join(labels[count:]) if 0 < count < len(labels) else host


def classify_kvs(kvs: Iterable[Any], prefix: str) -> tuple[list[CurrentRecord], list[Malformed]]:
    """etcd KeyValues (``.key``, ``.value``, ``.mod_revision``) -> records and malformed keys, sorted by key."""
    prefix = normalize_prefix(prefix)
    records: list[CurrentRecord] = []
    malformed: list[Malformed] = []
    for kv in kvs:
        try:
            key = kv.key.decode("utf-8")
        except UnicodeDecodeError:
            malformed.append(Malformed(kv.key.decode("utf-8", "replace"), "the key is not UTF-8"))
            continue
        try:
            record = decode(kv.value, key)
            records.append(classify(key, record, prefix, kv.mod_revision))
        except RecordDecodeError as exc:
            malformed.append(Malformed(key, exc.reason))
        except InvalidKeyError as exc:
            malformed.append(Malformed(key, exc.reason))
    records.sort(key=lambda r: r.key)
    malformed.sort(key=lambda m: m.key)
    return records, malformed


@dataclass(frozen=True, slots=True)
class _Written:
    key: str
    value: bytes
    mod_revision: int


class CurrentRecords:
    """The records under the prefix as the etcd mirror follows them (the mirror's store): each key classified once,
    when it changes, and indexed by name.

    ``replace(revision, changes)`` swaps in a whole load, ``apply(revision, changes)`` one etcd revision (changes
    carry ``key``, ``value`` - ``None`` for a delete - and ``mod_revision``). After either, ``on_change`` is called
    with the names whose records changed (``None`` after a whole load: anything may have) and the revision.
    Values that do not decode are kept in ``malformed`` (key -> reason) and counted, never planned on.
    """

    def __init__(self, prefix: str, on_change: Callable[[set[str] | None, int], None] | None = None) -> None:
        self.prefix = normalize_prefix(prefix)
        self.on_change = on_change
        self.revision = 0
        self.by_key: dict[str, CurrentRecord] = {}
        self.by_name: dict[str, dict[str, CurrentRecord]] = {}
        self.malformed: dict[str, str] = {}

    def replace(self, revision: int, changes: Iterable[Any]) -> None:
        self.by_key, self.by_name, self.malformed = {}, {}, {}
        for change in changes:
            self._put(change)
        self.revision = revision
        if self.on_change is not None:
            self.on_change(None, revision)

    def apply(self, revision: int, changes: Sequence[Any]) -> None:
        names: set[str] = set()
        for change in changes:
            known = self.by_key.get(change.key)
            if change.value is not None and known is not None and known.mod_revision == change.mod_revision:
                continue  # already here: our own write, applied when it committed (:meth:`write_through`)
            old = self._remove(change.key)
            if old is not None:
                names.add(old.name)
            if change.value is not None:
                new = self._put(change)
                if new is not None:
                    names.add(new.name)
        self.revision = max(self.revision, revision)
        if names and self.on_change is not None:
            self.on_change(names, revision)

    def write_through(self, revision: int, written: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Our own committed write, applied at once (the watch brings it again later and is then a no-op), so the
        next plan starts from what etcd holds even while the watch lags. No ``on_change``: nothing to re-plan."""
        for raw_key, value in written:
            key = raw_key.decode("utf-8", "replace")
            self._remove(key)
            if value is not None:
                self._put(_Written(key, value, revision))

    def _put(self, change: Any) -> CurrentRecord | None:
        key = change.key
        try:
            record = classify(key, decode(change.value, key), self.prefix, change.mod_revision)
        except (RecordDecodeError, InvalidKeyError) as exc:
            self.malformed[key] = exc.reason
            return None
        self.malformed.pop(key, None)
        self.by_key[key] = record
        self.by_name.setdefault(record.name, {})[key] = record
        return record

    def _remove(self, key: str) -> CurrentRecord | None:
        self.malformed.pop(key, None)
        old = self.by_key.pop(key, None)
        if old is not None:
            at_name = self.by_name.get(old.name)
            if at_name is not None:
                at_name.pop(key, None)
                if not at_name:
                    del self.by_name[old.name]
        return old

    def at(self, names: Iterable[str]) -> list[CurrentRecord]:
        """The records at these names, sorted by key."""
        return sorted((r for name in names for r in self.by_name.get(name, {}).values()), key=lambda r: r.key)

    def owned_at(self, name: str, owner_id: str) -> bool:
        return any(r.owner == owner_id for r in self.by_name.get(name, {}).values())
