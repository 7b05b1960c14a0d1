"""The IXFR journal's rules (resolver.journal): chains, bounds, resets, RFC 1982 serial order; and the pure
transfer decisions (resolver.transfer): access lists, TSIG keys, message packing."""

from __future__ import annotations

from dataclasses import dataclass

import dns.message
import dns.rdatatype
import pytest

from resolver import transfer
from resolver.journal import Delta, Journal, Pending, ZoneRecords, serial_lt


def delta(old: int, new: int, size: int = 1) -> Delta:
    return Delta(old, new, tuple(f"d{old}-{i}".encode() for i in range(size)), ())


@dataclass(frozen=True)
class SinceCase:
    what: str
    deltas: list[tuple[int, int, int]]  # (old, new, records)
    ask: int
    want: list[int] | None  # the new serials of the chain handed out, None: not reachable
    max_deltas: int = 10
    max_records: int = 100


SINCE_CASES = [
    SinceCase("from the oldest serial: the whole chain", [(1, 2, 1), (2, 5, 1), (5, 9, 1)], 1, [2, 5, 9]),
    SinceCase("from the middle", [(1, 2, 1), (2, 5, 1), (5, 9, 1)], 5, [9]),
    SinceCase("already current: nothing to send", [(1, 2, 1), (2, 5, 1)], 5, []),
    SinceCase("a serial never seen", [(1, 2, 1), (2, 5, 1)], 3, None),
    SinceCase("older than the journal: the oldest delta fell out", [(1, 2, 1), (2, 3, 1), (3, 4, 1)], 1, None,
              max_deltas=2),
    SinceCase("the kept part still chains", [(1, 2, 1), (2, 3, 1), (3, 4, 1)], 2, [3, 4], max_deltas=2),
    SinceCase("bounded by records too", [(1, 2, 3), (2, 3, 3), (3, 4, 3)], 2, None, max_records=5),
    SinceCase("a delta that does not continue the chain starts a new one", [(1, 2, 1), (7, 8, 1)], 1, None),
    SinceCase("... and serves from its start", [(1, 2, 1), (7, 8, 1)], 7, [8]),
    SinceCase("one delta over the record bound: nothing kept", [(1, 2, 200)], 1, None),
    SinceCase("an empty journal reaches nothing", [], 1, None),
]


@pytest.mark.parametrize("case", SINCE_CASES, ids=lambda c: c.what)
def test_journal_since(case: SinceCase) -> None:
    journal = Journal(max_deltas=case.max_deltas, max_records=case.max_records)
    for old, new, size in case.deltas:
        journal.record(delta(old, new, size))
    chain = journal.since(case.ask)
    assert (None if chain is None else [d.new for d in chain]) == case.want
    assert journal.records <= case.max_records and len(journal) <= case.max_deltas


@dataclass(frozen=True)
class SerialCase:
    a: int
    b: int
    before: bool


SERIAL_CASES = [
    SerialCase(1, 2, True), SerialCase(2, 1, False), SerialCase(5, 5, False),
    SerialCase(0xFFFFFFFF, 0, True),  # the wrap: 2^32-1 is before 0
    SerialCase(0, 0xFFFFFFFF, False), SerialCase(0x7FFFFFFF, 0xFFFFFFFE, True),
    SerialCase(0, 0x80000000, False), SerialCase(0x80000000, 0, False),  # exactly half apart: undefined, neither
]


@pytest.mark.parametrize("case", SERIAL_CASES, ids=lambda c: f"{c.a}<{c.b}")
def test_rfc1982_order(case: SerialCase) -> None:
    assert serial_lt(case.a, case.b) is case.before


def test_a_record_held_by_two_names_leaves_with_the_last() -> None:
    records = ZoneRecords()
    glue, other = b"glue", b"other"
    lost, gained = records.set_name("apex", frozenset({glue, other}))
    assert lost == [] and sorted(gained) == [glue, other]
    assert records.set_name("ns1", frozenset({glue})) == ([], [])  # already in the zone
    lost, gained = records.set_name("apex", frozenset({other}))
    assert (lost, gained) == ([], []) and glue in records  # ns1 still holds it
    lost, _ = records.set_name("ns1", frozenset())
    assert lost == [glue] and glue not in records and len(records) == 1


def test_pending_changes_cancel_out() -> None:
    pending = Pending()
    pending.add([b"a"], [b"b"])
    pending.add([b"b"], [b"a"])  # back to where it was
    assert not pending
    pending.add([], [b"c"])
    step = pending.take(3, 4)
    assert (step.old, step.new, step.deleted, step.added) == (3, 4, (), (b"c",))


@dataclass(frozen=True)
class AclCase:
    acl: str
    client: object
    allowed: bool


ACL_CASES = [
    AclCase("127.0.0.1/32", ("127.0.0.1", 5353), True),
    AclCase("127.0.0.1/32", ("127.0.0.2", 5353), False),
    AclCase("10.0.0.0/8,192.0.2.1", ("192.0.2.1", 1), True),
    AclCase("10.0.0.0/8", ("::ffff:10.1.2.3", 1, 0, 0), True),  # a v4-mapped peer on a dual-stack socket
    AclCase("2001:db8::/32", ("2001:db8::5", 1, 0, 0), True),
    AclCase("2001:db8::/32", ("10.0.0.1", 1), False),
    AclCase("", ("127.0.0.1", 1), False),  # the default: nobody
    AclCase("0.0.0.0/0", None, False),  # no address known: never
]


@pytest.mark.parametrize("case", ACL_CASES, ids=lambda c: f"{c.acl or 'nobody'}:{c.client}")
def test_access_list(case: AclCase) -> None:
    assert transfer.allowed(transfer.parse_acl([case.acl]), case.client) is case.allowed


@pytest.mark.parametrize("text", ["xfr", "xfr:hmac-sha256", "xfr:hmac-md4:c2VjcmV0", "xfr:hmac-sha256:!!",
                                  "xfr:hmac-sha256:"])
def test_bad_tsig_keys_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        transfer.parse_tsig_key(text)


def test_records_are_packed_into_bounded_messages() -> None:
    query = dns.message.make_query("x.test.", "AXFR")
    request = transfer.Request(transfer.Kind.AXFR, query, "x.test", False)
    soa = b"\x01x\x04test\x00\x00\x06\x00\x01\x00\x00\x00\x1e\x00\x16\x00\x00" + b"\x00" * 20
    body = [b"\x01x\x04test\x00\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04" + bytes([10, 0, i // 256, i % 256])
            for i in range(3000)]
    messages = list(transfer.stream(request, [soa, *body, soa], None, target=4000))
    assert len(messages) > 10 and all(len(m) <= 4000 + 100 for m in messages)
    parsed = [dns.message.from_wire(m, one_rr_per_rrset=True) for m in messages]
    assert len(parsed[0].question) == 1 and all(not p.question for p in parsed[1:])
    assert sum(len(p.answer) for p in parsed) == 3002
    assert parsed[0].answer[0].rdtype == dns.rdatatype.SOA and parsed[-1].answer[-1].rdtype == dns.rdatatype.SOA
    assert all(p.id == query.id for p in parsed)
