"""The one host name rule (syncer.hostnames), and that every source applies it on the common path."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from skydns.names import InvalidNameError
from syncer.config import SourceConfig
from syncer.hostnames import normalize_hostname
from syncer.model import ClusterSnapshot, Skipped
from syncer.sources import collect
from tests.syncer.source_objects import dns_ep, dnsendpoint, gateway, hostname, ingress, route, service


@dataclass(frozen=True)
class Case:
    label: str
    raw: str
    want: str | None  # the stored spelling; None: invalid
    reason: str = ""  # part of the reason when invalid
    wildcard: bool = True  # wildcards allowed (record names) or not (targets)


CASES = [
    Case("plain", "www.example.org", "www.example.org"),
    Case("upper case and the trailing dot", "Www.Example.ORG.", "www.example.org"),
    Case("a hyphen inside a label", "my-shop.example.org", "my-shop.example.org"),
    Case("double hyphen inside", "ab--cd.example.org", "ab--cd.example.org"),
    Case("service labels", "_sip._tcp.example.org", "_sip._tcp.example.org"),
    Case("acme challenge", "_acme-challenge.www.example.org", "_acme-challenge.www.example.org"),
    Case("digits only label", "1.example.org", "1.example.org"),
    Case("single label", "localhost", "localhost"),
    Case("leftmost wildcard", "*.apps.example.org", "*.apps.example.org"),
    Case("IDN becomes its A-label", "Bücher.example.org", "xn--bcher-kva.example.org"),
    Case("an A-label as given", "xn--bcher-kva.example.org", "xn--bcher-kva.example.org"),
    Case("63-byte label", "a" * 63 + ".example.org", "a" * 63 + ".example.org"),
    Case("253-byte name", ".".join(["a" * 61] * 4) + ".org", ".".join(["a" * 61] * 4) + ".org"),
    Case("label starting with a hyphen", "-bad.example.org", None, "starts or ends with '-'"),
    Case("label ending with a hyphen", "bad-.example.org", None, "starts or ends with '-'"),
    Case("the issue's example", "-bad-.example.org", None, "starts or ends with '-'"),
    Case("hyphen alone", "-.example.org", None, "starts or ends with '-'"),
    Case("upper case with a bad hyphen", "Bad-.Example.org", None, "starts or ends with '-'"),
    Case("IDN with a bad hyphen", "bücher-.example.org", None, ""),
    Case("a space", "my shop.example.org", None, "holds the character"),
    Case("a slash", "a/b.example.org", None, "holds the character"),
    Case("other punctuation", "shop!.example.org", None, "may only hold letters, digits"),
    Case("a colon", "shop:80.example.org", None, "may only hold letters, digits"),
    Case("empty label", "a..example.org", None, "empty label"),
    Case("leading dot", ".example.org", None, "empty label"),
    Case("empty", "", None, "empty name"),
    Case("root", ".", None, "root"),
    Case("wildcard in the middle", "a.*.example.org", None, "leftmost label"),
    Case("wildcard inside a label", "*a.example.org", None, "may only hold letters"),
    Case("two wildcards", "*.*.example.org", None, "leftmost label"),
    Case("a wildcard alone", "*", None, "alone"),
    Case("wildcard where not allowed", "*.example.org", None, "not allowed here", wildcard=False),
    Case("64-byte label", "a" * 64 + ".example.org", None, "over 63"),
    Case("254-byte name", ".".join(["a" * 62] * 4) + ".org", None, "over 253"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_host_name_rule(case: Case) -> None:
    if case.want is not None:
        assert normalize_hostname(case.raw, case.wildcard) == case.want
        return
    with pytest.raises(InvalidNameError) as err:
        normalize_hostname(case.raw, case.wildcard)
    assert case.reason in err.value.reason


def test_every_source_skips_an_invalid_host_name_with_object_value_and_reason() -> None:
    """Annotation, Ingress host, DNSEndpoint dnsName: none of them reaches the records, each is reported."""
    bad = "-bad-.example.org"
    snapshot = ClusterSnapshot(
        services=[service("web", annotations=hostname(bad, "web.example.org"), lb=[{"ip": "192.0.2.1"}])],
        ingresses=[ingress("shop", hosts=[bad, "shop.example.org"], lb=[{"ip": "192.0.2.2"}])],
        dnsendpoints=[dnsendpoint("custom", endpoints=[dns_ep(bad, "A", "192.0.2.3"),
                                                       dns_ep("ok.example.org", "A", "192.0.2.3")])],
        gateways=[gateway("gw")], httproutes=[route("HTTPRoute", "app", hostnames=(bad, "app.example.org"))])
    result = collect(snapshot, SourceConfig(sources=("service", "ingress", "crd", "gateway-httproute")))
    assert sorted(e.name for e in result.endpoints) == ["app.example.org", "ok.example.org", "shop.example.org",
                                                        "web.example.org"]
    reason = "invalid host name: label '-bad-' starts or ends with '-'"
    for resource in ("service/default/web", "ingress/default/shop", "dnsendpoint/default/custom",
                     "httproute/default/app"):
        assert Skipped(resource, bad, reason) in result.skipped


def test_an_invalid_cname_target_is_skipped() -> None:
    snapshot = ClusterSnapshot(services=[service("ext", type="ExternalName", cluster_ip=None,
                                                 annotations=hostname("ext.example.org"),
                                                 externalName="-bad-.example.net")])
    result = collect(snapshot, SourceConfig())
    assert result.endpoints == []
    assert any(s.value == "-bad-.example.net" and "starts or ends with '-'" in s.reason for s in result.skipped)
