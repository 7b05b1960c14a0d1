"""The SkyDNS value codec and CoreDNS's classification rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skydns.record import HostKind, Record, RecordDecodeError, decode, encode, host_kind, record_types


@pytest.mark.parametrize(
    ("record", "wire"),
    [
        # What ExternalDNS's coredns provider writes, byte for byte.
        (Record(host="172.18.0.2", targetstrip=1), b'{"host":"172.18.0.2","targetstrip":1}'),
        (Record(host="172.18.0.2", targetstrip=1, group="g1"), b'{"host":"172.18.0.2","targetstrip":1,"group":"g1"}'),
        (Record(host="primary.net", ttl=180, targetstrip=1), b'{"host":"primary.net","ttl":180,"targetstrip":1}'),
        (Record(host="10.0.0.1", targetstrip=1, owner="cluster1"),
         b'{"host":"10.0.0.1","targetstrip":1,"owner":"cluster1"}'),
        (Record(host="srv.example.org", port=8080, priority=10, weight=50, targetstrip=1, owner="o",
                resource="service/default/web"),
         b'{"host":"srv.example.org","port":8080,"priority":10,"weight":50,"targetstrip":1,"owner":"o",'
         b'"resource":"service/default/web"}'),
        (Record(text="a<b>&c"), b'{"text":"a\\u003cb\\u003e\\u0026c"}'),  # Go escapes HTML characters
        (Record(text="caf\u00e9"), '{"text":"caf\u00e9"}'.encode()),  # and keeps UTF-8 as is
        (Record(mail=True, host="mx.example.org"), b'{"host":"mx.example.org","mail":true}'),
        (Record(), b"{}"),
    ],
)
def test_encode_matches_externaldns_bytes(record: Record, wire: bytes) -> None:
    assert encode(record) == wire
    assert decode(wire) == record


def test_decode_is_case_insensitive_and_ignores_unknown_fields() -> None:
    assert decode(b'{"Host": "10.0.0.1", "TTL": 60, "extra": 1}') == Record(host="10.0.0.1", ttl=60)


def test_decode_ignores_externaldns_set_identifier_and_nulls() -> None:
    assert decode(b'{"host":"a.b","setIdentifier":"x","ttl":null}') == Record(host="a.b")
    assert decode(b"null") == Record()


def test_later_duplicate_field_wins() -> None:
    assert decode(b'{"host":"1.1.1.1","HOST":"2.2.2.2"}').host == "2.2.2.2"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1]", "not a JSON object"),
        (b'"host"', "not a JSON object"),
        (b'{"ttl":"60"}', "'ttl' must be an integer"),
        (b'{"ttl":1.5}', "'ttl' must be an integer"),
        (b'{"ttl":-1}', "'ttl' is out of range"),
        (b'{"ttl":4294967296}', "'ttl' is out of range"),
        (b'{"port":true}', "'port' must be an integer"),
        (b'{"host":1}', "'host' must be a string"),
        (b'{"mail":"yes"}', "'mail' must be true or false"),
    ],
)
def test_bad_values_raise_the_typed_error_with_the_key(raw: bytes, why: str) -> None:
    with pytest.raises(RecordDecodeError) as err:
        decode(raw, key="/skydns/org/example/bad")
    assert err.value.key == "/skydns/org/example/bad"
    assert why in err.value.reason


@pytest.mark.parametrize(
    ("record", "kind", "types"),
    [
        (Record(host="10.0.0.1"), HostKind.A, {"A", "SRV"}),
        (Record(host="::ffff:10.0.0.1"), HostKind.A, {"A", "SRV"}),
        (Record(host="2001:db8::1"), HostKind.AAAA, {"AAAA", "SRV"}),
        (Record(host="10.0.0.1", text="ignored"), HostKind.A, {"A", "SRV"}),
        (Record(host="010.0.0.1"), HostKind.CNAME, {"CNAME", "SRV", "PTR"}),  # leading zeros: a name
        (Record(host="fe80::1%eth0"), HostKind.CNAME, {"CNAME", "SRV", "PTR"}),
        (Record(host="web.example.org"), HostKind.CNAME, {"CNAME", "SRV", "PTR"}),
        (Record(host="web.example.org", text="x"), HostKind.TXT, {"TXT"}),  # CoreDNS #6110
        (Record(text="hello"), HostKind.TXT, {"TXT"}),
        (Record(), HostKind.NONE, set()),
        (Record(host="mx.example.org", mail=True), HostKind.CNAME, {"CNAME", "SRV", "MX", "PTR"}),
        (Record(host="10.0.0.2", port=-1), HostKind.A, {"A"}),
    ],
)
def test_what_a_value_yields(record: Record, kind: HostKind, types: set[str]) -> None:
    assert host_kind(record) is kind
    assert record_types(record) == types


small_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
records = st.builds(
    Record, host=st.text(max_size=20), port=small_ints, priority=small_ints, weight=small_ints,
    text=st.text(max_size=40), mail=st.booleans(), ttl=st.integers(0, 2**32 - 1), targetstrip=small_ints,
    group=st.text(max_size=8), owner=st.text(max_size=8), resource=st.text(max_size=8),
)


@given(records)
def test_value_round_trip(record: Record) -> None:
    assert decode(encode(record)) == record
    assert encode(decode(encode(record))) == encode(record)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_the_typed_error(raw: bytes) -> None:
    try:
        decode(raw, key="k")
    except RecordDecodeError as err:
        assert err.key == "k"


@given(st.dictionaries(st.sampled_from(["host", "Port", "TTL", "text", "mail", "group", "x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                 st.text(max_size=5), st.lists(st.integers(), max_size=2))))
def test_any_json_object_decodes_or_raises_the_typed_error(obj: dict[str, object]) -> None:
    try:
        decode(json.dumps(obj), key="k")
    except RecordDecodeError as err:
        assert err.key == "k"
