"""The cache of forwarded answers: what is cached and for how long, and the reply bytes served from it. Pure.

What is cached (RFC 1035 §7.4, RFC 2181 §8, RFC 2308):

* A NOERROR answer with records: for the smallest TTL of its records (OPT excluded), at most ``max_ttl``.
* A negative answer - NXDOMAIN, or NOERROR with an empty answer section (NODATA) - only when the authority
  section holds the zone's SOA (RFC 2308 §5: without it, do not cache), for ``min(SOA TTL, SOA MINIMUM)``
  (RFC 2308 §3; the SOA is served with that TTL) and the other records' TTLs, at most ``max_negative_ttl``.
* Nothing else: SERVFAIL, REFUSED, FORMERR, NOTIMP, extended rcodes, a truncated answer, or a TTL of 0 are
  passed to the client that asked and forgotten.

The key is the question lower-cased (the QNAME in wire form, QTYPE, QCLASS) and one byte of the query bits that
change what an upstream answers: DO, CD and AD. Entries are bounded: at most ``size``; an expired entry is
dropped when met, and when the cache is full the oldest eighth goes (insertion order).

Serving: TTLs count down. A reply carries each record's TTL minus the whole seconds since the answer was
fetched, and the entry expires when the smallest TTL would reach 0. The bytes for one age are rendered once and
reused, so a hit is a dict lookup, a clock read and an ID patch. The reply to a query (:func:`compose`) is the
cached message with the query's ID, RD and CD bits and question name (original case, same length) patched in,
QR and RA set, AA clear (we answer from a cache, not from a zone), the upstream's OPT dropped and ours appended
when the query had one (payload 1232, DO echoed, as :mod:`resolver.answers` does). A UDP reply that does not fit
the client's payload (512 without EDNS) is sent with TC set and only the question, so the client asks over TCP.

:func:`parse_question` reads the header and question of a plain query (one question, at most one OPT of
version 0) with slicing; anything else is left to the authoritative answerer (FORMERR, BADVERS, REFUSED).
"""

from __future__ import annotations

import itertools
import struct
from typing import NamedTuple

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

ADVERTISED_PAYLOAD = 1232
DEFAULT_CACHE_SIZE = 10_000
DEFAULT_MAX_TTL = 3600
DEFAULT_MAX_NEGATIVE_TTL = 1800

QR_BYTE = 0x80  # flags byte 2: QR, opcode QUERY, AA/TC/RD clear
RA = 0x80  # flags byte 3
AD = 0x20
CD = 0x10
BIT_DO, BIT_CD, BIT_AD = 1, 2, 4

_OPT_PLAIN = struct.pack("!BHHIH", 0, 41, ADVERTISED_PAYLOAD, 0, 0)
_OPT_DO = struct.pack("!BHHIH", 0, 41, ADVERTISED_PAYLOAD, 0x8000, 0)
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_COUNTS = (b"\x00\x01\x00\x00\x00\x00\x00\x00", b"\x00\x01\x00\x00\x00\x00\x00\x01")
_TTL = struct.Struct("!I")


class Question(NamedTuple):
    """The parts of a plain query that forwarding needs (see :func:`parse_question`)."""

    qname: bytes  # wire form, the client's case
    type_class: bytes  # QTYPE and QCLASS, 4 bytes
    edns: bool
    do: bool
    payload: int
    bits: int  # BIT_DO | BIT_CD | BIT_AD as the query set them

    @property
    def key(self) -> bytes:
        return self.qname.lower() + self.type_class + bytes((self.bits,))


def parse_question(q: bytes) -> Question | None:
    """The question of a plain QUERY with RD set (one question, no compression, at most one OPT, version 0), or
    None for anything else."""
    n = len(q)
    if n < 17 or q[2] & 0xF8 != 0 or not q[2] & 0x01 or q[4:12] not in _COUNTS:
        return None  # QR set, opcode not QUERY, or RD clear; or counts other than one question (+ one OPT)
    pos = 12
    while pos < n:
        length = q[pos]
        if length == 0 or length > 63:
            break
        pos += length + 1
    if pos >= n or q[pos] != 0 or pos - 12 >= 255 or pos + 5 > n:
        return None
    qend = pos + 1
    p = qend + 4
    edns, do, payload = False, False, 512
    if q[11] == 0:
        if p != n:
            return None
    else:
        if p + 11 > n or q[p] != 0 or q[p + 1] != 0 or q[p + 2] != 41 or q[p + 6] != 0:
            return None
        end = p + 11 + ((q[p + 9] << 8) | q[p + 10])
        if end != n:
            return None
        i = p + 11
        while i + 4 <= end:
            i += 4 + ((q[i + 2] << 8) | q[i + 3])
        if i != end:
            return None
        edns, do, payload = True, bool(q[p + 7] & 0x80), (q[p + 3] << 8) | q[p + 4]
    bits = (BIT_DO if do else 0) | (BIT_CD if q[3] & CD else 0) | (BIT_AD if q[3] & AD else 0)
    return Question(q[12:qend], q[qend:p], edns, do, payload, bits)


def in_zones(qname_lower: bytes, zones: tuple[bytes, ...]) -> bool:
    """Whether a lower-cased wire-form name is at or under one of ``zones`` (lower-cased wire forms)."""
    pos = 0
    while True:
        if qname_lower[pos:] in zones:
            return True
        length = qname_lower[pos]
        if length == 0:
            return False
        pos += length + 1


def ttl_offsets(wire: bytes, qend: int) -> list[int]:
    """Where the TTL field of each record sits in an uncompressed-header message whose question ends at
    ``qend`` (the byte after QCLASS is ``qend + 4``). Raises ``ValueError`` on a malformed message."""
    counts = struct.unpack_from("!HHH", wire, 6)
    pos = qend + 4
    out = []
    try:
        for _ in range(sum(counts)):
            while True:  # the owner name: labels up to the root, or up to a compression pointer
                length = wire[pos]
                if length & 0xC0 == 0xC0:
                    pos += 2
                    break
                pos += length + 1
                if length == 0:
                    break
            if (wire[pos] << 8 | wire[pos + 1]) != dns.rdatatype.OPT:
                out.append(pos + 4)
            pos += 10 + (wire[pos + 8] << 8 | wire[pos + 9])
    except IndexError:
        raise ValueError("truncated message") from None
    if pos != len(wire):
        raise ValueError("bytes after the message")
    return out


def cache_seconds(response: dns.message.Message, *, max_ttl: int = DEFAULT_MAX_TTL,
                  max_negative_ttl: int = DEFAULT_MAX_NEGATIVE_TTL) -> int:
    """How long an upstream's answer may be cached (0: not at all), by the rules in the module docstring.

    Also lowers the TTL of a negative answer's SOA to ``min(SOA TTL, MINIMUM)`` (RFC 2308 §3)."""
    rcode = response.rcode()
    if response.flags & dns.flags.TC or rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return 0
    negative = rcode == dns.rcode.NXDOMAIN or not response.answer
    if negative:
        soa = next((r for r in response.authority if r.rdtype == dns.rdatatype.SOA), None)
        if soa is None or not len(soa):
            return 0
        soa.ttl = min(soa.ttl, soa[0].minimum)
    ttls = [r.ttl for section in (response.answer, response.authority, response.additional) for r in section
            if r.rdtype != dns.rdatatype.OPT]
    if not ttls:
        return 0
    return max(0, min(min(ttls), max_negative_ttl if negative else max_ttl))


class Entry:
    """One forwarded answer: the message (ID 0, no OPT, TTLs as fetched) and its countdown."""

    __slots__ = ("age", "current", "expires", "fetched", "offsets", "qend", "rcode", "ttls", "valid", "wire")

    def __init__(self, wire: bytes, qend: int, fetched: float, seconds: int) -> None:
        self.wire = wire
        self.qend = qend
        self.rcode = wire[3] & 0x0F
        self.fetched = fetched
        self.expires = fetched + seconds
        self.offsets = ttl_offsets(wire, qend)
        self.ttls = [_TTL.unpack_from(wire, off)[0] for off in self.offsets]
        self.age = 0
        self.current = wire
        self.valid = True  # False once dropped from the cache: replies remembered from it must not be served

    def at(self, age: int) -> bytes:
        """The message with every TTL lowered by ``age`` seconds (rendered once per age)."""
        if age != self.age:
            buf = bytearray(self.wire)
            for off, ttl in zip(self.offsets, self.ttls, strict=True):
                _TTL.pack_into(buf, off, ttl - age if ttl > age else 0)
            self.current, self.age = bytes(buf), age
        return self.current


def entry_from_response(response: dns.message.Message, qname_lower: bytes, fetched: float, *,
                        max_ttl: int = DEFAULT_MAX_TTL,
                        max_negative_ttl: int = DEFAULT_MAX_NEGATIVE_TTL) -> tuple[Entry, int]:
    """The entry for an upstream's answer to the question ``qname_lower`` and how long it may be cached.

    Raises ``ValueError`` for an answer that cannot be served (an extended rcode, over 65535 bytes)."""
    if response.rcode() > 15:
        raise ValueError(f"extended rcode {response.rcode()}")
    seconds = cache_seconds(response, max_ttl=max_ttl, max_negative_ttl=max_negative_ttl)
    upstream_ad = response.flags & dns.flags.AD
    response.id = 0
    response.use_edns(False)
    try:
        raw = bytearray(response.to_wire(max_size=65535))
    except Exception as exc:  # dns.exception.TooBig, or rdata that does not encode
        raise ValueError(f"cannot encode the answer: {exc!r}") from None
    qend = 12 + len(qname_lower)
    if raw[12:qend].lower() != qname_lower:
        raise ValueError("the answer is for another question")
    raw[2] = QR_BYTE
    raw[3] = RA | (AD if upstream_ad else 0) | (raw[3] & 0x0F)
    raw[12:qend] = qname_lower
    return Entry(bytes(raw), qend, fetched, seconds), seconds


def servfail_entry(qname_lower: bytes, type_class: bytes, fetched: float) -> Entry:
    """The SERVFAIL sent when no upstream answered (never cached)."""
    wire = b"\x00\x00" + bytes((QR_BYTE, RA | dns.rcode.SERVFAIL)) + _ONE_QUESTION + qname_lower + type_class
    return Entry(wire, 12 + len(qname_lower), fetched, 0)


def compose(entry: Entry, age: int, head4: bytes, question: Question, tcp: bool) -> bytes:
    """The reply to one query from an entry (see the module docstring)."""
    if tcp:
        limit = 65535 - 11 if question.edns else 65535
    elif question.edns:
        limit = (question.payload if question.payload > 512 else 512) - 11
    else:
        limit = 512
    wire = entry.at(age)
    qend = entry.qend
    if len(wire) > limit:  # truncated: the header with TC and empty sections, and the question
        wire = wire[:2] + bytes((wire[2] | 0x02,)) + wire[3:4] + _ONE_QUESTION + wire[12:qend + 4]
    flags = bytes((wire[2] | (head4[2] & 0x01), wire[3] | (head4[3] & CD)))
    if question.edns:
        arcount = ((wire[10] << 8) | wire[11]) + 1
        return b"".join((head4[:2], flags, wire[4:10], arcount.to_bytes(2, "big"), question.qname, wire[qend:],
                         _OPT_DO if question.do else _OPT_PLAIN))
    return b"".join((head4[:2], flags, wire[4:12], question.qname, wire[qend:]))


class ForwardCache:
    """Forwarded answers by question key, bounded, with expiry (see the module docstring)."""

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        self.size = max(size, 8)
        self._entries: dict[bytes, Entry] = {}

    def get(self, key: bytes, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.expires:
            self._drop(key)
            return None
        return entry

    def put(self, key: bytes, entry: Entry) -> None:
        entries = self._entries
        if key in entries:
            self._drop(key)
        elif len(entries) >= self.size:
            for old in list(itertools.islice(iter(entries), max(self.size // 8, 1))):
                self._drop(old)
        entries[key] = entry

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.valid = False

    def clear(self) -> None:
        for entry in self._entries.values():
            entry.valid = False
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
