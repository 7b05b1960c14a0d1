"""The resolver's in-memory copy of the SkyDNS records in etcd.

The store holds one :class:`Entry` per etcd key under the prefix, with the value decoded once, when the key
changes (never per query). Keys are kept in a sorted list next to a dict, so the reads the CoreDNS ``etcd`` plugin
makes are cheap:

* :meth:`Store.subtree` - every key under ``path + "/"`` in etcd key order (bytewise ascending; Python's code
  point order on ``str`` is the same order as UTF-8 bytes), two bisections and a slice;
* :meth:`Store.get` - the exact key.

Changes come in whole etcd revisions: :meth:`Store.apply` takes all events of one revision and mutates the
state in one synchronous step, and :meth:`Store.replace` builds a complete new state aside and swaps it in. The
store is meant to be used from one thread (the event loop that also answers queries); a reader on that thread
can therefore never see half of a revision.

A value that does not decode (not JSON, wrong field type, ...) is kept as an entry without a record: the key
exists (so its name is not NXDOMAIN) but yields no data. It is logged once per key version and counted in
``bad_values`` and the ``dnssync_resolver_bad_values_total`` metric. CoreDNS answers SERVFAIL for the whole query
instead.

Listeners (:meth:`Store.add_listener`) are called after each change with the set of keys that changed, or
``None`` after :meth:`Store.replace` (everything may have changed), or the tracked paths whose serial moved.

**Zone serials.** For a few tracked paths (the served zones) the store keeps the SOA serial: the etcd revision
of the latest change (put or delete) at or under the path. It is a function of etcd's history alone, so every
replica (and every worker) that has applied the same revisions serves the same serial, and it never goes back:

* following the watch, every applied revision that touches the path sets it (a lease refresh, which hands an
  unchanged key again, does not);
* the first load sets it to the newest ``mod_revision`` at or under the path (0 for a path without keys). A delete
  leaves no key behind, so that can be older than the latest change: :meth:`Store.serial_anchors` names, per
  path, the revision to read etcd's history from (:mod:`resolver.serials` does, once, right after the first
  load), and :meth:`Store.apply_history` raises the serial to the newest change found there, up to the load's
  revision. Where etcd has compacted that history away, the serial stays at the newest remaining key's revision
  (it can then be lower than before the restart, but only when the zone's latest change was a delete older
  than etcd's history); a path without any key has nothing to anchor a history read and stays 0 until its
  next change;
* a reload (after compaction or an error) keeps the serial when the path's keys and revisions are unchanged and
  otherwise sets it to the reload's revision: some change between the last applied revision and the reload
  happened, and its revision is no longer known.

The direct children of each tracked path that carry ``targetstrip >= 1`` are indexed too
(:meth:`Store.tracked_children`): the candidates for a zone apex's per-target leaf keys, found without scanning
the zone.
"""

from __future__ import annotations

import bisect
import gc
import ipaddress
import json
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any

import structlog

from resolver import metrics
from skydns.changes import KeyChange
from skydns.names import normalize_prefix
from skydns.record import HostKind, Record, RecordDecodeError, decode, parse_ip

log = structlog.get_logger()

Listener = Callable[[set[str] | None], None]


Labels = tuple[bytes, ...]  # a DNS name as its labels, leftmost first, without the root


def host_labels(host: str) -> Labels | None:
    """The labels of a host name as stored (case kept), or None when it is not a valid DNS name."""
    text = host[:-1] if host.endswith(".") else host
    if not text:
        return None
    try:
        labels = tuple(label.encode("utf-8") for label in text.split("."))
    except UnicodeError:
        return None
    if any(not 0 < len(label) <= 63 for label in labels) or sum(len(label) + 1 for label in labels) + 1 > 255:
        return None
    return labels


class Fields:
    """The fields of a decoded value that answers use: a light stand-in for ``skydns.record.Record`` (making a
    frozen dataclass costs several times more, and a bulk load makes 100,000 of them)."""

    __slots__ = ("group", "host", "mail", "port", "priority", "targetstrip", "text", "ttl", "weight")

    def __init__(self, data: dict[str, Any]) -> None:
        get = data.get
        self.host: str = get("host", "")
        self.port: int = get("port", 0)
        self.priority: int = get("priority", 0)
        self.weight: int = get("weight", 0)
        self.text: str = get("text", "")
        self.mail: bool = get("mail", False)
        self.ttl: int = get("ttl", 0)
        self.targetstrip: int = get("targetstrip", 0)
        self.group: str = get("group", "")

    @classmethod
    def of(cls, record: Record) -> Fields:
        return cls({name: getattr(record, name) for name in cls.__slots__})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fields) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Fields(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__ if getattr(self, n)) + ")"


def _classify(record: Fields) -> tuple[HostKind, bytes]:
    """CoreDNS's host classification (``skydns.record.host_kind``) and the packed address of an IP host."""
    host = record.host
    if host:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
        if ":" in host:
            ip = parse_ip(host)
        elif host[-1].isdigit() and host[0].isdigit():
            try:  # the common case fast: canonical dotted quads (no leading zeros, as Go's ParseIP wants)
                packed = socket.inet_pton(socket.AF_INET, host)
                if socket.inet_ntop(socket.AF_INET, packed) == host:
                    return HostKind.A, packed
            except OSError:
                pass
            ip = parse_ip(host)
        if ip is not None:
            return (HostKind.A if ip.version == 4 else HostKind.AAAA), ip.packed
    if record.text:
        return HostKind.TXT, b""
    if host:
        return HostKind.CNAME, b""
    return HostKind.NONE, b""


class Entry:
    """One key's current value, decoded. ``record`` (its :class:`Fields`) is ``None`` when it did not decode.

    ``kind`` is CoreDNS's host classification, ``ip`` the packed address of an IP host, ``target`` the labels
    of a name host (None when the host is not a valid name), ``depth`` the number of ``/`` in the key.
    """

    __slots__ = ("depth", "ip", "key", "kind", "lease_deadline", "mod_revision", "raw", "record", "target")

    def __init__(self, key: str, raw: bytes, record: Fields | None, mod_revision: int,
                 lease_deadline: float | None) -> None:
        self.key = key
        self.raw = raw
        self.record = record
        self.mod_revision = mod_revision
        self.lease_deadline = lease_deadline
        self.depth = key.count("/")
        self.target: Labels | None = None
        if record is None:
            self.kind, self.ip = HostKind.NONE, b""
        else:
            self.kind, self.ip = _classify(record)
            if record.host and not self.ip:
                self.target = host_labels(record.host)

    def __repr__(self) -> str:
        return f"Entry({self.key!r}, {self.record!r}, rev={self.mod_revision})"


# The C scanner behind json.loads: (value, end) for the JSON value at an index (skips a Python wrapper layer).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_KNOWN_FIELDS = frozenset(f.name for f in fields(Record))
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _fast_decode(value: bytes, key: str) -> Fields:
    """``skydns.record.decode``, faster for the common shape (lower-case known fields of the right types).

    Anything else (an unknown or differently-cased field, a null, an out-of-range number, bad JSON, white space
    around the value) goes to ``decode`` itself, so the values and the errors are always exactly its.
    """
    try:
        text = value.decode("utf-8")
        data, end = _SCAN(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError, RecursionError):
        return Fields.of(decode(value, key))
    if end == len(text) and type(data) is dict and data.keys() <= _KNOWN_FIELDS:
        f = Fields(data)
        if (type(f.host) is str and type(f.text) is str and type(f.group) is str and type(f.mail) is bool
                and type(f.ttl) is int and 0 <= f.ttl <= 0xFFFFFFFF
                and type(f.port) is int and _INT64_MIN <= f.port <= _INT64_MAX
                and type(f.priority) is int and _INT64_MIN <= f.priority <= _INT64_MAX
                and type(f.weight) is int and _INT64_MIN <= f.weight <= _INT64_MAX
                and type(f.targetstrip) is int and _INT64_MIN <= f.targetstrip <= _INT64_MAX
                and type(data.get("owner", "")) is str and type(data.get("resource", "")) is str):
            return f
    return Fields.of(decode(value, key))


def _is_child(key: str, path: str) -> bool:
    return key.startswith(path) and key.rfind("/") == len(path) and len(key) > len(path) + 1


def _strips(entry: Entry) -> bool:
    return entry.record is not None and entry.record.targetstrip >= 1


def _decode_entry(change: KeyChange, value: bytes, old: Entry | None) -> tuple[Entry, bool]:
    """The entry for one put; the flag says the value was bad (and newly logged and counted).

    When ``old`` holds the same version of the key (a reload, a lease refresh) its decoded record is reused.
    """
    if old is not None and old.mod_revision == change.mod_revision and old.raw == value:
        if old.lease_deadline == change.lease_deadline:
            return old, False
        return Entry(change.key, old.raw, old.record, old.mod_revision, change.lease_deadline), False
    try:
        record: Fields | None = _fast_decode(value, change.key)
    except RecordDecodeError as exc:
        log.warning("bad_value_skipped", key=change.key, mod_revision=change.mod_revision, reason=exc.reason)
        metrics.BAD_VALUES.inc()
        return Entry(change.key, value, None, change.mod_revision, change.lease_deadline), True
    return Entry(change.key, value, record, change.mod_revision, change.lease_deadline), False


class Store:
    """The in-memory SkyDNS records under one etcd prefix (see the module docstring)."""

    def __init__(self, prefix: str = "/skydns") -> None:
        self.prefix = normalize_prefix(prefix)
        self._base = self.prefix + "/"
        self.revision = 0
        self.bad_values = 0
        self._bad_keys = 0
        metrics.track_store(self)
        self._entries: dict[str, Entry] = {}
        self._keys: list[str] = []
        self._listeners: list[Listener] = []
        self._tracked: dict[str, int] = {}
        self._children: dict[str, set[str]] = {}  # tracked path -> its direct child keys with targetstrip >= 1
        self._anchors: dict[str, int] = {}  # tracked path -> where its history is read from after the first load
        self.loaded_revision = 0  # the revision of the last full load

    # -- reads ---------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def subtree(self, path: str) -> list[Entry]:
        """Every entry strictly under ``path`` (keys starting with ``path + "/"``), in etcd key order."""
        keys = self._keys
        lo = bisect.bisect_left(keys, path + "/")
        hi = bisect.bisect_left(keys, path + "0", lo)  # "0" is the character right after "/"
        entries = self._entries
        return [entries[k] for k in keys[lo:hi]]

    def has_subkeys(self, path: str) -> bool:
        keys = self._keys
        start = path + "/"
        i = bisect.bisect_left(keys, start)
        return i < len(keys) and keys[i].startswith(start)

    def exists(self, path: str) -> bool:
        return path in self._entries or self.has_subkeys(path)

    def keys(self) -> list[str]:
        """All keys in etcd order (a copy)."""
        return list(self._keys)

    @property
    def bad_keys(self) -> int:
        """How many keys currently hold a value that did not decode."""
        return self._bad_keys

    # -- zone serials --------------------------------------------------------------------------------------

    def track(self, path: str) -> None:
        """Start keeping the revision of the latest change at or under ``path`` (see :meth:`last_change`)."""
        if path not in self._tracked:
            self._tracked[path] = self._max_mod_revision(path)
            self._children[path] = {e.key for e in self.subtree(path) if _is_child(e.key, path) and _strips(e)}

    def last_change(self, path: str) -> int:
        """The SOA serial of a tracked ``path``: the etcd revision of its latest change (module docstring)."""
        return self._tracked.get(path, 0)

    def serial_anchors(self) -> dict[str, int]:
        """Tracked path -> the revision its history must be read from (its newest key's) to find deletes the
        first load could not see; only paths with keys, and only until :meth:`apply_history` was called."""
        return dict(self._anchors)

    def apply_history(self, path: str, revision: int | None) -> None:
        """The latest change at or under ``path`` that etcd's history holds up to the load revision (None:
        nothing to add, or the history is gone); raises the path's serial, never lowers it."""
        self._anchors.pop(path, None)
        if path not in self._tracked or revision is None:
            return
        revision = min(revision, self.loaded_revision)
        if revision > self._tracked[path]:
            self._tracked[path] = revision
            self._notify({path})

    def tracked_children(self, path: str) -> list[Entry]:
        """The direct children of a tracked ``path`` whose value has ``targetstrip >= 1``, in key order."""
        entries = self._entries
        return [entries[k] for k in sorted(self._children.get(path, ()))]

    def _max_mod_revision(self, path: str) -> int:
        best = 0
        exact = self._entries.get(path)
        if exact is not None:
            best = exact.mod_revision
        for entry in self.subtree(path):
            if entry.mod_revision > best:
                best = entry.mod_revision
        return best

    def _signature(self, path: str) -> list[tuple[str, int]]:
        exact = self._entries.get(path)
        head = [(path, exact.mod_revision)] if exact is not None else []
        return head + [(e.key, e.mod_revision) for e in self.subtree(path)]

    # -- listeners -----------------------------------------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(keys)`` after every change: the changed keys, or ``None`` after :meth:`replace`."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        self._listeners.remove(fn)

    def _notify(self, keys: set[str] | None) -> None:
        for fn in list(self._listeners):
            try:
                fn(keys)
            except Exception:  # a listener bug must not break the store
                log.exception("store_listener_failed")

    # -- changes -------------------------------------------------------------------------------------------

    def apply(self, revision: int, changes: Sequence[KeyChange]) -> None:
        """Apply all events of one etcd revision together (puts and deletes)."""
        if revision < self.revision:
            log.warning("stale_revision_ignored", revision=revision, store_revision=self.revision)
            return
        # Decode first (nothing is mutated yet), then mutate in one synchronous step.
        staged: list[tuple[str, Entry | None]] = []
        for change in changes:
            key = change.key
            if not key.startswith(self._base):
                continue
            if change.value is None:
                staged.append((key, None))
                continue
            entry, bad = _decode_entry(change, change.value, self._entries.get(key))
            self.bad_values += bad
            staged.append((key, entry))
        # key -> the revision of its change: a put's mod revision (older than ``revision`` when a lease refresh
        # hands an unchanged key again), a delete's revision.
        changed: dict[str, int] = {}
        entries, keys = self._entries, self._keys
        for key, new in staged:
            old = entries.get(key)
            if old is not None and old.record is None:
                self._bad_keys -= 1
            if new is None:
                if old is not None:
                    del entries[key]
                    del keys[bisect.bisect_left(keys, key)]
                    changed[key] = revision
                continue
            if old is None:
                bisect.insort(keys, key)
            if new.record is None:
                self._bad_keys += 1
            entries[key] = new
            changed[key] = new.mod_revision
        self.revision = revision
        if changed:
            for path, last in self._tracked.items():
                start = path + "/"
                newest = max((r for k, r in changed.items() if k == path or k.startswith(start)), default=0)
                if newest > last:
                    self._tracked[path] = newest
                children = self._children[path]
                for key in changed:
                    if _is_child(key, path):
                        now = entries.get(key)
                        if now is not None and _strips(now):
                            children.add(key)
                        else:
                            children.discard(key)
            self._notify(set(changed))

    def replace(self, revision: int, changes: Iterable[KeyChange]) -> None:
        """Swap in a whole new state (a full load or reload at ``revision``); deletes in ``changes`` are ignored."""
        # A bulk load allocates a few objects per record; the cyclic GC would rescan the growing heap again
        # and again (it tripled the load time). Nothing here makes cycles, so pause it for the load.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._replace(revision, changes)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _replace(self, revision: int, changes: Iterable[KeyChange]) -> None:
        first_load = self.revision == 0 and not self._entries
        old_entries = self._entries
        entries: dict[str, Entry] = {}
        bad_count = 0
        for change in changes:
            key = change.key
            value = change.value
            if value is None or not key.startswith(self._base):
                continue
            entry, bad = _decode_entry(change, value, old_entries.get(key))
            bad_count += bad
            entries[key] = entry
        keys = sorted(entries)
        bad_keys = sum(1 for e in entries.values() if e.record is None) if bad_count or self._bad_keys else 0
        old_signatures = {} if first_load else {path: self._signature(path) for path in self._tracked}
        # The swap: from here on readers see only the new state.
        self._entries, self._keys = entries, keys
        self._bad_keys = bad_keys
        self.revision = revision
        self.bad_values += bad_count
        self.loaded_revision = revision
        for path in self._tracked:
            if first_load:
                self._tracked[path] = self._max_mod_revision(path)
                if self._tracked[path]:
                    self._anchors[path] = self._tracked[path]
            elif self._signature(path) != old_signatures[path]:
                self._tracked[path] = max(self._tracked[path], revision)
            self._children[path] = {e.key for e in self.subtree(path) if _is_child(e.key, path) and _strips(e)}
        self._notify(None)
