"""The message layer: header bits, EDNS and truncation, error rcodes, case, and the watch-driven answer cache."""

from __future__ import annotations

import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from prometheus_client import REGISTRY

from resolver import answers as answers_module
from resolver.answers import Answerer
from resolver.lookup import SoaFields, soa_name
from resolver.store import Store
from skydns.changes import KeyChange
from tests.resolver.cases import FIXTURE, ZONES
from tests.resolver.harness import ask, load


@pytest.fixture
def answerer() -> Answerer:
    return Answerer(load(FIXTURE), ZONES)


def raw(answerer: Answerer, query: dns.message.Message | bytes, *, tcp: bool = False) -> dns.message.Message:
    wire = query if isinstance(query, bytes) else query.to_wire()
    out = answerer.respond(wire, tcp=tcp)
    assert out is not None
    return dns.message.from_wire(out)


def addresses(response: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in response.answer for rd in rrset if rrset.rdtype in (1, 28)}


def put(store: Store, key: str, value: str, *, lease: float | None = None) -> int:
    rev = store.revision + 1
    store.apply(rev, [KeyChange(key, value.encode(), rev, lease)])
    return rev


def delete(store: Store, key: str) -> int:
    rev = store.revision + 1
    store.apply(rev, [KeyChange(key, None, rev)])
    return rev


# -- header bits --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rd", [True, False])
def test_id_echoed_rd_and_cd_copied_aa_set_ra_clear(answerer: Answerer, rd: bool) -> None:
    for _ in range(2):  # miss, then hit
        query = dns.message.make_query("a.skydns.test.", "A")
        query.flags = (dns.flags.RD if rd else 0) | dns.flags.CD
        response = raw(answerer, query)
        assert response.id == query.id
        assert bool(response.flags & dns.flags.RD) == rd
        assert response.flags & dns.flags.CD
        assert response.flags & dns.flags.AA and response.flags & dns.flags.QR
        assert not response.flags & dns.flags.RA
        assert not response.flags & dns.flags.AD


def test_query_case_kept_in_question_and_owner_on_a_cache_hit(answerer: Answerer) -> None:
    ask(answerer, "a.skydns.test.", "A")  # fills the cache with the lower-case form
    for spelling in ("A.SKYDNS.TEST.", "a.SkyDns.tEsT."):
        response = ask(answerer, spelling, "A")
        assert response.question[0].name.labels == dns.name.from_text(spelling).labels
        assert response.answer[0].name.labels == dns.name.from_text(spelling).labels
        assert addresses(response) == {"10.0.0.1"}
    assert answerer.stats.hits >= 2


def test_refused_outside_the_zones_without_aa(answerer: Answerer) -> None:
    for _ in range(2):
        response = ask(answerer, "www.example.org.", "A")
        assert response.rcode() == dns.rcode.REFUSED
        assert not response.flags & dns.flags.AA
        assert not response.answer and not response.authority


def test_longest_zone_wins() -> None:
    store = load([("/skydns/test/skydns/sub/www", '{"host":"10.0.0.1"}')])
    answerer = Answerer(store, ["skydns.test.", "sub.skydns.test."])
    response = ask(answerer, "nothing.sub.skydns.test.", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].name == dns.name.from_text("sub.skydns.test.")


# -- EDNS and sizes -----------------------------------------------------------------------------------------

def test_edns_is_echoed_with_our_payload_and_the_do_bit(answerer: Answerer) -> None:
    plain = ask(answerer, "a.skydns.test.", "A")
    assert plain.edns == -1
    with_edns = ask(answerer, "a.skydns.test.", "A", edns=0, payload=4096)
    assert with_edns.edns == 0 and with_edns.payload == answers_module.ADVERTISED_PAYLOAD
    assert not with_edns.ednsflags & dns.flags.DO
    with_do = ask(answerer, "a.skydns.test.", "A", edns=0, want_dnssec=True)
    assert with_do.ednsflags & dns.flags.DO


def test_edns_options_in_the_query_are_ignored(answerer: Answerer) -> None:
    query = dns.message.make_query("a.skydns.test.", "A", use_edns=0,
                                   options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")])
    response = raw(answerer, query)
    assert response.rcode() == dns.rcode.NOERROR and addresses(response) == {"10.0.0.1"}
    assert response.edns == 0 and not response.options


def test_big_answer_truncated_over_udp_and_whole_over_tcp_or_big_edns(answerer: Answerer) -> None:
    for _ in range(2):
        small = ask(answerer, "big.skydns.test.", "A")
        assert small.flags & dns.flags.TC and not small.answer
        assert small.question[0].name == dns.name.from_text("big.skydns.test.")
        edns_small = ask(answerer, "big.skydns.test.", "A", edns=0, payload=512)
        assert edns_small.flags & dns.flags.TC and edns_small.edns == 0
        edns_big = ask(answerer, "big.skydns.test.", "A", edns=0, payload=1232)
        assert not edns_big.flags & dns.flags.TC and len(addresses(edns_big)) == 40
        tcp = ask(answerer, "big.skydns.test.", "A", tcp=True)
        assert not tcp.flags & dns.flags.TC and len(addresses(tcp)) == 40


def test_payload_below_512_counts_as_512(answerer: Answerer) -> None:
    response = ask(answerer, "srvname.skydns.test.", "SRV", edns=0, payload=100)
    assert not response.flags & dns.flags.TC and len(response.answer[0]) == 3


def test_glue_is_dropped_before_the_answer_is_truncated() -> None:
    fixture = [(f"/skydns/test/skydns/srvbig/host{i:02d}", f'{{"host":"10.0.0.{i}","port":80}}') for i in range(9)]
    answerer = Answerer(load(fixture), ["skydns.test."])
    whole = ask(answerer, "srvbig.skydns.test.", "SRV", tcp=True)
    assert len(whole.to_wire()) > 512 and len(whole.additional) == 9
    udp = ask(answerer, "srvbig.skydns.test.", "SRV")
    assert not udp.flags & dns.flags.TC
    assert len(udp.answer[0]) == 9 and not udp.additional


def test_a_tcp_answer_with_its_opt_never_exceeds_65535_bytes() -> None:
    # 249 TXT strings of 250 bytes and one of 1 byte: 65534 bytes without EDNS, so no room for the OPT record.
    fixture = [(f"/skydns/test/skydns/huge/t{i:03d}", f'{{"text":"{i:04d}{"t" * 246}"}}') for i in range(249)]
    answerer = Answerer(load([*fixture, ("/skydns/test/skydns/huge/tail", '{"text":"x"}')]), ["skydns.test."])
    plain = answerer.respond(dns.message.make_query("huge.skydns.test.", "TXT").to_wire(), tcp=True)
    assert plain is not None and 65535 - 11 < len(plain) <= 65535
    wire = answerer.respond(dns.message.make_query("huge.skydns.test.", "TXT", use_edns=0).to_wire(), tcp=True)
    assert wire is not None and len(wire) <= 65535  # a longer message cannot be framed for TCP
    response = dns.message.from_wire(wire)
    assert response.flags & dns.flags.TC and response.edns == 0


# -- errors -------------------------------------------------------------------------------------------------

def header(qid: int = 0x1234, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


QUESTION = dns.name.from_text("a.skydns.test.").to_wire() + struct.pack("!HH", 1, 1)


def test_responses_and_runts_get_no_answer(answerer: Answerer) -> None:
    assert answerer.respond(b"", tcp=False) is None
    assert answerer.respond(b"\x12\x34\x01", tcp=False) is None
    assert answerer.respond(header(flags=0x8100) + QUESTION, tcp=False) is None


@pytest.mark.parametrize("packet", [
    header(qd=0),
    header(qd=2) + QUESTION + QUESTION,
    header() + QUESTION[:5],
    header() + QUESTION + b"trailing",
    header(ar=1) + QUESTION + b"\x00\x00\x29",  # a cut OPT
    header(ar=2) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2,  # two OPTs
], ids=["no-question", "two-questions", "cut-question", "trailing-garbage", "cut-opt", "two-opts"])
def test_malformed_queries_get_formerr_with_the_id(answerer: Answerer, packet: bytes) -> None:
    response = raw(answerer, packet)
    assert response.id == 0x1234
    assert response.rcode() == dns.rcode.FORMERR
    assert response.flags & dns.flags.RD  # copied


@pytest.mark.parametrize("opcode", [dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.STATUS, dns.opcode.IQUERY])
def test_other_opcodes_get_notimp(answerer: Answerer, opcode: int) -> None:
    response = raw(answerer, header(flags=0x0100 | (opcode << 11)) + QUESTION)
    assert response.rcode() == dns.rcode.NOTIMP and response.id == 0x1234
    assert response.opcode() == opcode


OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # payload 1232, no flags
OPT_DO = b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"


@pytest.mark.parametrize(("packet", "do"), [
    (header(ar=2) + QUESTION + OPT + OPT, False),  # two OPTs
    (header(ar=2) + QUESTION + OPT_DO + OPT_DO, True),
    (header(ar=1) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x03\x00\x0a\x00", True),  # cut option
    (header(ar=1) + QUESTION + OPT_DO + b"trailing", True),
    (header(ar=1) + QUESTION + b"\x01a\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", False),  # not root
], ids=["two-opts", "two-opts-do", "cut-option", "trailing", "opt-not-root"])
def test_formerr_for_a_query_with_an_opt_carries_an_opt(answerer: Answerer, packet: bytes, do: bool) -> None:
    # RFC 6891 §7: a request with an OPT gets an OPT in the response, also when the request is malformed.
    response = raw(answerer, packet)
    assert response.rcode() == dns.rcode.FORMERR and response.id == 0x1234
    assert response.edns == 0 and response.payload == answers_module.ADVERTISED_PAYLOAD
    assert bool(response.ednsflags & dns.flags.DO) == do


def test_formerr_without_an_opt_has_none(answerer: Answerer) -> None:
    response = raw(answerer, header() + QUESTION + b"trailing")
    assert response.rcode() == dns.rcode.FORMERR and response.edns == -1


@pytest.mark.parametrize("do", [False, True])
def test_bad_edns_version_gets_badvers_with_the_do_bit_copied(answerer: Answerer, do: bool) -> None:
    query = dns.message.make_query("a.skydns.test.", "A", use_edns=1, want_dnssec=do)
    response = raw(answerer, query)
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0 and not response.answer
    assert bool(response.ednsflags & dns.flags.DO) == do  # RFC 3225 §3


def test_notimp_for_an_edns_query_carries_an_opt(answerer: Answerer) -> None:
    query = dns.message.make_query("a.skydns.test.", "A", use_edns=0, want_dnssec=True)
    query.set_opcode(dns.opcode.NOTIFY)
    response = raw(answerer, query)
    assert response.rcode() == dns.rcode.NOTIMP and response.edns == 0 and response.ednsflags & dns.flags.DO


@pytest.mark.parametrize(("rdclass", "rdtype", "rcode"), [
    ("CH", "A", dns.rcode.REFUSED),
    ("HS", "TXT", dns.rcode.REFUSED),
    ("IN", "AXFR", dns.rcode.REFUSED),
    ("IN", "IXFR", dns.rcode.REFUSED),
    ("IN", "OPT", dns.rcode.FORMERR),
    ("ANY", "A", dns.rcode.NOERROR),
])
@pytest.mark.parametrize("tcp", [False, True])
def test_classes_and_meta_types(answerer: Answerer, rdclass: str, rdtype: str, rcode: int, tcp: bool) -> None:
    query = dns.message.make_query("a.skydns.test.", rdtype, rdclass=rdclass)
    response = raw(answerer, query, tcp=tcp)
    assert response.rcode() == rcode
    if rcode == dns.rcode.NOERROR:
        assert addresses(response) == {"10.0.0.1"}


@pytest.mark.parametrize("tcp", [False, True])
def test_zone_transfers_are_refused_with_an_answer(answerer: Answerer, tcp: bool) -> None:
    axfr = dns.message.make_query("skydns.test.", "AXFR")
    ixfr = dns.message.make_query("skydns.test.", "IXFR")
    ixfr.authority.append(dns.rrset.from_text("skydns.test.", 0, "IN", "SOA", "ns. host. 1 2 3 4 5"))
    for query in (axfr, ixfr):
        response = raw(answerer, query, tcp=tcp)
        assert response.rcode() == dns.rcode.REFUSED and response.id == query.id
        assert response.question[0].rdtype == query.question[0].rdtype


def test_compressed_question_name_is_understood(answerer: Answerer) -> None:
    # Question "a.skydns.test." written as label "a" plus a pointer to "skydns.test." placed in the header
    # cannot be done (the header has no room), so point into an earlier copy in the question itself instead.
    packet = header() + b"\x01a\xc0\x0e" + struct.pack("!HH", 1, 1)
    response = raw(answerer, packet)
    assert response.rcode() == dns.rcode.FORMERR  # a pointer to itself: a loop, refused by the parser
    response = raw(answerer, header() + b"\x06skydns\x04test\x00" + struct.pack("!HH", 6, 1))
    assert response.rcode() == dns.rcode.NOERROR and response.answer[0].rdtype == dns.rdatatype.SOA


# -- the cache, driven by store changes ---------------------------------------------------------------------

def test_a_change_is_answered_right_after_apply(answerer: Answerer) -> None:
    store = answerer.store
    assert addresses(ask(answerer, "a.skydns.test.")) == {"10.0.0.1"}
    put(store, "/skydns/test/skydns/a", '{"host":"10.9.9.9"}')
    assert addresses(ask(answerer, "a.skydns.test.")) == {"10.9.9.9"}
    delete(store, "/skydns/test/skydns/a")
    assert ask(answerer, "a.skydns.test.").rcode() == dns.rcode.NXDOMAIN


def test_negative_answers_turn_positive(answerer: Answerer) -> None:
    assert ask(answerer, "new.skydns.test.").rcode() == dns.rcode.NXDOMAIN
    assert ask(answerer, "deeper.new.skydns.test.").rcode() == dns.rcode.NXDOMAIN
    assert not ask(answerer, "a.skydns.test.", "AAAA").answer
    put(answerer.store, "/skydns/test/skydns/new/deeper/x1", '{"host":"10.7.7.7","targetstrip":1}')
    put(answerer.store, "/skydns/test/skydns/a6", '{"host":"2001:db8::a"}')
    assert addresses(ask(answerer, "deeper.new.skydns.test.")) == {"10.7.7.7"}
    parent = ask(answerer, "new.skydns.test.")  # now an empty non-terminal
    assert parent.rcode() == dns.rcode.NOERROR and not parent.answer
    put(answerer.store, "/skydns/test/skydns/a/v6", '{"host":"2001:db8::1"}')
    assert addresses(ask(answerer, "a.skydns.test.", "AAAA")) == {"2001:db8::1"}


def test_cname_target_change_reaches_the_cname_answer(answerer: Answerer) -> None:
    assert addresses(ask(answerer, "c1.skydns.test.")) == {"10.0.0.1"}
    put(answerer.store, "/skydns/test/skydns/a", '{"host":"10.0.0.42"}')
    assert addresses(ask(answerer, "c1.skydns.test.")) == {"10.0.0.42"}
    put(answerer.store, "/skydns/test/skydns/c2", '{"host":"dual.skydns.test"}')  # a hop retargeted
    assert addresses(ask(answerer, "c1.skydns.test.")) == {"10.0.0.2"}
    dangling = ask(answerer, "dangling.skydns.test.")
    assert dangling.rcode() == dns.rcode.NXDOMAIN and not addresses(dangling)
    put(answerer.store, "/skydns/test/skydns/missing", '{"host":"10.5.5.5"}')  # the dangling target appears
    found = ask(answerer, "dangling.skydns.test.")
    assert found.rcode() == dns.rcode.NOERROR and addresses(found) == {"10.5.5.5"}
    put(answerer.store, "/skydns/test/skydns/docs/c3a31977", '{"host":"a.skydns.test","targetstrip":1}')
    assert addresses(ask(answerer, "docs.skydns.test.")) == {"10.0.0.42"}  # an own leaf key retargeted
    put(answerer.store, "/skydns/test/skydns/docs/c3a31977", '{"host":"10.0.0.3","targetstrip":1}')
    assert ask(answerer, "docs.skydns.test.", "CNAME").answer == []  # no longer a CNAME


def test_glue_change_reaches_the_srv_answer(answerer: Answerer) -> None:
    def glue() -> set[str]:
        response = ask(answerer, "srvname.skydns.test.", "SRV")
        return {f"{rrset.name} {rd}" for rrset in response.additional for rd in rrset}

    assert "a.skydns.test. 10.0.0.1" in glue()
    put(answerer.store, "/skydns/test/skydns/a", '{"host":"10.0.0.77"}')
    assert "a.skydns.test. 10.0.0.77" in glue()


def test_query_wildcard_and_apex_fallback_answers_follow_changes() -> None:
    answerer = Answerer(load(FIXTURE), ZONES, subtree_answers=True)
    assert addresses(ask(answerer, "*.wild.skydns.test.")) == {"10.0.4.1", "10.0.4.2"}
    assert addresses(ask(answerer, "other.test.")) == {"10.1.0.1"}
    put(answerer.store, "/skydns/test/skydns/wild/c", '{"host":"10.0.4.3"}')
    put(answerer.store, "/skydns/test/other/deep/er", '{"host":"10.1.0.2"}')
    assert addresses(ask(answerer, "*.wild.skydns.test.")) == {"10.0.4.1", "10.0.4.2", "10.0.4.3"}
    assert addresses(ask(answerer, "other.test.")) == {"10.1.0.1", "10.1.0.2"}


def test_wildcard_synthesis_follows_changes(answerer: Answerer) -> None:
    store = answerer.store
    assert addresses(ask(answerer, "foo.apps.skydns.test.")) == {"10.0.20.1"}
    assert addresses(ask(answerer, "x.y.apps.skydns.test.")) == {"10.0.20.1"}
    put(store, "/skydns/test/skydns/apps/*/0c0c0c0c", '{"host":"10.0.20.3","targetstrip":1}')  # a second target
    assert addresses(ask(answerer, "foo.apps.skydns.test.")) == {"10.0.20.1", "10.0.20.3"}
    put(store, "/skydns/test/skydns/apps/foo/0d0d0d0d", '{"host":"10.0.20.4","targetstrip":1}')  # foo exists now
    assert addresses(ask(answerer, "foo.apps.skydns.test.")) == {"10.0.20.4"}
    put(store, "/skydns/test/skydns/apps/y/z/0e0e0e0e", '{"host":"10.0.20.5","targetstrip":1}')  # y: an encloser
    assert ask(answerer, "x.y.apps.skydns.test.").rcode() == dns.rcode.NXDOMAIN  # no *.y.apps
    delete(store, "/skydns/test/skydns/apps/*/0a1b2c3d")
    delete(store, "/skydns/test/skydns/apps/*/0c0c0c0c")
    assert ask(answerer, "bar.apps.skydns.test.").rcode() == dns.rcode.NXDOMAIN  # the wildcard is gone


def test_apex_own_records_follow_changes_and_ignore_the_rest_of_the_zone(answerer: Answerer) -> None:
    store = answerer.store

    def apex(rdtype: str = "A") -> set[str]:
        return {rd.to_text() for rrset in ask(answerer, "skydns.test.", rdtype).answer for rd in rrset}

    assert apex() == {"10.0.13.1"}
    put(store, "/skydns/test/skydns/9a9a9a9a", '{"host":"10.0.13.2","targetstrip":1}')  # a per-target leaf key
    assert apex() == {"10.0.13.1", "10.0.13.2"}
    put(store, "/skydns/test/skydns/9a9a9a9a/sub", '{"host":"10.0.13.3"}')  # no longer a leaf: a name
    assert apex() == {"10.0.13.1"}
    delete(store, "/skydns/test/skydns/9a9a9a9a/sub")
    assert apex() == {"10.0.13.1", "10.0.13.2"}
    put(store, "/skydns/test/skydns", '{"host":"10.0.13.4"}')  # the zone key itself
    assert apex() == {"10.0.13.1", "10.0.13.2", "10.0.13.4"}
    put(store, "/skydns/test/skydns/dns/apex/x1", '{"host":"10.0.13.5"}')  # dns/apex
    assert apex() == {"10.0.13.5", "10.0.13.2", "10.0.13.4"}
    put(store, "/skydns/test/skydns/cnamed", '{"host":"cdn.example.net"}')  # elsewhere in the zone
    put(store, "/skydns/test/skydns/cnamed2/0f0f0f0f", '{"host":"cdn.example.net","targetstrip":1}')
    assert apex() == {"10.0.13.5", "10.0.13.2", "10.0.13.4"}
    put(store, "/skydns/test/skydns/5f1e2d3c", '{"text":"v=spf1 mx -all","targetstrip":1}')
    assert apex("TXT") == {'"v=spf1 mx -all"'}
    put(store, "/skydns/test/skydns/dns/apex/mx", '{"host":"10.0.13.25","mail":true}')
    assert apex("MX") == {"10 mx.apex.dns.skydns.test."}


def test_unrelated_changes_keep_cached_answers(answerer: Answerer) -> None:
    ask(answerer, "a.skydns.test.")
    ask(answerer, "www.other.test.")
    put(answerer.store, "/skydns/test/skydns/web/ffff0000", '{"host":"10.0.1.3","targetstrip":1}')
    hits = answerer.stats.hits
    ask(answerer, "a.skydns.test.")
    ask(answerer, "www.other.test.")
    assert answerer.stats.hits == hits + 2


def test_replace_drops_every_cached_answer(answerer: Answerer) -> None:
    assert addresses(ask(answerer, "a.skydns.test.")) == {"10.0.0.1"}
    assert answerer.cached_answers() > 0
    rev = answerer.store.revision + 1
    answerer.store.replace(rev, [KeyChange("/skydns/test/skydns/a", b'{"host":"10.3.3.3"}', rev)])
    assert answerer.cached_answers() == 0
    assert addresses(ask(answerer, "a.skydns.test.")) == {"10.3.3.3"}
    assert ask(answerer, "web.skydns.test.").rcode() == dns.rcode.NXDOMAIN


def test_the_cache_is_bounded() -> None:
    answerer = Answerer(load(FIXTURE), ZONES, cache_size=64)
    for i in range(1000):
        ask(answerer, f"random{i}.skydns.test.")
        assert answerer.cached_answers() <= 64
    assert addresses(ask(answerer, "a.skydns.test.")) == {"10.0.0.1"}


# -- SOA serial, leases ---------------------------------------------------------------------------------------

def soa_serial(response: dns.message.Message) -> int:
    for rrset in (*response.answer, *response.authority):
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    raise AssertionError(f"no SOA in\n{response}")


def test_soa_serial_is_the_revision_of_the_zone_latest_change(answerer: Answerer) -> None:
    store = answerer.store
    start = soa_serial(ask(answerer, "skydns.test.", "SOA"))
    assert start == store.last_change("/skydns/test/skydns")
    rev = put(store, "/skydns/test/skydns/fresh", '{"host":"10.0.0.5"}')
    assert soa_serial(ask(answerer, "skydns.test.", "SOA")) == rev
    assert soa_serial(ask(answerer, "nosuch.skydns.test.")) == rev  # the NXDOMAIN's SOA too
    put(store, "/skydns/test/other/x", '{"host":"10.0.0.6"}')  # another zone: no change here
    assert soa_serial(ask(answerer, "skydns.test.", "SOA")) == rev
    gone = delete(store, "/skydns/test/skydns/fresh")
    assert soa_serial(ask(answerer, "skydns.test.", "SOA")) == gone
    assert soa_serial(ask(answerer, "a.skydns.test.", "AAAA")) == gone


def test_soa_fields_are_configurable(answerer: Answerer) -> None:
    fields = SoaFields(mname=soa_name("ns1.example.net."), rname=soa_name("first.last@example.net", mailbox=True),
                       refresh=3600, retry=600, expire=604800, minimum=60)
    custom = Answerer(answerer.store, ZONES, soa=fields)
    soa = ask(custom, "skydns.test.", "SOA").answer[0]
    assert soa.ttl == 60  # the SOA's TTL is MINIMUM: negative answers are cached that long (RFC 2308)
    rd = soa[0]
    assert (rd.mname.to_text(), rd.rname.to_text()) == ("ns1.example.net.", "first\\.last.example.net.")
    assert (rd.refresh, rd.retry, rd.expire, rd.minimum) == (3600, 600, 604800, 60)
    negative = ask(custom, "nosuch.skydns.test.")
    assert negative.authority[0].ttl == 60 and negative.authority[0][0].mname.to_text() == "ns1.example.net."
    default = ask(answerer, "skydns.test.", "SOA").answer[0]
    assert default.ttl == 30 and default[0].mname.to_text() == "ns.dns.skydns.test."
    assert default[0].rname.to_text() == "hostmaster.skydns.test."
    assert (default[0].refresh, default[0].retry, default[0].expire, default[0].minimum) == (7200, 1800, 86400, 30)


@pytest.mark.parametrize(("text", "mailbox"), [("", False), ("a..b", False), ("@example.org", True),
                                              ("x" * 64 + ".example.org", False), (".", False)])
def test_bad_soa_names_are_refused(text: str, mailbox: bool) -> None:
    with pytest.raises(ValueError):
        soa_name(text, mailbox=mailbox)


def ttl_of(response: dns.message.Message) -> int:
    return int(response.answer[0].ttl)


def test_leased_records_ttl_is_the_remaining_lease_clamped(answerer: Answerer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = answerer.store
    now = time.monotonic()
    put(store, "/skydns/test/skydns/leased", '{"host":"10.2.0.1"}', lease=now + 120.5)
    put(store, "/skydns/test/skydns/short", '{"host":"10.2.0.2"}', lease=now + 5)
    put(store, "/skydns/test/skydns/withttl", '{"host":"10.2.0.3","ttl":60}', lease=now + 120.5)
    put(store, "/skydns/test/skydns/long", '{"host":"10.2.0.4"}', lease=now + 10**6)
    assert 119 <= ttl_of(ask(answerer, "leased.skydns.test.")) <= 120
    assert ttl_of(ask(answerer, "short.skydns.test.")) == 30  # min-lease-ttl
    assert ttl_of(ask(answerer, "withttl.skydns.test.")) == 60  # the smaller wins
    assert ttl_of(ask(answerer, "long.skydns.test.")) == 86400  # max-lease-ttl
    # The TTL counts down: a cached leased answer is rebuilt once it is a second old.
    first = ttl_of(ask(answerer, "leased.skydns.test."))
    monkeypatch.setattr(answers_module.time, "monotonic", lambda: now + 50)
    assert ttl_of(ask(answerer, "leased.skydns.test.")) == 70
    assert ttl_of(ask(answerer, "leased.skydns.test.")) == 70
    assert first > 70


def test_lease_ttl_bounds_are_configurable() -> None:
    store = load([])
    answerer = Answerer(store, ["skydns.test."], min_lease_ttl=5, max_lease_ttl=100)
    now = time.monotonic()
    put(store, "/skydns/test/skydns/s", '{"host":"10.2.0.2"}', lease=now + 2)
    put(store, "/skydns/test/skydns/l", '{"host":"10.2.0.3"}', lease=now + 5000)
    assert ttl_of(ask(answerer, "s.skydns.test.")) == 5
    assert ttl_of(ask(answerer, "l.skydns.test.")) == 100


# -- answer modes (CoreDNS #3803) ------------------------------------------------------------------------------

def test_own_records_only_keeps_a_name_to_its_own_records() -> None:
    fixture = [
        ("/skydns/test/skydns/app", '{"host":"10.0.0.1"}'),
        ("/skydns/test/skydns/app/1a2b3c4d", '{"host":"10.0.0.2","targetstrip":1}'),  # ExternalDNS leaf: own
        ("/skydns/test/skydns/app/plain", '{"host":"10.0.0.3"}'),  # the name plain.app: not app's
        ("/skydns/test/skydns/app/api/5e6f7a8b", '{"host":"10.0.0.4","targetstrip":1}'),  # api.app's own
        ("/skydns/test/skydns/1a2b3c4d", '{"host":"10.0.0.9","targetstrip":1}'),  # the apex's own
        ("/skydns/test/skydns/dns/ns/ns1", '{"host":"10.0.0.53"}'),
    ]
    store = load(fixture)
    default = Answerer(store, ["skydns.test."])
    subtree = Answerer(store, ["skydns.test."], subtree_answers=True)
    own = Answerer(store, ["skydns.test."], own_records_only=True)
    assert addresses(ask(subtree, "app.skydns.test.")) == {"10.0.0.2", "10.0.0.3", "10.0.0.4"}
    assert addresses(ask(default, "app.skydns.test.")) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}  # + the instance
    assert addresses(ask(own, "app.skydns.test.")) == {"10.0.0.1", "10.0.0.2"}
    assert addresses(ask(own, "api.app.skydns.test.")) == {"10.0.0.4"}
    assert addresses(ask(own, "plain.app.skydns.test.")) == {"10.0.0.3"}
    assert addresses(ask(own, "skydns.test.")) == {"10.0.0.9"}  # no whole-zone fallback
    empty = ask(own, "nothing.app.skydns.test.")
    assert empty.rcode() == dns.rcode.NXDOMAIN
    parent = Answerer(load([("/skydns/test/skydns/a/b/c", '{"host":"10.0.0.1"}')]), ["skydns.test."],
                      own_records_only=True)
    response = ask(parent, "a.skydns.test.")  # an empty non-terminal: NODATA, not NXDOMAIN
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    ns = ask(own, "skydns.test.", "NS")  # the special dns/ns read keeps the subtree rule
    assert [rd.to_text() for rd in ns.answer[0]] == ["ns1.ns.dns.skydns.test."]


# -- prefixes, metrics --------------------------------------------------------------------------------------

def test_multi_element_prefix_builds_target_names_without_the_prefix() -> None:
    store = load([("/skydns/ka2/test/skydns/svc/x1", '{"host":"10.0.0.1","port":80}')], prefix="/skydns/ka2")
    answerer = Answerer(store, ["skydns.test."])
    response = ask(answerer, "svc.skydns.test.", "SRV")
    assert [rd.to_text() for rd in response.answer[0]] == ["10 100 80 x1.svc.skydns.test."]


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_metrics_count_responses_hits_and_misses(answerer: Answerer) -> None:
    before = (sample("dnssync_resolver_responses_total", {"rcode": "NXDOMAIN", "source": "records"}),
              sample("dnssync_resolver_answer_cache_hits_total"), sample("dnssync_resolver_answer_cache_misses_total"))
    ask(answerer, "metrics-nx.skydns.test.")
    ask(answerer, "metrics-nx.skydns.test.")
    after = (sample("dnssync_resolver_responses_total", {"rcode": "NXDOMAIN", "source": "records"}),
             sample("dnssync_resolver_answer_cache_hits_total"), sample("dnssync_resolver_answer_cache_misses_total"))
    assert after[0] == before[0] + 2
    assert after[1] >= before[1] + 1 and after[2] >= before[2] + 1
    assert sample("dnssync_resolver_answer_cache_entries") >= 1


def test_ns_with_a_name_host_points_at_that_name_with_glue() -> None:
    store = load([("/skydns/test/skydns/dns/ns/ns1", '{"host":"10.0.12.1"}'),
                  ("/skydns/test/skydns/dns/ns/ext", '{"host":"ns.example.org"}'),
                  ("/skydns/test/skydns/dns/ns/inzone", '{"host":"dual.skydns.test"}'),
                  ("/skydns/test/skydns/dual/x1", '{"host":"10.0.0.2"}'),
                  ("/skydns/test/skydns/dual/x2", '{"host":"2001:db8::2"}')])
    response = ask(Answerer(store, ["skydns.test."]), "skydns.test.", "NS")  # CoreDNS: SERVFAIL (bad-08)
    assert response.rcode() == dns.rcode.NOERROR
    assert {rd.to_text() for rd in response.answer[0]} == {"ns1.ns.dns.skydns.test.", "ns.example.org.",
                                                           "dual.skydns.test."}
    assert {f"{rrset.name} {rd}" for rrset in response.additional for rd in rrset} == {
        "ns1.ns.dns.skydns.test. 10.0.12.1", "dual.skydns.test. 10.0.0.2", "dual.skydns.test. 2001:db8::2"}


def test_a_closed_answerer_stops_following_the_store() -> None:
    store = load(FIXTURE)
    answerer = Answerer(store, ZONES)
    ask(answerer, "a.skydns.test.")
    answerer.close()
    assert answerer.cached_answers() == 0
    assert addresses(ask(answerer, "a.skydns.test.")) == {"10.0.0.1"}
    put(store, "/skydns/test/skydns/a", '{"host":"10.0.0.8"}')
    assert answerer.cached_answers() == 1  # not told about the change any more
