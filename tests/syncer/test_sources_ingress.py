"""Ingress source table tests: objects + config -> endpoints and skipped reasons (ExternalDNS behaviour)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.syncer.source_objects import A, check_case, ep, ingress, run

LB = [{"ip": "192.0.2.50"}]
R = "ingress/default/app"


def iep(name: str, rtype: str, *targets: str, **kw: Any) -> Any:
    kw.setdefault("resource", R)
    return ep(name, rtype, *targets, **kw)


CASES: list[tuple[str, dict[str, Any], list[Any], list[tuple[str, str, str]]]] = [
    (
        "rule hosts and TLS hosts -> A each",
        {"ingresses": [ingress(hosts=("a.example.org", "b.example.org"), tls_hosts=("c.example.org",), lb=LB)]},
        [iep("a.example.org", "A", "192.0.2.50"), iep("b.example.org", "A", "192.0.2.50"),
         iep("c.example.org", "A", "192.0.2.50")],
        [],
    ),
    (
        "a rule without host is ignored; the same host twice is one endpoint",
        {"ingresses": [ingress(hosts=("", "a.example.org"), tls_hosts=("a.example.org",), lb=LB)]},
        [iep("a.example.org", "A", "192.0.2.50")],
        [],
    ),
    (
        "hostname annotation adds names",
        {"ingresses": [ingress(hosts=("a.example.org",), annotations={A + "hostname": "x.example.org, y.example.org."},
                               lb=LB)]},
        [iep("a.example.org", "A", "192.0.2.50"), iep("x.example.org", "A", "192.0.2.50"),
         iep("y.example.org", "A", "192.0.2.50")],
        [],
    ),
    (
        "ingress-hostname-source=annotation-only",
        {"ingresses": [ingress(hosts=("a.example.org",), lb=LB, annotations={
            A + "hostname": "x.example.org", A + "ingress-hostname-source": "Annotation-Only"})]},
        [iep("x.example.org", "A", "192.0.2.50")],
        [],
    ),
    (
        "ingress-hostname-source=defined-hosts-only",
        {"ingresses": [ingress(hosts=("a.example.org",), lb=LB, annotations={
            A + "hostname": "x.example.org", A + "ingress-hostname-source": "defined-hosts-only"})]},
        [iep("a.example.org", "A", "192.0.2.50")],
        [],
    ),
    (
        "unknown ingress-hostname-source: warning, both used",
        {"ingresses": [ingress(hosts=("a.example.org",), lb=LB, annotations={
            A + "hostname": "x.example.org", A + "ingress-hostname-source": "all"})]},
        [iep("a.example.org", "A", "192.0.2.50"), iep("x.example.org", "A", "192.0.2.50")],
        [(R, "all", "unknown ingress-hostname-source 'all'")],
    ),
    (
        "status ip and hostname -> A and CNAME; IPv6 -> AAAA",
        {"ingresses": [ingress(hosts=("a.example.org",), lb=[{"ip": "192.0.2.50", "hostname": "lb.example.net"},
                                                              {"ip": "2001:db8::50"}])]},
        [iep("a.example.org", "A", "192.0.2.50"), iep("a.example.org", "AAAA", "2001:db8::50"),
         iep("a.example.org", "CNAME", "lb.example.net")],
        [],
    ),
    (
        "target annotation replaces the status",
        {"ingresses": [ingress(hosts=("a.example.org",), lb=LB, annotations={A + "target": "edge.example.net."})]},
        [iep("a.example.org", "CNAME", "edge.example.net")],
        [],
    ),
    (
        "no status yet -> skipped with the reason",
        {"ingresses": [ingress(hosts=("a.example.org", "b.example.org"))]},
        [],
        [(R, "a.example.org,b.example.org", "no targets yet (status.loadBalancer is empty)")],
    ),
    (
        "empty status list -> skipped too",
        {"ingresses": [ingress(hosts=("a.example.org",), lb=[])]},
        [],
        [(R, "a.example.org", "no targets yet (status.loadBalancer is empty)")],
    ),
    (
        "wildcard hosts kept verbatim",
        {"ingresses": [ingress(hosts=("*.apps.example.org",), tls_hosts=("*.apps.example.org",), lb=LB)]},
        [iep("*.apps.example.org", "A", "192.0.2.50")],
        [],
    ),
    (
        "ttl and group apply to every host",
        {"ingresses": [ingress(hosts=("a.example.org", "b.example.org"), lb=LB,
                               annotations={A + "ttl": "5m", A + "coredns-group": "edge"})]},
        [iep("a.example.org", "A", "192.0.2.50", ttl=300, group="edge"),
         iep("b.example.org", "A", "192.0.2.50", ttl=300, group="edge")],
        [],
    ),
    (
        "a bad host is skipped, the others kept",
        {"ingresses": [ingress(hosts=("a..example.org", "ok.example.org", "x" * 64 + ".example.org"), lb=LB)]},
        [iep("ok.example.org", "A", "192.0.2.50")],
        [(R, "a..example.org", "invalid host name: empty label"),
         (R, "x" * 64 + ".example.org", "is 64 bytes, over 63")],
    ),
    (
        "a bad target is reported once for the object, the good ones used for every host",
        {"ingresses": [ingress(hosts=("a.example.org", "b.example.org"),
                               annotations={A + "target": "192.0.2.9,not a host!"})]},
        [iep("a.example.org", "A", "192.0.2.9"), iep("b.example.org", "A", "192.0.2.9")],
        [(R, "notahost!", "invalid target: 'notahost!' is neither an IP address nor a valid host name")],
    ),
    (
        "no host names at all -> nothing, nothing to report",
        {"ingresses": [ingress(lb=LB)]},
        [],
        [],
    ),
    (
        "controller annotation other than dns-controller -> ignored",
        {"ingresses": [ingress(hosts=("a.example.org",), lb=LB, annotations={A + "controller": "someone-else"}),
                       ingress(name="mine", hosts=("m.example.org",), lb=LB,
                               annotations={A + "controller": "dns-controller"})]},
        [iep("m.example.org", "A", "192.0.2.50", resource="ingress/default/mine")],
        [],
    ),
]


@pytest.mark.parametrize(("case", "args", "expected", "skipped"), CASES, ids=[c[0] for c in CASES])
def test_ingress_source(case: str, args: dict[str, Any], expected: list[Any],
                        skipped: list[tuple[str, str, str]]) -> None:
    check_case(args, expected, skipped)


CLASSES = [
    ingress(name="by-field", hosts=("f.example.org",), lb=LB, class_name="nginx"),
    ingress(name="by-annotation", hosts=("a.example.org",), lb=LB,
            annotations={"kubernetes.io/ingress.class": "nginx"}),
    ingress(name="field-wins", hosts=("w.example.org",), lb=LB, class_name="traefik",
            annotations={"kubernetes.io/ingress.class": "nginx"}),
    ingress(name="no-class", hosts=("n.example.org",), lb=LB),
]


@pytest.mark.parametrize(
    ("classes", "names"),
    [
        ((), ["a.example.org", "f.example.org", "n.example.org", "w.example.org"]),
        (("nginx",), ["a.example.org", "f.example.org"]),
        (("traefik",), ["w.example.org"]),
        (("nginx", "traefik"), ["a.example.org", "f.example.org", "w.example.org"]),
        (("other",), []),
    ],
)
def test_ingress_class_filter(classes: tuple[str, ...], names: list[str]) -> None:
    result = run(ingresses=CLASSES, ingress_classes=classes)
    assert [e.name for e in result.endpoints] == names
    assert result.skipped == []
