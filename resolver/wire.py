"""Encoding answers to DNS wire format, fast (the miss path of the answer cache).

:func:`render` turns the ``(owner, ttl, type, rdata)`` records of :mod:`resolver.lookup` into a complete DNS
message (ID 0, RD clear, no OPT: the answer layer patches those in). Records with the same owner
(case-insensitive) and type form one RRset, written together in the order of first appearance, with one TTL
(the smallest, as RFC 2181 asks) and duplicates removed. Names are compressed (owner names and the names inside
CNAME, NS, PTR, MX and SOA data), never inside SRV (RFC 2782); TXT and HINFO data are character-strings. The
question name is the compression anchor, so owner names equal to it become pointers to it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from resolver.lookup import RR, T_CNAME, T_HINFO, T_MX, T_NS, T_PTR, T_SOA, T_SRV, T_TXT
from resolver.store import Labels

QR, AA, TC = 0x8000, 0x0400, 0x0200
MAX_MESSAGE = 65535

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_COMPRESSED_NAME_TYPES = frozenset({T_CNAME, T_NS, T_PTR})


def wire_labels(wire: bytes) -> Labels:
    """The labels of an uncompressed name in wire form (which the caller has checked)."""
    labels: list[bytes] = []
    pos = 0
    while True:
        length = wire[pos]
        if length == 0:
            return tuple(labels)
        labels.append(wire[pos + 1:pos + 1 + length])
        pos += length + 1


def question(qname_wire: bytes, qtype: int, qclass: int, flags: int, rcode: int) -> bytes:
    """A message with only the question: errors and the truncated (TC) form."""
    return _HEADER.pack(0, flags | (rcode & 0xF), 1, 0, 0, 0) + qname_wire + struct.pack("!HH", qtype, qclass)


class _Writer:
    __slots__ = ("out", "table")

    def __init__(self, out: bytearray, table: dict[Labels, int]) -> None:
        self.out = out
        self.table = table

    def name(self, labels: Labels, *, compress: bool = True) -> None:
        out = self.out
        if not compress:
            for label in labels:
                out.append(len(label))
                out += label
            out.append(0)
            return
        table = self.table
        low = tuple(label.lower() for label in labels)
        for i, label in enumerate(labels):
            suffix = low[i:]
            pos = table.get(suffix)
            if pos is not None:
                out += (0xC000 | pos).to_bytes(2, "big")
                return
            off = len(out)
            if off < 0x3FFF:
                table[suffix] = off
            out.append(len(label))
            out += label
        out.append(0)

    def rdata(self, rdtype: int, rdata: Any) -> None:
        out = self.out
        if rdtype in _COMPRESSED_NAME_TYPES:
            self.name(rdata)
        elif rdtype == T_MX:
            out += rdata[0].to_bytes(2, "big")
            self.name(rdata[1])
        elif rdtype == T_SRV:
            out += struct.pack("!HHH", rdata[0], rdata[1], rdata[2])
            self.name(rdata[3], compress=False)
        elif rdtype in (T_TXT, T_HINFO):  # character-strings (HINFO: CPU and OS)
            for chunk in rdata:
                out.append(len(chunk))
                out += chunk
        elif rdtype == T_SOA:
            self.name(rdata[0])
            self.name(rdata[1])
            out += struct.pack("!IIIII", *rdata[2:7])
        else:
            out += rdata  # A, AAAA: packed address


def _rrsets(records: Sequence[RR]) -> list[tuple[Labels, int, int, Iterable[Any]]]:
    groups: dict[tuple[Labels, int], list[Any]] = {}  # in order of first appearance
    for owner, ttl, rdtype, rdata in records:
        key = (tuple(label.lower() for label in owner), rdtype)
        group = groups.get(key)
        if group is None:
            groups[key] = [owner, ttl, rdtype, {rdata: None}]
        else:
            if ttl < group[1]:
                group[1] = ttl
            group[3][rdata] = None  # the rdata, deduplicated in first-seen order (a list made this quadratic)
    return [(g[0], g[1], g[2], g[3]) for g in groups.values()]


def render(qname_wire: bytes, qtype: int, qclass: int, flags: int, rcode: int, answer: Sequence[RR],
           authority: Sequence[RR], additional: Sequence[RR]) -> bytes | None:
    """The whole message, or None when it would exceed 65535 bytes."""
    out = bytearray(12)
    table: dict[Labels, int] = {}
    writer = _Writer(out, table)
    writer.name(wire_labels(qname_wire))
    out += struct.pack("!HH", qtype, qclass)
    counts = []
    for section in (answer, authority, additional):
        count = 0
        for owner, ttl, rdtype, rdatas in _rrsets(section):
            for rdata in rdatas:
                writer.name(owner)
                fixed_at = len(out)
                out += _RR_FIXED.pack(rdtype, 1, ttl & 0xFFFFFFFF, 0)
                writer.rdata(rdtype, rdata)
                rdlength = len(out) - fixed_at - 10
                out[fixed_at + 8:fixed_at + 10] = rdlength.to_bytes(2, "big")
                count += 1
            if len(out) > MAX_MESSAGE:
                return None  # no need to write the rest (a whole-zone answer can hold many thousand records)
        counts.append(count)
    out[0:12] = _HEADER.pack(0, flags | (rcode & 0xF), 1, *counts)
    return bytes(out)
