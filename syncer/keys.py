"""What the syncer writes to etcd: one key and one SkyDNS value per (name, type, target).

Key: ``<prefix>/<reversed name labels>/<leaf>`` with ``"targetstrip": 1`` in the value, so CoreDNS (and our
resolver) strips the leaf to get the record name, exactly as for ExternalDNS's random-leaf keys. The leaf is
the first 8 hex digits of ``sha256("<TYPE>|<target>")``: the same desired state always gives the same keys, so a
repeated run writes nothing, and a record's key never depends on the order records were created in.

Value: ``host`` (the IP, the CNAME target, or the SRV target name), ``port``/``priority``/``weight`` for SRV
(real SRV fields, not the raw ``"0 50 30080 host."`` text ExternalDNS would store), ``ttl`` (left out when
unset), ``targetstrip: 1``, ``group``, ``owner`` (the ``--owner-id``) and ``resource`` (the source object). Never
a ``text`` field: CoreDNS serves a name host with a text as TXT only and the record would be lost.

SRV and ``targetstrip``: CoreDNS strips ``targetstrip`` leftmost labels not only from names it builds from keys
but also from a *name host* when it serves it as an SRV target (``msg.Service.NewSRV``). The ``targetstrip: 1``
our keys need would turn the target ``game.example.org`` into ``example.org``. So an SRV value stores its
target behind one throw-away label, ``_.game.example.org``, which CoreDNS (and our resolver, which follows it)
strips back to exactly ``game.example.org.``; the reader (:mod:`syncer.current`) strips it the same way.
SRV priority 0 (ExternalDNS's ``0 50 <port> <host>``) is stored as 0, which CoreDNS serves as priority 10.

Targets are canonical strings, the same in desired endpoints and in records read back: an IP as written
(``parse_ip`` normalised), a host name lower-cased without the trailing dot, an SRV target as
``"priority weight port target"``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from skydns.names import name_to_key
from skydns.record import Record

MANAGED_TYPES = ("A", "AAAA", "CNAME", "SRV")
SRV_STRIPPED_LABEL = "_"  # prepended to SRV name hosts, stripped again by targetstrip (see above)
LEAF_LENGTH = 8


class BadTargetError(ValueError):
    """A target that cannot be stored for its record type."""


def leaf(record_type: str, target: str) -> str:
    """The stable 8-hex-digit key leaf of one target: ``leaf("A", "10.0.0.1")``."""
    return hashlib.sha256(f"{record_type}|{target}".encode()).hexdigest()[:LEAF_LENGTH]


@lru_cache(maxsize=1 << 18)
def name_key(prefix: str, name: str) -> str:
    """The key path of a name (no leaf): ``/skydns/org/example/www``; remembered, as every plan of a name asks."""
    return name_to_key(name, prefix)


def record_key(prefix: str, name: str, record_type: str, target: str) -> str:
    """``/skydns/org/example/www/<leaf>``."""
    return f"{name_key(prefix, name)}/{leaf(record_type, target)}"


def parse_srv(target: str) -> tuple[int, int, int, str]:
    """``"0 50 30080 www.example.org"`` -> ``(priority, weight, port, host)``; BadTargetError when malformed."""
    parts = target.split()
    if len(parts) != 4:
        raise BadTargetError(f"SRV target {target!r} is not 'priority weight port target'")
    try:
        priority, weight, port = (int(p) for p in parts[:3])
    except ValueError:
        raise BadTargetError(f"SRV target {target!r} has a non-numeric priority, weight or port") from None
    if not (0 <= priority <= 65535 and 0 <= weight <= 65535 and 0 < port <= 65535):
        raise BadTargetError(f"SRV target {target!r} has a priority, weight or port out of range")
    host = parts[3].rstrip(".").lower()
    if not host:
        raise BadTargetError(f"SRV target {target!r} has an empty target name")
    return priority, weight, port, host


def record_value(record_type: str, target: str, *, ttl: int | None, group: str, owner: str,
                 resource: str) -> Record:
    """The SkyDNS value for one canonical target (see the module docstring)."""
    if record_type == "SRV":
        priority, weight, port, host = parse_srv(target)
        return Record(host=f"{SRV_STRIPPED_LABEL}.{host}", port=port, priority=priority, weight=weight,
                      ttl=ttl or 0, targetstrip=1, group=group, owner=owner, resource=resource)
    return Record(host=target, ttl=ttl or 0, targetstrip=1, group=group, owner=owner, resource=resource)
