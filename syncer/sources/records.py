"""Turning host names and targets of one object into :class:`Endpoint` values, skipping (and saying why) bad ones.

* Every record name, from every source, goes through :meth:`ObjectRecords.name`, which applies the one host name
  rule (:func:`syncer.hostnames.normalize_hostname`: lower case, A-labels, no trailing dot, letters, digits, ``-``
  and ``_`` only, no label starting or ending with ``-``, ``*`` only as the leftmost label); a name that breaks it
  is skipped with the object, the value and the reason.
* Each target is typed on its own, as ExternalDNS's ``SuitableType`` does: IPv4 -> A, IPv6 -> AAAA (an IPv4-mapped
  IPv6 address is written as its IPv4 form, A), anything else must be a valid host name -> CNAME. IP literals are
  written in their canonical form (``2001:DB8::0:1`` -> ``2001:db8::1``).
* Sources with explicitly typed records (``DNSEndpoint``) add them with :meth:`ObjectRecords.put`, with a TTL and
  group of their own per (name, type) (the smallest TTL wins when one object sets several).
* One :class:`Endpoint` per (name, type) per object, targets sorted and de-duplicated.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import structlog

from skydns.names import InvalidNameError
from syncer.hostnames import normalize_hostname
from syncer.model import Endpoint, Skipped

log = structlog.get_logger()

_NUMERIC_LABEL = re.compile(r"^[0-9]+$")


class InvalidTargetError(ValueError):
    pass


@lru_cache(maxsize=65536)
def classify_target(raw: str) -> tuple[str, str]:
    """``(record type, canonical target)``; raises :class:`InvalidTargetError` for anything else."""
    text = raw.strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if isinstance(ip, ipaddress.IPv4Address):
        return "A", str(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            raise InvalidTargetError(f"{raw!r} is a scoped IPv6 address, which DNS cannot hold")
        if ip.ipv4_mapped is not None:
            return "A", str(ip.ipv4_mapped)
        return "AAAA", str(ip)
    try:
        name = normalize_hostname(text, allow_wildcard=False)
    except InvalidNameError as exc:
        raise InvalidTargetError(f"{raw!r} is neither an IP address nor a valid host name ({exc.reason})") from None
    if all(_NUMERIC_LABEL.match(label) for label in name.split(".")):
        raise InvalidTargetError(f"{raw!r} is neither an IP address nor a valid host name (all labels numeric)")
    return "CNAME", name


@lru_cache(maxsize=4096)
def classify_targets(
    targets: tuple[str, ...],
) -> tuple[tuple[tuple[str, frozenset[str]], ...], tuple[tuple[str, str], ...]]:
    """``((type, targets), ...)`` and ``((raw, reason), ...)`` for the invalid ones; cached, as the same target
    lists (all the nodes' addresses, one load balancer) recur across many objects."""
    typed: dict[str, set[str]] = {}
    invalid: list[tuple[str, str]] = []
    for raw in targets:
        try:
            rtype, target = classify_target(raw)
        except InvalidTargetError as exc:
            invalid.append((raw, str(exc)))
            continue
        typed.setdefault(rtype, set()).add(target)
    return tuple((t, frozenset(v)) for t, v in sorted(typed.items())), tuple(invalid)


@dataclass
class ObjectRecords:
    """The records one object implies, built up host name by host name, with the skipped values and warnings."""

    resource: str
    ttl: int | None = None
    group: str = ""
    targets: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    #: (name, type) -> (ttl, group) for record sets added with :meth:`put`, instead of the object's own
    overrides: dict[tuple[str, str], tuple[int | None, str]] = field(default_factory=dict)

    def skip(self, value: str, reason: str) -> None:
        """Record (once per object) that ``value`` was left out, and why."""
        entry = Skipped(self.resource, value, reason)
        if entry in self.skipped:
            return
        self.skipped.append(entry)
        log.warning("record skipped", resource=self.resource, value=value, reason=reason)

    def warn(self, value: str, reason: str) -> None:
        """A bad value that does not drop the record (e.g. an invalid TTL: the record is kept without a TTL)."""
        self.skipped.append(Skipped(self.resource, value, reason))
        log.warning("annotation ignored", resource=self.resource, value=value, reason=reason)

    def name(self, raw: str) -> str | None:
        """The normalised record name, or ``None`` after recording why ``raw`` is not a valid name."""
        try:
            return normalize_hostname(raw)
        except InvalidNameError as exc:
            self.skip(raw, f"invalid host name: {exc.reason}")
            return None

    def add(self, name: str, targets: Iterable[str]) -> int:
        """Add typed targets to the (already normalised) ``name``; returns how many were valid."""
        typed, invalid = classify_targets(tuple(targets))
        for raw, reason in invalid:
            self.skip(raw, f"invalid target: {reason}")
        added = 0
        for rtype, values in typed:
            self.targets.setdefault((name, rtype), set()).update(values)
            added += len(values)
        return added

    def add_srv(self, name: str, priority: int, weight: int, port: int, target: str) -> None:
        self.targets.setdefault((name, "SRV"), set()).add(f"{priority} {weight} {port} {target}")

    def put(self, name: str, rtype: str, targets: Iterable[str], ttl: int | None, group: str) -> None:
        """Add canonical targets of an explicit type to the (already normalised) ``name``, with their own TTL and
        group."""
        key = (name, rtype)
        self.targets.setdefault(key, set()).update(targets)
        known = self.overrides.get(key)
        if known is not None:
            ttls = [t for t in (known[0], ttl) if t]
            ttl, group = (min(ttls) if ttls else None), known[1] or group
        self.overrides[key] = (ttl, group)

    def endpoints(self) -> list[Endpoint]:
        out = []
        for (name, rtype), values in sorted(self.targets.items()):
            ttl, group = self.overrides.get((name, rtype), (self.ttl, self.group))
            out.append(Endpoint(name, rtype, tuple(sorted(values)), ttl, self.resource, group))
        return out
