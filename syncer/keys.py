"""What the syncer writes to etcd: one key and one SkyDNS value per (name, type, target).

Key: ``<prefix>/<reversed name labels>/<leaf>`` with ``"targetstrip": 1`` in the value, so CoreDNS (and our
resolver) strips the leaf to get the record name, exactly as for ExternalDNS's random-leaf keys. The leaf is
the first 8 hex digits of ``sha256("<TYPE>|<target>")``: the same desired state always gives the same keys, so a
repeated run writes nothing, and a record's key never depends on the order records were created in.

Value: ``host`` (the IP, the CNAME target, or the SRV target name), ``port``/``priority``/``weight`` for SRV
(real SRV fields, not the raw ``"0 50 30080 host."`` text ExternalDNS would store), ``ttl`` (left out when
unset), ``targetstrip: 1``, ``group``, ``owner`` (the ``--owner-id``) and ``resource`` (the source object). A
``text`` field only in a TXT record, and never next to a ``host``: CoreDNS serves a name host with a text as TXT
only and the record would be lost.

The other types, as CoreDNS's ``etcd`` plugin and our resolver read them:

* **TXT**: ``{"text": <the text>, "targetstrip": 1, ...}`` at ``<name>/<leaf>``, no ``host``. The text is stored
  exactly (any Unicode; JSON escapes what it must), and served as its UTF-8 bytes split into 255-byte strings,
  by CoreDNS and by our resolver alike. An empty text is not a record (CoreDNS skips a value without host and text).
* **MX** ``"10 mail.example.org"``: ``{"host": "_.mail.example.org", "port": -1, "priority": 10, "mail": true,
  "targetstrip": 1, ...}`` at ``<name>/<leaf>``. ``mail`` makes the value an MX with ``priority`` as its
  preference; the exchange is a name host, which CoreDNS strips by ``targetstrip`` like an SRV target (hence
  ``_.``, see below); ``port: -1`` keeps the value out of SRV answers. A preference of 0 reads as unset and is
  served as 10 (CoreDNS's rule; the source warns).
* **NS** ``sub.example.org -> ns1.example.net`` (a delegation, or at a zone apex the zone's own NS set):
  ``{"host": "ns1.example.net", ...}`` without ``targetstrip``, at ``<name>/dns/ns/<leaf>`` - the SkyDNS layout of
  ``ns.dns.<zone>``, whose name hosts are the NS targets as they are (no strip), read by our resolver at the apex.
  :func:`typed_value` reads such a key back as the name's NS record.

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

MANAGED_TYPES = ("A", "AAAA", "CNAME", "SRV", "MX", "TXT", "NS")
#: types that share their name with records of other types (RFC 1034): a foreign record of one of these blocks
#: only our records of its own type (and a CNAME), never the others; A, AAAA and SRV block everything (see
#: :func:`blocks`)
COEXISTING_TYPES = frozenset({"MX", "TXT", "NS"})
NS_PATH = ("dns", "ns")  # <name>/dns/ns/<leaf>: the name's NS records
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
    """``/skydns/org/example/www/<leaf>`` (an NS record: ``/skydns/org/example/sub/dns/ns/<leaf>``)."""
    if record_type == "NS":
        return f"{name_key(prefix, name)}/{'/'.join(NS_PATH)}/{leaf(record_type, target)}"
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


def parse_mx(target: str) -> tuple[int, str]:
    """``"10 mail.example.org"`` -> ``(10, "mail.example.org")``; BadTargetError when malformed."""
    parts = target.split()
    if len(parts) != 2:
        raise BadTargetError(f"MX target {target!r} is not 'preference exchange'")
    try:
        preference = int(parts[0])
    except ValueError:
        raise BadTargetError(f"MX target {target!r} has a non-numeric preference") from None
    if not 0 <= preference <= 65535:
        raise BadTargetError(f"MX target {target!r} has a preference out of range")
    host = parts[1].rstrip(".").lower()
    if not host:
        raise BadTargetError(f"MX target {target!r} has an empty exchange (a null MX cannot be stored)")
    return preference, host


def txt_rdata_length(text: str) -> int:
    """The bytes of the TXT RDATA a text is served as: its UTF-8 bytes in 255-byte strings, each with a length."""
    size = len(text.encode("utf-8"))
    return size + max(1, -(-size // 255))


def record_value(record_type: str, target: str, *, ttl: int | None, group: str, owner: str,
                 resource: str) -> Record:
    """The SkyDNS value for one canonical target (see the module docstring)."""
    if record_type == "SRV":
        priority, weight, port, host = parse_srv(target)
        return Record(host=f"{SRV_STRIPPED_LABEL}.{host}", port=port, priority=priority, weight=weight,
                      ttl=ttl or 0, targetstrip=1, group=group, owner=owner, resource=resource)
    if record_type == "MX":
        preference, host = parse_mx(target)
        return Record(host=f"{SRV_STRIPPED_LABEL}.{host}", port=-1, priority=preference, mail=True, ttl=ttl or 0,
                      targetstrip=1, group=group, owner=owner, resource=resource)
    if record_type == "TXT":
        if not target:
            raise BadTargetError("an empty TXT text cannot be stored")
        return Record(text=target, ttl=ttl or 0, targetstrip=1, group=group, owner=owner, resource=resource)
    if record_type == "NS":
        return Record(host=target, ttl=ttl or 0, group=group, owner=owner, resource=resource)
    return Record(host=target, ttl=ttl or 0, targetstrip=1, group=group, owner=owner, resource=resource)


def _strip(host: str, count: int) -> str:
    labels = host.split(".")
    return ".".join(labels[count:]) if 0 < count < len(labels) else host


def typed_value(key: str, name: str, record: Record, host: str) -> tuple[str, str, str] | None:
    """``(name, type, target)`` of a name-host value that is an MX or an NS record, for the reader
    (:mod:`syncer.current`): ``mail`` makes it an MX (target ``"<preference> <exchange>"``, the exchange as
    CoreDNS serves it, ``targetstrip`` applied); a key ``<N>/dns/ns/<leaf>`` without ``targetstrip`` is an NS
    record of ``N`` (target = the host). ``name`` is the key's name with ``targetstrip`` applied, ``host`` the
    lower-cased host without its dot. ``None`` for any other value (a CNAME or an SRV)."""
    if record.mail:
        return name, "MX", f"{record.priority} {_strip(host, record.targetstrip)}"
    parts = key.rsplit("/", 3)
    if record.targetstrip == 0 and len(parts) == 4 and tuple(parts[1:3]) == NS_PATH:
        labels = name.split(".")
        if len(labels) > 3:
            return ".".join(labels[3:]), "NS", host
    return None


def blocks(existing_type: str, existing: Record, wanted_type: str) -> bool:
    """Whether another owner's record of ``existing_type`` at a name keeps us from creating records of
    ``wanted_type`` there: a record of the same type or a CNAME (on either side) always does, and so do A, AAAA and
    SRV records (and a name host with a text: ExternalDNS <= 0.17's CNAME) of each other; MX, TXT and NS records
    share their name with any other type."""
    if existing_type == "TXT" and existing.host:
        existing_type = "CNAME"
    if existing_type == wanted_type or "CNAME" in (existing_type, wanted_type):
        return True
    return existing_type not in COEXISTING_TYPES and wanted_type not in COEXISTING_TYPES
