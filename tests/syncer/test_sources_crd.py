"""The DNSEndpoint source (``--source crd``) as a table: ExternalDNS's objects -> canonical endpoints and skips."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from syncer.config import SourceConfig
from syncer.kube.projection import project
from syncer.model import ClusterSnapshot, Endpoint
from syncer.sources import DEFAULT_SOURCES, collect
from syncer.sources.base import Filters
from syncer.sources.crd import status_body, status_due
from tests.syncer.source_objects import dns_ep, dnsendpoint

R = "dnsendpoint/default/custom"
LONG_TEXT = "v=DKIM1; k=rsa; p=" + "A" * 400  # over 255 bytes: served as two strings
ODD_TEXT = 'say "hi"\\ <&> ünïcødé \u2028 ;; end'


def want(name: str, rtype: str, *targets: str, ttl: int | None = None, group: str = "", resource: str = R
         ) -> Endpoint:
    return Endpoint(name, rtype, tuple(sorted(targets)), ttl, resource, group)


@dataclass(frozen=True)
class Case:
    label: str
    endpoints: list[Any]
    expected: list[Endpoint]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (value, part of the reason)
    config: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("A with a TTL", [dns_ep("foo.example.org", "A", "192.0.2.7", ttl=180)],
         [want("foo.example.org", "A", "192.0.2.7", ttl=180)]),
    Case("A, several targets, canonical and de-duplicated",
         [dns_ep("Foo.Example.org.", "A", "192.0.2.8", "192.0.2.7", "192.0.2.8")],
         [want("foo.example.org", "A", "192.0.2.7", "192.0.2.8")]),
    Case("AAAA in its canonical spelling", [dns_ep("v6.example.org", "AAAA", "2001:DB8::0:7")],
         [want("v6.example.org", "AAAA", "2001:db8::7")]),
    Case("CNAME to a SaaS, with or without the trailing dot",
         [dns_ep("shop.example.org", "CNAME", "Shops.Example.NET."), dns_ep("b.example.org", "CNAME", "x.example.net")],
         [want("b.example.org", "CNAME", "x.example.net"), want("shop.example.org", "CNAME", "shops.example.net")]),
    Case("CNAME to an IDN", [dns_ep("c.example.org", "CNAME", "bücher.example")],
         [want("c.example.org", "CNAME", "xn--bcher-kva.example")]),
    Case("TXT: arbitrary text kept exactly",
         [dns_ep("_acme-challenge.example.org", "TXT", "validation-token-12345"),
          dns_ep("example.org", "TXT", "v=spf1 include:_spf.google.com ~all", ODD_TEXT, LONG_TEXT)],
         [want("_acme-challenge.example.org", "TXT", "validation-token-12345"),
          want("example.org", "TXT", "v=spf1 include:_spf.google.com ~all", ODD_TEXT, LONG_TEXT)]),
    Case("TXT with quotes is stored with its quotes (what the user wrote)", [dns_ep("q.example.org", "TXT", '"a b"')],
         [want("q.example.org", "TXT", '"a b"')]),
    Case("MX", [dns_ep("example.org", "MX", "10 mail.example.org", "20 Backup.Example.org.")],
         [want("example.org", "MX", "10 mail.example.org", "20 backup.example.org")]),
    Case("SRV", [dns_ep("_sip._tcp.example.org", "SRV", "10 5 5060 sip.example.org.")],
         [want("_sip._tcp.example.org", "SRV", "10 5 5060 sip.example.org")]),
    Case("NS: a delegation below the zone", [dns_ep("zone.example.org", "NS", "ns1.example.net", "ns2.example.net.")],
         [want("zone.example.org", "NS", "ns1.example.net", "ns2.example.net")]),
    Case("record type in lower case", [dns_ep("l.example.org", "a", "192.0.2.1")],
         [want("l.example.org", "A", "192.0.2.1")]),
    Case("coredns/group from providerSpecific",
         [dns_ep("g.example.org", "A", "192.0.2.1", providerSpecific=[{"name": "coredns/group", "value": "g1"},
                                                                     {"name": "other", "value": "x"}])],
         [want("g.example.org", "A", "192.0.2.1", group="g1")]),
    Case("labels and setIdentifier are ExternalDNS's bookkeeping, ignored",
         [dns_ep("i.example.org", "A", "192.0.2.1", labels={"owner": "x"}, setIdentifier="eu")],
         [want("i.example.org", "A", "192.0.2.1")]),
    Case("wildcard name", [dns_ep("*.apps.example.org", "A", "192.0.2.1")],
         [want("*.apps.example.org", "A", "192.0.2.1")]),
    Case("endpoints of one name and type are merged, the smallest TTL wins",
         [dns_ep("m.example.org", "A", "192.0.2.1", ttl=300), dns_ep("m.example.org", "A", "192.0.2.2", ttl=60)],
         [want("m.example.org", "A", "192.0.2.1", "192.0.2.2", ttl=60)]),
    Case("one bad endpoint skips only itself",
         [dns_ep("ok.example.org", "A", "192.0.2.1"), dns_ep("bad.example.org", "A", "192.0.2.2", "not-an-ip"),
          dns_ep("ok.example.org", "TXT", "still here")],
         [want("ok.example.org", "A", "192.0.2.1"), want("ok.example.org", "TXT", "still here")],
         [("bad.example.org A 192.0.2.2,not-an-ip", "endpoint skipped: 'not-an-ip' is not an IPv4 address")]),
    Case("unknown record type", [dns_ep("p.example.org", "PTR", "x.example.org"), dns_ep("n.example.org", "",
                                                                                        "192.0.2.1")],
         [], [("p.example.org PTR x.example.org", "record type 'PTR' is not supported"),
              ("n.example.org ? 192.0.2.1", "record type missing is not supported")]),
    Case("an IPv6 address in an A record", [dns_ep("a.example.org", "A", "2001:db8::1")], [],
         [("a.example.org A 2001:db8::1", "not an IPv4 address")]),
    Case("an IPv4 address in an AAAA record", [dns_ep("a.example.org", "AAAA", "192.0.2.1")], [],
         [("a.example.org AAAA 192.0.2.1", "not an IPv6 address")]),
    Case("an IPv4-mapped address (SkyDNS serves it as A)", [dns_ep("a.example.org", "AAAA", "::ffff:192.0.2.1")],
         [], [("a.example.org AAAA ::ffff:192.0.2.1", "IPv4-mapped")]),
    Case("a CNAME to an IP", [dns_ep("c.example.org", "CNAME", "192.0.2.1")], [],
         [("c.example.org CNAME 192.0.2.1", "is an IP address, not a host name")]),
    Case("a CNAME with two targets", [dns_ep("c.example.org", "CNAME", "a.example.net", "b.example.net")], [],
         [("c.example.org CNAME a.example.net,b.example.net", "exactly one target")]),
    Case("a CNAME to an invalid host name", [dns_ep("c.example.org", "CNAME", "-x-.example.net")], [],
         [("c.example.org CNAME -x-.example.net", "starts or ends with '-'")]),
    Case("no targets", [dns_ep("e.example.org", "A"), {"dnsName": "f.example.org", "recordType": "A"}], [],
         [("e.example.org A", "no targets"), ("f.example.org A", "no targets")]),
    Case("a target that is not a string", [dns_ep("e.example.org", "A", 7)], [],  # type: ignore[arg-type]
         [("e.example.org A 7", "not a string")]),
    Case("an empty TXT", [dns_ep("t.example.org", "TXT", "")], [], [("t.example.org TXT", "empty TXT")]),
    Case("a TXT larger than one record holds", [dns_ep("t.example.org", "TXT", "x" * 65300)], [],
         [("t.example.org TXT " + "x" * 182 + "...", "over what one record holds")]),
    Case("MX without a preference", [dns_ep("example.org", "MX", "mail.example.org")], [],
         [("example.org MX mail.example.org", "is not 'preference exchange'")]),
    Case("MX preference out of range", [dns_ep("example.org", "MX", "70000 mail.example.org")], [],
         [("example.org MX 70000 mail.example.org", "out of range")]),
    Case("MX to an IP", [dns_ep("example.org", "MX", "10 192.0.2.1")], [],
         [("example.org MX 10 192.0.2.1", "not a host name")]),
    Case("MX preference 0 is kept, with a warning", [dns_ep("example.org", "MX", "0 mail.example.org")],
         [want("example.org", "MX", "0 mail.example.org")],
         [("example.org MX 0 mail.example.org", "served as 10")]),
    Case("SRV with three fields", [dns_ep("_x._tcp.example.org", "SRV", "10 5 sip.example.org")], [],
         [("_x._tcp.example.org SRV 10 5 sip.example.org", "not 'priority weight port target'")]),
    Case("SRV with a non-numeric port", [dns_ep("_x._tcp.example.org", "SRV", "10 5 http sip.example.org")], [],
         [("_x._tcp.example.org SRV 10 5 http sip.example.org", "non-numeric")]),
    Case("NS to an IP", [dns_ep("zone.example.org", "NS", "192.0.2.53")], [],
         [("zone.example.org NS 192.0.2.53", "not a host name")]),
    Case("NS at a wildcard", [dns_ep("*.zone.example.org", "NS", "ns1.example.net")], [],
         [("*.zone.example.org NS ns1.example.net", "cannot be a wildcard")]),
    Case("an invalid dnsName is skipped on the common path",
         [dns_ep("-bad-.example.org", "A", "192.0.2.1"), dns_ep("a..example.org", "A", "192.0.2.1")], [],
         [("-bad-.example.org", "invalid host name: label '-bad-' starts or ends with '-'"),
          ("a..example.org", "empty label")]),
    Case("an endpoint without a dnsName", [dns_ep("ok.example.org", "A", "192.0.2.1"),
                                           {"recordType": "A", "targets": ["192.0.2.2"]}],
         [want("ok.example.org", "A", "192.0.2.1")], [("? A 192.0.2.2", "dnsName is missing")]),
    Case("an invalid recordTTL keeps the record without a TTL",
         [dns_ep("t.example.org", "A", "192.0.2.1", ttl=-5), dns_ep("u.example.org", "A", "192.0.2.1", ttl="60")],
         [want("t.example.org", "A", "192.0.2.1"), want("u.example.org", "A", "192.0.2.1")],
         [("t.example.org A 192.0.2.1", "outside 1..2147483647; using the default"),
          ("u.example.org A 192.0.2.1", "not a number of seconds; using the default")]),
    Case("the domain filter", [dns_ep("a.example.org", "A", "192.0.2.1"), dns_ep("a.example.net", "A", "192.0.2.1")],
         [want("a.example.org", "A", "192.0.2.1")], config={"domain_filter": ("example.org",)}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_dnsendpoint_source(case: Case) -> None:
    obj = dnsendpoint("custom", endpoints=case.endpoints)
    for snapshot_obj in (obj, project(obj)):  # from a manifest file, and as the reflector caches it
        result = collect(ClusterSnapshot(dnsendpoints=[snapshot_obj]), SourceConfig(sources=("crd",), **case.config))
        assert result.endpoints == sorted(case.expected, key=lambda e: (e.name, e.type, e.resource))
        got = [(s.value, s.reason) for s in result.skipped]
        assert len(got) == len(case.skipped), got
        for (value, reason), (want_value, want_reason) in zip(got, case.skipped, strict=True):
            assert all(s.resource == R for s in result.skipped)
            assert value == want_value
            assert want_reason in reason, reason


def test_the_object_filters_apply_and_the_source_is_not_a_default() -> None:
    objs = [dnsendpoint("a", endpoints=[dns_ep("a.example.org", "A", "192.0.2.1")], labels={"team": "a"},
                        annotations={"external-dns": "public"}),
            dnsendpoint("b", "other", endpoints=[dns_ep("b.example.org", "A", "192.0.2.2")])]
    snapshot = ClusterSnapshot(dnsendpoints=objs)
    assert "crd" not in DEFAULT_SOURCES
    assert collect(snapshot, SourceConfig()).endpoints == []
    names = {e.name for e in collect(snapshot, SourceConfig(sources=("crd",))).endpoints}
    assert names == {"a.example.org", "b.example.org"}
    for config in (SourceConfig(sources=("crd",), label_filter="team=a"),
                   SourceConfig(sources=("crd",), annotation_filter="external-dns=public"),
                   SourceConfig(sources=("crd",), namespace="default")):
        assert [e.name for e in collect(snapshot, config).endpoints] == ["a.example.org"]


def test_status_is_due_only_when_the_generation_is_not_observed() -> None:
    obj = dnsendpoint("a", endpoints=[dns_ep("a.example.org", "A", "192.0.2.1")], labels={"team": "a"})
    obj["metadata"].update(generation=3, resourceVersion="17")
    assert status_due(obj) == 3
    assert status_due({**obj, "status": {"observedGeneration": 2}}) == 3
    assert status_due({**obj, "status": {"observedGeneration": 3}}) is None
    assert status_due(dnsendpoint("from-a-file")) is None  # no generation: nothing to observe
    assert status_due(obj, Filters.of(SourceConfig(label_filter="team=b"))) is None  # not ours to read
    assert status_due(project(obj), Filters.of(SourceConfig(label_filter="team=a"))) == 3
    assert status_body(project(obj), 3) == {
        "apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
        "metadata": {"name": "a", "namespace": "default", "resourceVersion": "17"},
        "status": {"observedGeneration": 3}}
