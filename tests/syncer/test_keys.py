"""Keys and values the syncer writes: stable, readable by CoreDNS's rules, never a text field."""

from __future__ import annotations

import hashlib

import pytest

from skydns.record import HostKind, decode, encode, host_kind
from syncer.current import classify
from syncer.keys import BadTargetError, leaf, parse_srv, record_key, record_value
from syncer.sources.records import classify_target


def test_leaf_is_the_first_8_hex_digits_of_sha256_of_type_and_target() -> None:
    assert leaf("A", "10.0.0.1") == hashlib.sha256(b"A|10.0.0.1").hexdigest()[:8]
    assert leaf("A", "10.0.0.1") != leaf("AAAA", "10.0.0.1") != leaf("A", "10.0.0.2")


def test_key_is_the_reversed_name_plus_the_leaf() -> None:
    assert record_key("/skydns/", "www.example.org", "A", "10.0.0.1") == \
        f"/skydns/org/example/www/{leaf('A', '10.0.0.1')}"
    assert record_key("/skydns", "WWW.Example.org.", "A", "10.0.0.1") == \
        record_key("skydns", "www.example.org", "A", "10.0.0.1")


@pytest.mark.parametrize(("rtype", "target", "kind", "json_value"), [
    ("A", "10.0.0.1", HostKind.A,
     b'{"host":"10.0.0.1","targetstrip":1,"owner":"me","resource":"service/default/web"}'),
    ("AAAA", "2001:db8::1", HostKind.AAAA,
     b'{"host":"2001:db8::1","ttl":60,"targetstrip":1,"owner":"me","resource":"service/default/web"}'),
    ("CNAME", "lb.example.net", HostKind.CNAME,
     b'{"host":"lb.example.net","targetstrip":1,"owner":"me","resource":"service/default/web"}'),
    ("SRV", "0 50 30080 www.example.org", HostKind.CNAME,
     b'{"host":"_.www.example.org","port":30080,"weight":50,"targetstrip":1,"owner":"me",'
     b'"resource":"service/default/web"}'),
])
def test_values_are_read_by_coredns_rules_and_back_by_us(rtype: str, target: str, kind: HostKind,
                                                          json_value: bytes) -> None:
    ttl = 60 if rtype == "AAAA" else None
    value = record_value(rtype, target, ttl=ttl, group="", owner="me", resource="service/default/web")
    assert encode(value) == json_value
    assert host_kind(value) is kind
    assert value.text == ""
    key = record_key("/skydns", "www.example.org", rtype, target)
    back = classify(key, decode(encode(value), key), "/skydns")
    assert (back.name, back.type, back.target, back.ttl, back.owner) == ("www.example.org", rtype, target, ttl, "me")


@pytest.mark.parametrize(("target", "rtype", "canonical"), [
    (" 10.0.0.1", "A", "10.0.0.1"),
    ("::ffff:10.0.0.1", "A", "10.0.0.1"),
    ("2001:DB8:0::1", "AAAA", "2001:db8::1"),
    ("LB.Example.NET.", "CNAME", "lb.example.net"),
])
def test_targets_leave_the_sources_in_the_spelling_the_keys_hash(target: str, rtype: str, canonical: str) -> None:
    # The plan and the keys take endpoints as they come: the sources are the one place that canonicalises.
    assert classify_target(target) == (rtype, canonical)
    assert record_key("/skydns", "www.example.org", rtype, canonical).endswith(leaf(rtype, canonical))


@pytest.mark.parametrize("target", ["0 50 www.example.org", "0 50 0 www.example.org", "a b c d", "0 50 80 "])
def test_bad_srv_targets_are_refused(target: str) -> None:
    with pytest.raises(BadTargetError):
        parse_srv(target)


def test_srv_target_survives_coredns_targetstrip() -> None:
    # CoreDNS serves a name host as the SRV target after stripping `targetstrip` leftmost labels.
    value = record_value("SRV", "0 50 30080 game.example.org", ttl=None, group="", owner="me", resource="")
    served = ".".join(value.host.split(".")[value.targetstrip:])
    assert served == "game.example.org"
    assert (value.port, value.weight, value.priority) == (30080, 50, 0)
