"""collect() filters: sources, namespace, label and annotation selectors, domain filter and exclusions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.syncer.source_objects import A, ep, hostname, ingress, node, run, service

LB = [{"ip": "192.0.2.1"}]


def svc(name: str, ns: str = "default", host: str | None = None, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None) -> Any:
    return service(name=name, ns=ns, lb=LB, labels=labels,
                   annotations={**hostname(host or f"{name}.example.org"), **(annotations or {})})


OBJECTS: dict[str, Any] = {
    "services": [
        svc("web", labels={"app": "web", "env": "prod"}),
        svc("api", ns="team-b", labels={"app": "api", "env": "dev"}),
        svc("old", labels={"app": "old"}, annotations={"team": "legacy"}),
    ],
    "ingresses": [ingress(name="shop", hosts=("shop.example.org",), lb=LB, labels={"env": "prod"},
                          annotations={"kubernetes.io/ingress.class": "nginx"})],
}


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ({}, ["api.example.org", "old.example.org", "shop.example.org", "web.example.org"]),
        ({"sources": ["service"]}, ["api.example.org", "old.example.org", "web.example.org"]),
        ({"sources": ["ingress"]}, ["shop.example.org"]),
        ({"namespace": "team-b"}, ["api.example.org"]),
        ({"namespace": "nowhere"}, []),
        ({"label_filter": "env=prod"}, ["shop.example.org", "web.example.org"]),
        ({"label_filter": "env in (prod,dev),app!=api"}, ["shop.example.org", "web.example.org"]),
        ({"label_filter": "!env"}, ["old.example.org"]),
        ({"annotation_filter": "team=legacy"}, ["old.example.org"]),
        ({"annotation_filter": "kubernetes.io/ingress.class in (nginx)"}, ["shop.example.org"]),
        ({"annotation_filter": f"{A}hostname=web.example.org"}, ["web.example.org"]),
    ],
    ids=lambda v: str(v),
)
def test_object_filters(config: dict[str, Any], names: list[str]) -> None:
    result = run(**OBJECTS, **config)
    assert [e.name for e in result.endpoints] == names
    assert result.skipped == []


@pytest.mark.parametrize(
    ("include", "exclude", "names"),
    [
        ((), (), ["a.example.org", "b.a.example.org", "badexample.org", "example.org", "x.other.net"]),
        (("example.org",), (), ["a.example.org", "b.a.example.org", "example.org"]),
        (("Example.ORG.",), (), ["a.example.org", "b.a.example.org", "example.org"]),
        ((".example.org",), (), ["a.example.org", "b.a.example.org"]),
        (("example.org",), ("a.example.org",), ["example.org"]),
        (("example.org", "other.net"), ("b.a.example.org",), ["a.example.org", "example.org", "x.other.net"]),
        ((), ("example.org",), ["badexample.org", "x.other.net"]),
    ],
)
def test_domain_filter_on_label_boundaries(include: tuple[str, ...], exclude: tuple[str, ...],
                                           names: list[str]) -> None:
    hosts = ["example.org", "a.example.org", "b.a.example.org", "badexample.org", "x.other.net"]
    result = run(services=[svc("web", host=",".join(hosts))], domain_filter=include, exclude_domains=exclude)
    assert [e.name for e in result.endpoints] == names


def test_domain_filter_applies_to_srv_names_and_out_of_scope_hosts_are_not_reported() -> None:
    nodeport = service(name="np", type="NodePort", annotations=hostname("np.example.org", "np.other.net"),
                       ports=[{"port": 80, "nodePort": 30080}])
    no_status = service(name="pending", annotations=hostname("pending.other.net"))
    result = run(services=[nodeport, no_status], nodes=[node("n1", external=("203.0.113.1",))],
                 domain_filter=["example.org"])
    assert result.endpoints == [
        ep("_np._tcp.np.example.org", "SRV", "0 50 30080 np.example.org", resource="service/default/np"),
        ep("np.example.org", "A", "203.0.113.1", resource="service/default/np"),
    ]
    assert result.skipped == []  # pending.other.net is outside the filter: not our business


def test_bad_annotations_of_objects_outside_the_domain_filter_are_not_reported() -> None:
    theirs = svc("theirs", host="a.other.net", annotations={A + "ttl": "soon"})
    mine = svc("mine", host="m.example.org", annotations={A + "ttl": "soon"})
    result = run(services=[theirs, mine], domain_filter=["example.org"])
    assert result.endpoints == [ep("m.example.org", "A", "192.0.2.1", resource="service/default/mine")]
    assert [(s.resource, s.value) for s in result.skipped] == [("service/default/mine", "soon")]


def test_domain_filter_keeps_hosts_whose_subnames_are_in_scope() -> None:
    headless = service(name="db", type="ClusterIP", cluster_ip="None", selector={"app": "db"},
                       annotations=hostname("db.example.org"))
    pods = [{"metadata": {"name": "db-0", "namespace": "default", "labels": {"app": "db"}},
             "spec": {"hostname": "db-0", "nodeName": "n1"}, "status": {"phase": "Running"}}]
    slices = [{"metadata": {"name": "db-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "db"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.1.0.5"], "targetRef": {"kind": "Pod", "name": "db-0"}}]}]
    result = run(services=[headless], pods=pods, slices=slices, domain_filter=["db-0.db.example.org"])
    assert result.endpoints == [ep("db-0.db.example.org", "A", "10.1.0.5", resource="service/default/db")]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"label_filter": "app in web"}, "invalid selector 'app in web'"),
        ({"annotation_filter": "a=b c"}, "invalid selector 'a=b c'"),
        ({"fqdn_templates": ["{{.Spec}}"]}, "invalid --fqdn-template"),
        ({"sources": ["service", "istio-gateway"]}, "unknown source 'istio-gateway'"),
    ],
)
def test_bad_configuration_is_a_value_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("{", r"\{")):
        run(**OBJECTS, **config)


def test_ten_thousand_services_collect_quickly_enough_to_matter() -> None:
    """Not a timing test (see bench/): checks that the per-call indexes give the expected records at scale."""
    nodes = [node(f"n{i}", external=(f"203.0.113.{i}",)) for i in range(1, 4)]
    services = [service(name=f"s{i}", type="NodePort" if i % 2 else "LoadBalancer",
                        annotations=hostname(f"s{i}.example.org"), lb=[{"ip": f"10.0.{i // 256}.{i % 256}"}],
                        ports=[{"port": 80, "nodePort": 30000 + i % 2000}])
                for i in range(10_000)]
    result = run(services=services, nodes=nodes)
    assert len(result.endpoints) == 5_000 * 2 + 5_000
    assert result.skipped == []


# ---- no object, however malformed, stops collection ------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)
_keys = st.sampled_from(["hostname", "internal-hostname", "target", "ttl", "access", "endpoints-type",
                         "ingress-hostname-source", "controller", "coredns-group"])
_annotations = st.dictionaries(_keys.map(lambda k: A + k), st.text(max_size=20) | st.sampled_from(
    ["a.example.org", "1.2.3.4", "1m", "*.example.org", "public", "HostIP", "::1"]), max_size=5)
_service = st.fixed_dictionaries({
    "metadata": st.fixed_dictionaries({"name": st.sampled_from(["a", "b"]), "annotations": _annotations}),
    "spec": st.fixed_dictionaries({
        "type": st.sampled_from(["LoadBalancer", "ClusterIP", "NodePort", "ExternalName", "x"]),
        "clusterIP": st.sampled_from(["None", "10.0.0.1", "", "bad"]),
        "ports": _json, "selector": _json, "externalIPs": _json, "externalName": _json,
        "externalTrafficPolicy": st.sampled_from(["Local", "Cluster"]),
    }),
    "status": _json,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(services=st.lists(_service | _json, max_size=3), ingresses=st.lists(_json, max_size=2),
       nodes=st.lists(_json, max_size=2), pods=st.lists(_json, max_size=2), slices=st.lists(_json, max_size=2))
def test_garbage_never_raises(services: list[Any], ingresses: list[Any], nodes: list[Any], pods: list[Any],
                              slices: list[Any]) -> None:
    result = run(services=services, ingresses=ingresses, nodes=nodes, pods=pods, slices=slices,
                 fqdn_templates=["{{.Name}}.{{.Namespace}}.example.org"], publish_internal_services=True)
    for e in result.endpoints:
        assert e.type in ("A", "AAAA", "CNAME", "SRV")
        assert e.targets == tuple(sorted(set(e.targets))) and e.targets
        assert e.name == e.name.lower() and not e.name.endswith(".")
