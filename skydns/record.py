"""The SkyDNS value: the JSON stored at each etcd key, and what DNS records it yields.

Fields (all optional): ``host, port, priority, weight, text, mail, ttl, targetstrip, group``, as CoreDNS's
``msg.Service``; ``owner`` as ExternalDNS writes it with ``--coredns-strictly-owned``; and ``resource``, ours,
naming the Kubernetes object a record came from (``service/<ns>/<name>``). CoreDNS ignores the last two.

Decoding follows Go's ``encoding/json`` as CoreDNS uses it:

* field names match case-insensitively (``"Host"``, ``"TTL"``); unknown fields are ignored; when a name appears
  twice the later one wins; ``null`` for a field leaves it unset, and a top-level ``null`` is an empty value;
* integers must be JSON integers in range (``ttl`` is a uint32; ``"ttl": "60"`` or ``1.5`` is a type error);
  ``mail`` must be a boolean; strings must be strings;
* anything else (not JSON, not UTF-8, not an object, a wrong type) raises :class:`RecordDecodeError`, which
  carries the key and the reason. CoreDNS would fail the whole query; callers here skip just that value.

Encoding is compact JSON in ExternalDNS's field order, omitting zero and empty fields, with Go's escaping of
``<``, ``>``, ``&``, U+2028 and U+2029, so one record is always the same bytes and matches what ExternalDNS
writes byte for byte.

What a value yields (CoreDNS's ``HostType`` rules), see :func:`host_kind`:

============================  ===========  ==========================================================
host                          text         kind / served as
============================  ===========  ==========================================================
IPv4 literal (or v4-mapped)   any          ``A``: A; SRV/MX/NS target is a name made from the key
IPv6 literal                  any          ``AAAA``: AAAA; SRV/MX/NS as above
a name                        empty        ``CNAME``: CNAME for A/AAAA/TXT queries (then chased); the SRV
                                           target, MX exchange (with ``mail``) or PTR target
a name                        non-empty    ``TXT``: TXT only - the name is *not* served (CoreDNS #6110)
empty                         non-empty    ``TXT``: TXT only
empty                         empty        ``NONE``: nothing
============================  ===========  ==========================================================

An IP is parsed as Go's ``net.ParseIP`` does: dotted quads without leading zeros, IPv6 without a zone. A text
next to an IP host is never served. ``mail: true`` makes the value an MX too (preference = ``priority``).
``priority`` 0 reads as 10 for SRV and MX; ``port`` -1 drops the value from SRV answers.
"""

from __future__ import annotations

import enum
import ipaddress
import json
from dataclasses import dataclass, fields
from typing import Any

UINT32_MAX = 2**32 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class RecordDecodeError(ValueError):
    """A stored value that is not a valid SkyDNS record."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"cannot decode the value at {key!r}: {reason}")
        self.key = key
        self.reason = reason


class HostKind(enum.Enum):
    A = "A"
    AAAA = "AAAA"
    CNAME = "CNAME"
    TXT = "TXT"
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class Record:
    """One SkyDNS value. Field order is the encoding order."""

    host: str = ""
    port: int = 0
    priority: int = 0
    weight: int = 0
    text: str = ""
    mail: bool = False
    ttl: int = 0
    targetstrip: int = 0
    group: str = ""
    owner: str = ""
    resource: str = ""


_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Record)}
_BY_FOLDED: dict[str, str] = {name.lower(): name for name in _FIELD_TYPES}
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                             "\u2029": "\\u2029"})


def _check(key: str, field: str, kind: str, value: Any) -> Any:
    if kind == "str":
        if not isinstance(value, str):
            raise RecordDecodeError(key, f"field {field!r} must be a string, not {type(value).__name__}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise RecordDecodeError(key, f"field {field!r} must be true or false, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordDecodeError(key, f"field {field!r} must be an integer, not {value!r}")
    low, high = (0, UINT32_MAX) if field == "ttl" else (INT64_MIN, INT64_MAX)
    if not low <= value <= high:
        raise RecordDecodeError(key, f"field {field!r} is out of range: {value}")
    return value


def decode(raw: bytes | str, key: str = "") -> Record:
    """Decode one stored value; raise :class:`RecordDecodeError` naming ``key`` when it is not valid."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordDecodeError(key, f"not valid JSON ({exc})") from None
    if data is None:
        return Record()
    if not isinstance(data, dict):
        raise RecordDecodeError(key, f"not a JSON object but {type(data).__name__}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        field = _BY_FOLDED.get(name.lower())
        if field is None or value is None:
            continue
        values[field] = _check(key, field, _FIELD_TYPES[field], value)
    return Record(**values)


def encode(record: Record) -> bytes:
    """Compact JSON in ExternalDNS's field order, zero and empty fields left out."""
    data = {f.name: getattr(record, f.name) for f in fields(Record) if getattr(record, f.name)}
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_GO_ESCAPES).encode("utf-8")


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` spells, by Go's ``net.ParseIP`` rules; IPv4-mapped IPv6 becomes IPv4."""
    if not host or "%" in host:
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def host_kind(record: Record) -> HostKind:
    """How CoreDNS classifies a value (see the module docstring's table)."""
    ip = parse_ip(record.host)
    if ip is not None:
        return HostKind.A if ip.version == 4 else HostKind.AAAA
    if record.text:
        return HostKind.TXT
    if record.host:
        return HostKind.CNAME
    return HostKind.NONE


def record_types(record: Record) -> frozenset[str]:
    """The DNS types a query can get from this value (before zone-level rules such as NS at the apex)."""
    kind = host_kind(record)
    if kind is HostKind.NONE:
        return frozenset()
    if kind is HostKind.TXT:
        return frozenset({"TXT"})
    served = {kind.value, "SRV"} if record.port != -1 else {kind.value}
    if record.mail:
        served.add("MX")
    if kind is HostKind.CNAME:
        served.add("PTR")
    return frozenset(served)
