"""Service source table tests: objects + config -> endpoints and skipped reasons (ExternalDNS behaviour)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.syncer.source_objects import A, N, check_case, ep, hostname, node, pod, run, service, slice_

LB_IP = [{"ip": "192.0.2.10"}]
NODES = [
    node("n1", external=("203.0.113.1",), internal=("10.0.0.1",)),
    node("n2", external=("203.0.113.2",), internal=("10.0.0.2", "fd00::2")),
    node("n3", internal=("10.0.0.3",)),
    node("cordoned", external=("203.0.113.9",), internal=("10.0.0.9",), unschedulable=True),
]
INTERNAL_ONLY_NODES = [node("n1", internal=("10.0.0.1",)), node("n2", internal=("10.0.0.2",))]
SRV80 = ep("_web._tcp.web.example.org", "SRV", "0 50 30080 web.example.org")
NODEPORT: dict[str, Any] = {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}

# (id, run() arguments, expected endpoints, expected skipped as (resource, value, reason substring))
CASES: list[tuple[str, dict[str, Any], list[Any], list[tuple[str, str, str]]]] = [
    (
        "lb ip -> A",
        {"services": [service(annotations=hostname("web.example.org"), lb=LB_IP)]},
        [ep("web.example.org", "A", "192.0.2.10")],
        [],
    ),
    (
        "lb ip and hostname in one entry -> A and CNAME",
        {"services": [service(annotations=hostname("web.example.org"),
                              lb=[{"ip": "192.0.2.10", "hostname": "lb-1.elb.example.com."}])]},
        [ep("web.example.org", "A", "192.0.2.10"), ep("web.example.org", "CNAME", "lb-1.elb.example.com")],
        [],
    ),
    (
        "lb ipv6 -> AAAA, ipv4-mapped -> A, canonical forms",
        {"services": [service(annotations=hostname("web.example.org"),
                              lb=[{"ip": "2001:DB8:0::0:1"}, {"ip": "::ffff:192.0.2.7"}])]},
        [ep("web.example.org", "A", "192.0.2.7"), ep("web.example.org", "AAAA", "2001:db8::1")],
        [],
    ),
    (
        "spec.externalIPs win over the status",
        {"services": [service(annotations=hostname("web.example.org"), lb=LB_IP, externalIPs=["198.51.100.1"])]},
        [ep("web.example.org", "A", "198.51.100.1")],
        [],
    ),
    (
        "lb without status -> skipped, says why",
        {"services": [service(annotations=hostname("web.example.org"))]},
        [],
        [("service/default/web", "web.example.org", "no targets yet (status.loadBalancer is empty)")],
    ),
    (
        "hostname list: spaces removed, trailing dots trimmed, empty entries dropped, lower-cased, IDN",
        {"services": [service(annotations={A + "hostname": " Web.Example.org. , ,b .example.org,Bücher.example.org"},
                              lb=LB_IP)]},
        [ep("b.example.org", "A", "192.0.2.10"), ep("web.example.org", "A", "192.0.2.10"),
         ep("xn--bcher-kva.example.org", "A", "192.0.2.10")],
        [],
    ),
    (
        "internal-hostname on a LoadBalancer -> cluster IP, hostname -> LB",
        {"services": [service(annotations={**hostname("web.example.org"),
                                           A + "internal-hostname": "web.internal.example.org"}, lb=LB_IP)]},
        [ep("web.example.org", "A", "192.0.2.10"), ep("web.internal.example.org", "A", "10.96.0.10")],
        [],
    ),
    (
        "target annotation replaces the type logic, each target typed on its own",
        {"services": [service(annotations={**hostname("web.example.org"),
                                           A + "target": "198.51.100.5, 2001:db8::5,edge.example.net."}, lb=LB_IP)]},
        [ep("web.example.org", "A", "198.51.100.5"), ep("web.example.org", "AAAA", "2001:db8::5"),
         ep("web.example.org", "CNAME", "edge.example.net")],
        [],
    ),
    (
        "ttl as a duration and coredns-group",
        {"services": [service(annotations={**hostname("web.example.org"), A + "ttl": "1m30s",
                                           A + "coredns-group": "g1"}, lb=LB_IP)]},
        [ep("web.example.org", "A", "192.0.2.10", ttl=90, group="g1")],
        [],
    ),
    (
        "both prefixes: the newer external-dns.kubernetes.io/ wins",
        {"services": [service(annotations={A + "hostname": "old.example.org", N + "hostname": "new.example.org",
                                           A + "ttl": "10", N + "ttl": "20"}, lb=LB_IP)]},
        [ep("new.example.org", "A", "192.0.2.10", ttl=20)],
        [],
    ),
    (
        "--annotation-prefix narrows to one prefix",
        {"services": [service(annotations={A + "hostname": "old.example.org", N + "ttl": "20"}, lb=LB_IP),
                      service(name="new", annotations={N + "hostname": "new.example.org"}, lb=LB_IP)],
         "annotation_prefixes": [N]},
        [ep("new.example.org", "A", "192.0.2.10", resource="service/default/new")],
        [],
    ),
    (
        "ClusterIP with only a hostname is not published, and the skip says how to publish it",
        {"services": [service(type="ClusterIP", annotations=hostname("web.example.org"))]},
        [],
        [("service/default/web", "web.example.org", "internal-hostname annotation or --publish-internal-services")],
    ),
    (
        "ClusterIP with internal-hostname -> cluster IP",
        {"services": [service(type="ClusterIP", annotations={A + "internal-hostname": "web.svc.example.org"})]},
        [ep("web.svc.example.org", "A", "10.96.0.10")],
        [],
    ),
    (
        "ClusterIP with --publish-internal-services -> cluster IP",
        {"services": [service(type="ClusterIP", annotations=hostname("web.example.org"))],
         "publish_internal_services": True},
        [ep("web.example.org", "A", "10.96.0.10")],
        [],
    ),
    (
        "ClusterIP from a manifest without clusterIP yet",
        {"services": [service(type="ClusterIP", cluster_ip=None,
                              annotations={A + "internal-hostname": "w.example.org"})]},
        [],
        [("service/default/web", "w.example.org", "spec.clusterIP is not set yet")],
    ),
    (
        "type defaults to ClusterIP",
        {"services": [{"metadata": {"name": "web", "namespace": "default",
                                    "annotations": {A + "internal-hostname": "w.example.org"}},
                       "spec": {"clusterIP": "10.96.0.11"}}]},
        [ep("w.example.org", "A", "10.96.0.11")],
        [],
    ),
    (
        "NodePort: ExternalIPs of schedulable nodes, one SRV per node port (protocol lower-cased, default tcp)",
        {"services": [service(annotations=hostname("web.example.org"), type="NodePort", ports=[
            {"port": 80, "nodePort": 30080, "protocol": "TCP"},
            {"port": 53, "nodePort": 30053, "protocol": "UDP"},
            {"port": 8080, "nodePort": 30081},
            {"port": 9090},
        ])], "nodes": NODES},
        [ep("_web._tcp.web.example.org", "SRV", "0 50 30080 web.example.org", "0 50 30081 web.example.org"),
         ep("_web._udp.web.example.org", "SRV", "0 50 30053 web.example.org"),
         ep("web.example.org", "A", "203.0.113.1", "203.0.113.2")],
        [],
    ),
    (
        "NodePort access=private -> InternalIPs (IPv6 too)",
        {"services": [service(annotations={**hostname("web.example.org"), A + "access": "private"}, **NODEPORT)],
         "nodes": NODES},
        [SRV80, ep("web.example.org", "A", "10.0.0.1", "10.0.0.2", "10.0.0.3"),
         ep("web.example.org", "AAAA", "fd00::2")],
        [],
    ),
    (
        "NodePort without access and no ExternalIP anywhere -> InternalIPs",
        {"services": [service(annotations=hostname("web.example.org"), **NODEPORT)], "nodes": INTERNAL_ONLY_NODES},
        [SRV80, ep("web.example.org", "A", "10.0.0.1", "10.0.0.2")],
        [],
    ),
    (
        "NodePort access=public and no ExternalIP -> no A, SRV still (as ExternalDNS)",
        {"services": [service(annotations={**hostname("web.example.org"), A + "access": "public"}, **NODEPORT)],
         "nodes": INTERNAL_ONLY_NODES},
        [SRV80],
        [("service/default/web", "web.example.org", "no targets: no schedulable node has an address")],
    ),
    (
        "NodePort with an unknown access value: warning, default used",
        {"services": [service(annotations={**hostname("web.example.org"), A + "access": "Public"}, **NODEPORT)],
         "nodes": INTERNAL_ONLY_NODES},
        [SRV80, ep("web.example.org", "A", "10.0.0.1", "10.0.0.2")],
        [("service/default/web", "Public", "unknown access 'Public' (expected public or private); using the default")],
    ),
    (
        "NodePort with a target annotation: those targets, no SRV",
        {"services": [service(annotations={**hostname("web.example.org"), A + "target": "198.51.100.9"},
                              **NODEPORT)], "nodes": NODES},
        [ep("web.example.org", "A", "198.51.100.9")],
        [],
    ),
    (
        "NodePort externalTrafficPolicy=Local: only nodes with a ready, non-terminating pod of the service",
        {"services": [service(annotations=hostname("web.example.org"), selector={"app": "web"},
                              externalTrafficPolicy="Local", **NODEPORT)],
         "nodes": NODES,
         "pods": [pod("p1", "n1"), pod("p2", "n2", ready=False), pod("p3", "n3", deleting=True),
                  pod("p4", "n2", labels={"app": "other"}), pod("p5", "n2", ns="other"),
                  pod("p6", "n2", phase="Pending")]},
        [SRV80, ep("web.example.org", "A", "203.0.113.1")],
        [],
    ),
    (
        "ETP Local: only terminating ready pods -> their nodes",
        {"services": [service(annotations=hostname("web.example.org"), selector={"app": "web"},
                              externalTrafficPolicy="Local", **NODEPORT)],
         "nodes": NODES, "pods": [pod("p2", "n2", ready=False), pod("p3", "n1", deleting=True)]},
        [SRV80, ep("web.example.org", "A", "203.0.113.1")],
        [],
    ),
    (
        "ETP Local: no ready pod -> nodes with running pods",
        {"services": [service(annotations=hostname("web.example.org"), selector={"app": "web"},
                              externalTrafficPolicy="Local", **NODEPORT)],
         "nodes": NODES, "pods": [pod("p2", "n2", ready=False)]},
        [SRV80, ep("web.example.org", "A", "203.0.113.2")],
        [],
    ),
    (
        "ETP Local: no running pod -> no A, reason given",
        {"services": [service(annotations=hostname("web.example.org"), selector={"app": "web"},
                              externalTrafficPolicy="Local", **NODEPORT)], "nodes": NODES, "pods": []},
        [SRV80],
        [("service/default/web", "web.example.org", "no schedulable node runs a pod of this service")],
    ),
    (
        "ExternalName -> CNAME",
        {"services": [service(type="ExternalName", cluster_ip=None, externalName="DB.Example.NET.",
                              annotations=hostname("db.example.org"))]},
        [ep("db.example.org", "CNAME", "db.example.net")],
        [],
    ),
    (
        "ExternalName holding an IP -> A",
        {"services": [service(type="ExternalName", cluster_ip=None, externalName="198.51.100.20",
                              annotations=hostname("db.example.org"))]},
        [ep("db.example.org", "A", "198.51.100.20")],
        [],
    ),
    (
        "ExternalName with externalIPs -> the IPs",
        {"services": [service(type="ExternalName", cluster_ip=None, externalName="db.example.net",
                              externalIPs=["198.51.100.21"], annotations=hostname("db.example.org"))]},
        [ep("db.example.org", "A", "198.51.100.21")],
        [],
    ),
    (
        "unsupported type -> skipped",
        {"services": [service(type="Weird", annotations=hostname("w.example.org"))]},
        [],
        [("service/default/web", "w.example.org", "unsupported service type 'Weird'")],
    ),
]


@pytest.mark.parametrize(("case", "args", "expected", "skipped"), CASES, ids=[c[0] for c in CASES])
def test_service_source(case: str, args: dict[str, Any], expected: list[Any], skipped: list[tuple[str, str, str]]
                        ) -> None:
    check_case(args, expected, skipped)


# ---- headless services ---------------------------------------------------------------------------------------

HEADLESS = {"type": "ClusterIP", "cluster_ip": "None", "selector": {"app": "web"}}
HOSTNAME = hostname("web.example.org")

HEADLESS_CASES: list[tuple[str, dict[str, Any], list[Any], list[tuple[str, str, str]]]] = [
    (
        "ready endpoints -> A; pods with spec.hostname get their own name",
        {"services": [service(annotations=HOSTNAME, **HEADLESS)],
         "pods": [pod("web-0", hostname="web-0"), pod("web-1", hostname="web-1"), pod("other")],
         "slices": [slice_("web", [("web-0", "10.1.0.1", True), ("web-1", "10.1.0.2", True),
                                   ("other", "10.1.0.3", None)])]},
        [ep("web.example.org", "A", "10.1.0.1", "10.1.0.2", "10.1.0.3"),
         ep("web-0.web.example.org", "A", "10.1.0.1"), ep("web-1.web.example.org", "A", "10.1.0.2")],
        [],
    ),
    (
        "not-ready endpoints left out",
        {"services": [service(annotations=HOSTNAME, **HEADLESS)], "pods": [pod("web-0"), pod("web-1")],
         "slices": [slice_("web", [("web-0", "10.1.0.1", True), ("web-1", "10.1.0.2", False)])]},
        [ep("web.example.org", "A", "10.1.0.1")],
        [],
    ),
    (
        "publishNotReadyAddresses publishes every endpoint",
        {"services": [service(annotations=HOSTNAME, publishNotReadyAddresses=True, **HEADLESS)],
         "pods": [pod("web-0"), pod("web-1")],
         "slices": [slice_("web", [("web-0", "10.1.0.1", True), ("web-1", "10.1.0.2", False)])]},
        [ep("web.example.org", "A", "10.1.0.1", "10.1.0.2")],
        [],
    ),
    (
        "a pod's own target annotation wins",
        {"services": [service(annotations=HOSTNAME, **HEADLESS)],
         "pods": [pod("web-0", hostname="web-0", annotations={A + "target": "198.51.100.30"}), pod("web-1")],
         "slices": [slice_("web", [("web-0", "10.1.0.1", True), ("web-1", "10.1.0.2", True)])]},
        [ep("web.example.org", "A", "10.1.0.2", "198.51.100.30"), ep("web-0.web.example.org", "A", "198.51.100.30")],
        [],
    ),
    (
        "endpoints-type NodeExternalIP -> the pod's node ExternalIPs",
        {"services": [service(annotations={**HOSTNAME, A + "endpoints-type": "NodeExternalIP"}, **HEADLESS)],
         "nodes": NODES, "pods": [pod("web-0", "n1"), pod("web-1", "n2")],
         "slices": [slice_("web", [("web-0", "10.1.0.1", True), ("web-1", "10.1.0.2", True)])]},
        [ep("web.example.org", "A", "203.0.113.1", "203.0.113.2")],
        [],
    ),
    (
        "endpoints-type HostIP -> status.hostIP",
        {"services": [service(annotations={**HOSTNAME, A + "endpoints-type": "HostIP"}, **HEADLESS)],
         "pods": [pod("web-0", host_ip="10.0.0.1"), pod("web-1", host_ip="10.0.0.2")],
         "slices": [slice_("web", [("web-0", "10.1.0.1", True), ("web-1", "10.1.0.2", True)])]},
        [ep("web.example.org", "A", "10.0.0.1", "10.0.0.2")],
        [],
    ),
    (
        "IPv6 slices -> AAAA; FQDN slices ignored",
        {"services": [service(annotations=HOSTNAME, **HEADLESS)], "pods": [pod("web-0"), pod("web-1")],
         "slices": [slice_("web", [("web-0", "fd00::1", True)], address_type="IPv6", name="v6"),
                    slice_("web", [("web-1", "web-1.example.net", True)], address_type="FQDN", name="fqdn")]},
        [ep("web.example.org", "AAAA", "fd00::1")],
        [],
    ),
    (
        "endpoints of pods the selector does not match, of other services or namespaces are ignored",
        {"services": [service(annotations=HOSTNAME, **HEADLESS)],
         "pods": [pod("web-0"), pod("stray", labels={"app": "x"}), pod("web-9", ns="other")],
         "slices": [slice_("web", [("web-0", "10.1.0.1", True), ("stray", "10.1.0.8", True)]),
                    slice_("web", [("web-9", "10.1.0.9", True)], ns="other"),
                    slice_("api", [("web-0", "10.1.0.7", True)], name="api-1")]},
        [ep("web.example.org", "A", "10.1.0.1")],
        [],
    ),
    (
        "no ready pod -> skipped with the reason",
        {"services": [service(annotations=HOSTNAME, **HEADLESS)], "pods": [pod("web-0")],
         "slices": [slice_("web", [("web-0", "10.1.0.1", False)])]},
        [],
        [("service/default/web", "web.example.org", "no ready pod address in the service's EndpointSlices")],
    ),
]


@pytest.mark.parametrize(("case", "args", "expected", "skipped"), HEADLESS_CASES, ids=[c[0] for c in HEADLESS_CASES])
def test_headless_service(case: str, args: dict[str, Any], expected: list[Any],
                          skipped: list[tuple[str, str, str]]) -> None:
    test_service_source(case, args, expected, skipped)


# ---- bad input never stops collection ------------------------------------------------------------------------

def test_bad_hostname_is_skipped_and_the_good_one_kept() -> None:
    long_label = "a" * 64
    result = run(services=[service(annotations=hostname(f"{long_label}.example.org", "ok.example.org"), lb=LB_IP)])
    assert result.endpoints == [ep("ok.example.org", "A", "192.0.2.10")]
    [skip] = result.skipped
    assert skip.resource == "service/default/web"
    assert skip.value == f"{long_label}.example.org"
    assert "64 bytes, over 63" in skip.reason


@pytest.mark.parametrize("bad", ["soon", "0", "-5", "2147483648", "1.5", "10x", ""])
def test_invalid_ttl_is_a_warning_and_the_record_is_kept_without_ttl(bad: str) -> None:
    result = run(services=[service(annotations={**hostname("web.example.org"), A + "ttl": bad}, lb=LB_IP)])
    assert result.endpoints == [ep("web.example.org", "A", "192.0.2.10", ttl=None)]
    [warning] = result.skipped
    assert (warning.resource, warning.value) == ("service/default/web", bad)
    assert warning.reason.startswith(f"invalid ttl {bad!r}")
    assert warning.reason.endswith("; using the default")


def test_invalid_targets_are_skipped_valid_ones_kept() -> None:
    result = run(services=[service(annotations={**hostname("web.example.org"),
                                                A + "target": "198.51.100.1,bad_host!,1.2.3.999,fe80::1%eth0"})])
    assert result.endpoints == [ep("web.example.org", "A", "198.51.100.1")]
    assert [s.value for s in result.skipped] == ["bad_host!", "1.2.3.999", "fe80::1%eth0"]
    assert all(s.reason.startswith("invalid target: ") for s in result.skipped)


@pytest.mark.parametrize(
    ("obj", "resource", "reason"),
    [
        ({"spec": {}}, "service/?/?", "metadata is missing"),
        ({"metadata": {"namespace": "x"}}, "service/x/?", "metadata.name is missing"),
        ({"metadata": {"name": "s", "namespace": "x"}, "spec": ["oops"]}, "service/x/s", "spec is not an object"),
        ("not an object", "service/?/?", "not an object but str"),
    ],
)
def test_malformed_objects_are_skipped_and_collection_goes_on(obj: Any, resource: str, reason: str) -> None:
    good = service(annotations=hostname("web.example.org"), lb=LB_IP)
    result = run(services=[obj, good])
    assert result.endpoints == [ep("web.example.org", "A", "192.0.2.10")]
    assert [(s.resource, s.reason) for s in result.skipped] == [(resource, f"malformed object: {reason}")]


def test_srv_name_with_a_too_long_label_is_skipped() -> None:
    long_name = "s" * 62  # "_" + 62 = 63 is fine; the protocol label is short
    result = run(services=[service(name=long_name + "xx", annotations=hostname("web.example.org"), **NODEPORT)],
                 nodes=NODES)
    assert [e.type for e in result.endpoints] == ["A"]
    [skip] = result.skipped
    assert skip.value == f"_{long_name}xx._tcp.web.example.org"
    assert "invalid host name" in skip.reason


def test_same_name_from_two_services_stays_two_endpoints() -> None:
    result = run(services=[service(name="a", annotations=hostname("web.example.org"), lb=[{"ip": "192.0.2.1"}]),
                           service(name="b", annotations=hostname("web.example.org"), lb=[{"ip": "192.0.2.2"}])])
    assert result.endpoints == [ep("web.example.org", "A", "192.0.2.1", resource="service/default/a"),
                                ep("web.example.org", "A", "192.0.2.2", resource="service/default/b")]


def test_collect_is_deterministic_whatever_the_input_order() -> None:
    services = [service(name=f"s{i}", annotations=hostname(f"s{i}.example.org", "all.example.org"),
                        lb=[{"ip": f"192.0.2.{i}"}]) for i in range(1, 6)]
    first = run(services=services)
    second = run(services=list(reversed(services)))
    assert first == second
    assert [e.name for e in first.endpoints] == sorted(e.name for e in first.endpoints)
