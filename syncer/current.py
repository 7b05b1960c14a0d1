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
labels stripped, as CoreDNS serves it); a text -> ``TXT``; nothing -> ``NONE``. The
plan manages only A, AAAA, CNAME and SRV, and only records whose ``owner`` is ours; everything else is only
looked at (it blocks creating records at its name). A value that does not decode is reported as
:class:`Malformed` and left alone - it is not ours to fix, and it can't be owned by us.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from skydns.names import InvalidKeyError, key_to_name, normalize_prefix
from skydns.record import HostKind, Record, RecordDecodeError, decode, host_kind, parse_ip


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
        if record.port > 0 or record.priority or record.weight:
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
