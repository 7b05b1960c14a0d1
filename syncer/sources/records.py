"""Turning host names and targets of one object into :class:`Endpoint` values, skipping (and saying why) bad ones.

* A record name is normalised with :func:`skydns.names.normalize_name` (lower case, A-label) and loses its trailing
  dot; a leftmost ``*`` label is kept (wildcards), ``_`` is allowed (SRV names), any other character outside
  letters, digits and ``-`` makes the name invalid.
* Each target is typed on its own, as ExternalDNS's ``SuitableType`` does: IPv4 -> A, IPv6 -> AAAA (an IPv4-mapped
  IPv6 address is written as its IPv4 form, A), anything else must be a valid host name -> CNAME. IP literals are
  written in their canonical form (``2001:DB8::0:1`` -> ``2001:db8::1``).
* One :class:`Endpoint` per (name, type) per object, targets sorted and de-duplicated.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import structlog

from skydns.names import InvalidNameError, normalize_name
from syncer.model import Endpoint, Skipped

log = structlog.get_logger()

_LABEL = re.compile(r"^[a-z0-9_-]+$")
_NUMERIC_LABEL = re.compile(r"^[0-9]+$")


class InvalidTargetError(ValueError):
    pass


# Plain lower-case LDH names (the common case) need no IDNA work: checked in one regular expression.
_PLAIN_NAME = re.compile(r"^(?:\*\.)?(?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}$")


@lru_cache(maxsize=65536)
def normalize_hostname(raw: str, allow_wildcard: bool = True) -> str:
    """``"Www.Example.ORG."`` -> ``"www.example.org"``; raises :class:`InvalidNameError` with the reason."""
    plain = raw[:-1] if raw.endswith(".") else raw
    if len(plain) <= 253 and _PLAIN_NAME.match(plain) and (allow_wildcard or not plain.startswith("*")):
        return plain
    name = normalize_name(raw)
    if name == ".":
        raise InvalidNameError(raw, "the root name cannot hold records")
    name = name[:-1]
    labels = name.split(".")
    for i, label in enumerate(labels):
        if label == "*" and i == 0 and allow_wildcard:
            continue
        if not _LABEL.match(label):
            raise InvalidNameError(raw, f"label {label!r} may only hold letters, digits, '-' and '_'")
    return name


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

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(name, rtype, tuple(sorted(values)), self.ttl, self.resource, self.group)
            for (name, rtype), values in sorted(self.targets.items())
        ]
