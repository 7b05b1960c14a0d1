"""Reading ExternalDNS's annotations from an object's ``metadata.annotations``.

Keys are read under each prefix in ``SourceConfig.annotation_prefixes`` (both ``external-dns.alpha.kubernetes.io/``
and ``external-dns.kubernetes.io/`` by default; ``--annotation-prefix`` narrows it to one). When both prefixes carry
the same key, the newer ``external-dns.kubernetes.io/`` wins (ExternalDNS v0.22 made it the default); in general the
value under the prefix listed last in :data:`PREFIX_PRECEDENCE` order wins, and unknown custom prefixes win over
both (the user named them explicitly).

Values, as ExternalDNS reads them:

* ``hostname`` / ``internal-hostname`` / ``target``: comma lists; all white space is removed, each entry loses one
  trailing dot, empty entries are dropped.
* ``ttl``: integer seconds (``"60"``) or a Go duration (``"1m"``, ``"1h30m"``, ``"1.5s"`` -> 1; fractions of a
  second are truncated; surrounding white space is ignored). Valid range 1..2147483647. Anything else is a
  *warning*: the TTL stays unset.
* ``controller``: the object is ours only when it is absent or ``dns-controller``.
* ``access`` (``public``/``private``), ``endpoints-type`` (``NodeExternalIP``/``HostIP``),
  ``ingress-hostname-source`` (``annotation-only``/``defined-hosts-only``, case-insensitive): an unknown value is a
  warning and the default behaviour is used.
* ``coredns-group``: the SkyDNS ``group``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from syncer.config import ANNOTATION_PREFIXES

ALPHA_PREFIX = "external-dns.alpha.kubernetes.io/"
PREFIX = "external-dns.kubernetes.io/"
PREFIX_PRECEDENCE = (ALPHA_PREFIX, PREFIX)  # later wins

HOSTNAME = "hostname"
INTERNAL_HOSTNAME = "internal-hostname"
TARGET = "target"
TTL = "ttl"
CONTROLLER = "controller"
ACCESS = "access"
ENDPOINTS_TYPE = "endpoints-type"
INGRESS_HOSTNAME_SOURCE = "ingress-hostname-source"
COREDNS_GROUP = "coredns-group"

CONTROLLER_VALUE = "dns-controller"
TTL_MIN = 1
TTL_MAX = 2147483647

ACCESS_PUBLIC = "public"
ACCESS_PRIVATE = "private"
ENDPOINTS_TYPE_NODE_EXTERNAL_IP = "NodeExternalIP"
ENDPOINTS_TYPE_HOST_IP = "HostIP"
HOSTNAME_SOURCE_ANNOTATION_ONLY = "annotation-only"
HOSTNAME_SOURCE_DEFINED_HOSTS_ONLY = "defined-hosts-only"


def _prefix_rank(prefix: str) -> int:
    return PREFIX_PRECEDENCE.index(prefix) if prefix in PREFIX_PRECEDENCE else len(PREFIX_PRECEDENCE)


@dataclass(frozen=True)
class Annotations:
    """The ExternalDNS annotations of one object, under the configured prefixes (see the module doc)."""

    values: Mapping[str, str]  # short key ("hostname") -> raw value

    @classmethod
    def read(
        cls, annotations: Mapping[str, str] | None, prefixes: Sequence[str] = ANNOTATION_PREFIXES
    ) -> Annotations:
        found: dict[str, tuple[int, str]] = {}
        if annotations:
            ordered = sorted(prefixes, key=_prefix_rank)
            for rank, prefix in enumerate(ordered):
                for key, value in annotations.items():
                    if isinstance(key, str) and key.startswith(prefix):
                        short = key[len(prefix):]
                        if short and (short not in found or found[short][0] <= rank):
                            found[short] = (rank, value if isinstance(value, str) else str(value))
        return cls({k: v for k, (_, v) in found.items()})

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def hostnames(self) -> list[str]:
        return split_list(self.values.get(HOSTNAME))

    def internal_hostnames(self) -> list[str]:
        return split_list(self.values.get(INTERNAL_HOSTNAME))

    def targets(self) -> list[str]:
        return split_list(self.values.get(TARGET))

    def ttl(self) -> tuple[int | None, str | None]:
        """``(ttl, None)``, or ``(None, warning)`` when the value is invalid; ``(None, None)`` when absent."""
        raw = self.values.get(TTL)
        if raw is None:
            return None, None
        return parse_ttl(raw)

    def is_ours(self) -> bool:
        controller = self.values.get(CONTROLLER)
        return controller is None or controller == CONTROLLER_VALUE

    def access(self) -> tuple[str | None, str | None]:
        raw = self.values.get(ACCESS)
        if raw is None:
            return None, None
        if raw in (ACCESS_PUBLIC, ACCESS_PRIVATE):
            return raw, None
        return None, f"unknown access {raw!r} (expected public or private); using the default"

    def endpoints_type(self) -> tuple[str | None, str | None]:
        raw = self.values.get(ENDPOINTS_TYPE)
        if raw is None:
            return None, None
        if raw in (ENDPOINTS_TYPE_NODE_EXTERNAL_IP, ENDPOINTS_TYPE_HOST_IP):
            return raw, None
        return None, f"unknown endpoints-type {raw!r} (expected NodeExternalIP or HostIP); using the pod addresses"

    def ingress_hostname_source(self) -> tuple[str | None, str | None]:
        raw = self.values.get(INGRESS_HOSTNAME_SOURCE)
        if raw is None:
            return None, None
        value = raw.strip().lower()
        if value in (HOSTNAME_SOURCE_ANNOTATION_ONLY, HOSTNAME_SOURCE_DEFINED_HOSTS_ONLY):
            return value, None
        return None, (
            f"unknown ingress-hostname-source {raw!r} (expected annotation-only or defined-hosts-only); "
            "using both the annotation and the defined hosts"
        )

    def group(self) -> str:
        return self.values.get(COREDNS_GROUP, "").strip()


_WHITESPACE = re.compile(r"\s+")


def split_list(raw: str | None) -> list[str]:
    """``" a.example.org., b.example.org ,,"`` -> ``["a.example.org", "b.example.org"]``."""
    if not raw:
        return []
    out: list[str] = []
    for item in _WHITESPACE.sub("", raw).split(","):
        if item.endswith("."):
            item = item[:-1]
        if item:
            out.append(item)
    return out


# Go's time.ParseDuration: a sequence of decimal numbers, each with an optional fraction and a unit.
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration (``"1h30m"``, ``"1.5s"``, ``"-2m"``, ``"0"``); :class:`ValueError` if invalid."""
    s = text
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or (not m.group(1) and not m.group(2)):
            raise ValueError(f"invalid duration {text!r}")
        whole, frac, unit = m.group(1), m.group(2) or "", m.group(3)
        scale = _UNIT_NS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // (10 ** len(frac))
        pos = m.end()
    return sign * total


def parse_ttl(raw: str) -> tuple[int | None, str | None]:
    """``("600")`` -> ``(600, None)``, ``("1m")`` -> ``(60, None)``; invalid -> ``(None, "invalid ttl ...")``."""
    value = raw.strip()
    seconds: int
    if re.fullmatch(r"[+-]?\d+", value):
        seconds = int(value)
    else:
        try:
            nanos = parse_go_duration(value)
        except ValueError:
            return None, (
                f"invalid ttl {raw!r}: not a number of seconds or a duration like 1m or 1h30m; using the default"
            )
        seconds = nanos // 1_000_000_000 if nanos >= 0 else -((-nanos) // 1_000_000_000)  # truncate toward 0
    if not TTL_MIN <= seconds <= TTL_MAX:
        return None, f"invalid ttl {raw!r}: {seconds} seconds is outside {TTL_MIN}..{TTL_MAX}; using the default"
    return seconds, None
