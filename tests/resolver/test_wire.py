"""The record encoder: RRsets, deduplication, TTLs and the 65535-byte limit."""

from __future__ import annotations

import struct

import dns.message

from resolver import wire

QNAME = b"\x03www\x06skydns\x04test\x00"
OWNER = (b"www", b"skydns", b"test")


def test_an_rrset_is_written_once_per_rdata_in_first_seen_order_with_the_smallest_ttl() -> None:
    records = [(OWNER, 300, 1, bytes([10, 0, 0, i])) for i in (2, 1, 2, 3, 1)]
    records.append(((b"WWW", b"skydns", b"test"), 60, 1, bytes([10, 0, 0, 1])))  # same owner, other case
    out = wire.render(QNAME, 1, 1, wire.QR, 0, records, [], [])
    assert out is not None
    assert struct.unpack_from("!HHHH", out, 4) == (1, 3, 0, 0)
    (rrset,) = dns.message.from_wire(out).answer
    assert [rd.to_text() for rd in rrset] == ["10.0.0.2", "10.0.0.1", "10.0.0.3"] and rrset.ttl == 60


def test_a_message_over_65535_bytes_is_not_rendered() -> None:
    records = [(OWNER, 300, 1, struct.pack("!I", i)) for i in range(5000)]  # 16 bytes each
    assert wire.render(QNAME, 1, 1, wire.QR, 0, records[:4000], [], []) is not None
    assert wire.render(QNAME, 1, 1, wire.QR, 0, records, [], []) is None
