"""No input, however malformed, makes respond() raise; every reply is a well-formed DNS message with the ID, and
carries an OPT whenever the query holds one."""

from __future__ import annotations

import struct

import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from resolver.answers import Answerer, query_opt_flags
from tests.resolver.cases import FIXTURE, ZONES
from tests.resolver.harness import load

ANSWERER = Answerer(load(FIXTURE), ZONES, cache_size=512)

VALID = [
    dns.message.make_query(name, rdtype, use_edns=edns, payload=1232).to_wire()
    for name, rdtype, edns in [
        ("a.skydns.test.", "A", -1), ("srvname.skydns.test.", "SRV", 0), ("big.skydns.test.", "A", 0),
        ("*.wild.skydns.test.", "A", -1), ("1.0.0.10.in-addr.arpa.", "PTR", 0), ("skydns.test.", "NS", -1),
        ("c1.skydns.test.", "A", 0), ("www.example.org.", "A", -1),
    ]
]


def internal_errors() -> float:
    return REGISTRY.get_sample_value("dnssync_resolver_internal_errors_total") or 0.0


def check_reply(query: bytes, tcp: bool) -> None:
    before = internal_errors()
    reply = ANSWERER.respond(query, tcp=tcp)
    # Handled on purpose, not by respond()'s last-resort catch-all (which would count an internal error).
    assert internal_errors() == before
    if reply is None:
        assert len(query) < 12 or query[2] & 0x80, "only runts and responses may go unanswered"
        return
    message = dns.message.from_wire(reply)
    assert message.id == struct.unpack_from("!H", query)[0]
    assert message.flags & 0x8000  # QR
    if query_opt_flags(query) is not None:  # RFC 6891 §7: an OPT in, an OPT out, however broken the query
        assert message.edns == 0, message
    if not tcp and _edns_payload(query) is None:
        assert len(reply) <= 512


def _edns_payload(query: bytes) -> int | None:
    try:
        parsed = dns.message.from_wire(query)
    except Exception:
        return None
    return parsed.payload if parsed.edns >= 0 else None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_any_bytes(data: bytes, tcp: bool) -> None:
    check_reply(data, tcp)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=12, max_size=12), st.binary(max_size=300), st.booleans())
def test_any_header_and_body(head: bytes, body: bytes, tcp: bool) -> None:
    check_reply(head + body, tcp)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[i]
    return bytes(data)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.booleans())
def test_mutated_valid_queries(query: bytes, tcp: bool) -> None:
    check_reply(query, tcp)


def header(qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x0100) -> bytes:
    return struct.pack("!HHHHHH", 0xBEEF, flags, qd, an, ns, ar)


NASTIES = {
    "zero-length": b"",
    "header-only": header(qd=0),
    "huge-qdcount": header(qd=0xFFFF) + b"\x01a\x00\x00\x01\x00\x01",
    "huge-all-counts": header(qd=0xFFFF, an=0xFFFF, ns=0xFFFF, ar=0xFFFF),
    "self-pointer": header() + b"\xc0\x0c\x00\x01\x00\x01",
    "pointer-loop": header() + b"\x01a\xc0\x0e\x00\x01\x00\x01",
    "forward-pointer": header() + b"\xc0\x20\x00\x01\x00\x01" + b"\x00" * 30,
    "pointer-past-end": header() + b"\xc0\xff\x00\x01\x00\x01",
    "truncated-question": header() + b"\x06skydns\x04te",
    "no-type": header() + b"\x06skydns\x04test\x00",
    "label-64": header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",
    "name-too-long": header() + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01",
    "reserved-label-type": header() + b"\x80abc\x00\x00\x01\x00\x01",
    "opt-huge-rdlen": header(ar=1) + b"\x01a\x00\x00\x01\x00\x01" + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\xff\xff",
    "opt-bad-option": header(ar=1) + b"\x01a\x00\x00\x01\x00\x01" + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x03"
                                                                    + b"\x00\x0a\x00",
    "opt-not-root": header(ar=1) + b"\x01a\x00\x00\x01\x00\x01" + b"\x01a\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00",
    "answer-garbage": header(an=1) + b"\x01a\x00\x00\x01\x00\x01" + b"\xff" * 20,
    "nul-and-slash-labels": header() + b"\x03a/b\x02\x00\x00\x06skydns\x04test\x00\x00\x01\x00\x01",
    "all-ones": b"\xff" * 64,
    "qr-set": header(flags=0x8000) + b"\x01a\x00\x00\x01\x00\x01",
}


@pytest.mark.parametrize("packet", list(NASTIES.values()), ids=list(NASTIES))
@pytest.mark.parametrize("tcp", [False, True])
def test_hand_picked_nasties(packet: bytes, tcp: bool) -> None:
    check_reply(packet, tcp)


def test_nul_and_slash_labels_in_a_zone_are_nxdomain() -> None:
    reply = ANSWERER.respond(NASTIES["nul-and-slash-labels"], tcp=False)
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NXDOMAIN


def test_the_answerer_keeps_answering_after_garbage() -> None:
    for packet in NASTIES.values():
        ANSWERER.respond(packet, tcp=False)
    reply = ANSWERER.respond(VALID[0], tcp=False)
    assert reply is not None
    assert dns.message.from_wire(reply).answer[0][0].to_text() == "10.0.0.1"
