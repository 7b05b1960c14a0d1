"""Kubernetes objects (as JSON dicts, the shape the API and manifest files give) for the source table tests."""

from __future__ import annotations

from typing import Any

from syncer.config import SourceConfig
from syncer.model import ClusterSnapshot, Endpoint, SourceResult
from syncer.sources import collect

A = "external-dns.alpha.kubernetes.io/"
N = "external-dns.kubernetes.io/"

Obj = dict[str, Any]


def meta(name: str, ns: str | None, annotations: dict[str, str] | None, labels: dict[str, str] | None) -> Obj:
    m: Obj = {"name": name}
    if ns is not None:
        m["namespace"] = ns
    if annotations:
        m["annotations"] = dict(annotations)
    if labels:
        m["labels"] = dict(labels)
    return m


def service(
    name: str = "web",
    ns: str = "default",
    type: str = "LoadBalancer",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    cluster_ip: str | None = "10.96.0.10",
    lb: list[Obj] | None = None,
    **spec: Any,
) -> Obj:
    body: Obj = {"type": type, **spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    obj: Obj = {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, ns, annotations, labels), "spec": body}
    if lb is not None:
        obj["status"] = {"loadBalancer": {"ingress": lb}}
    return obj


def hostname(*names: str, prefix: str = A) -> dict[str, str]:
    return {prefix + "hostname": ",".join(names)}


def node(
    name: str, external: tuple[str, ...] = (), internal: tuple[str, ...] = (), unschedulable: bool = False
) -> Obj:
    addresses = [{"type": "ExternalIP", "address": a} for a in external]
    addresses += [{"type": "InternalIP", "address": a} for a in internal]
    addresses.append({"type": "Hostname", "address": name})
    obj: Obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"addresses": addresses}}
    if unschedulable:
        obj["spec"] = {"unschedulable": True}
    return obj


def pod(
    name: str,
    node_name: str = "n1",
    ns: str = "default",
    labels: dict[str, str] | None = None,
    ready: bool = True,
    phase: str = "Running",
    hostname: str | None = None,
    annotations: dict[str, str] | None = None,
    deleting: bool = False,
    host_ip: str | None = None,
) -> Obj:
    m = meta(name, ns, annotations, {"app": "web"} if labels is None else labels)
    if deleting:
        m["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: Obj = {"nodeName": node_name}
    if hostname:
        spec["hostname"] = hostname
    status: Obj = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if host_ip:
        status["hostIP"] = host_ip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec, "status": status}


def slice_(
    service_name: str, endpoints: list[tuple[str, str, bool | None]], ns: str = "default", name: str | None = None,
    address_type: str = "IPv4",
) -> Obj:
    """An EndpointSlice of ``service_name``: ``(pod name, address, ready)`` per endpoint (``ready=None``: unset)."""
    eps = []
    for pod_name, address, ready in endpoints:
        ep: Obj = {"addresses": [address], "targetRef": {"kind": "Pod", "name": pod_name, "namespace": ns}}
        if ready is not None:
            ep["conditions"] = {"ready": ready}
        eps.append(ep)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-abc",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": address_type,
        "endpoints": eps,
    }


def ingress(
    name: str = "app",
    ns: str = "default",
    hosts: tuple[str, ...] = (),
    tls_hosts: tuple[str, ...] = (),
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    lb: list[Obj] | None = None,
    class_name: str | None = None,
) -> Obj:
    spec: Obj = {"rules": [{"host": h} for h in hosts]}
    if tls_hosts:
        spec["tls"] = [{"hosts": list(tls_hosts), "secretName": "tls"}]
    if class_name:
        spec["ingressClassName"] = class_name
    obj: Obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(name, ns, annotations, labels),
        "spec": spec,
    }
    if lb is not None:
        obj["status"] = {"loadBalancer": {"ingress": lb}}
    return obj


GATEWAY_API = "gateway.networking.k8s.io"
ROUTE_VERSIONS = {"HTTPRoute": "v1", "GRPCRoute": "v1", "TLSRoute": "v1", "TCPRoute": "v1alpha2",
                  "UDPRoute": "v1alpha2"}


def listener(name: str = "http", protocol: str = "HTTP", hostname: str | None = None, port: int = 80,
             from_: str | None = None, selector: Obj | None = None, kinds: list[Obj] | None = None) -> Obj:
    """A Gateway listener; ``from_``/``selector``/``kinds``: its ``allowedRoutes``."""
    lis: Obj = {"name": name, "protocol": protocol, "port": port}
    if hostname is not None:
        lis["hostname"] = hostname
    allowed: Obj = {}
    if from_ is not None:
        allowed["namespaces"] = {"from": from_, **({"selector": selector} if selector is not None else {})}
    if kinds is not None:
        allowed["kinds"] = kinds
    if allowed:
        lis["allowedRoutes"] = allowed
    return lis


def gateway(name: str = "gw", ns: str = "default", listeners: list[Obj] | None = None,
            addresses: tuple[str, ...] = ("192.0.2.10",), annotations: dict[str, str] | None = None,
            labels: dict[str, str] | None = None) -> Obj:
    """A Gateway (one HTTP listener without hostname by default); ``addresses`` go to ``status.addresses``."""
    return {
        "apiVersion": f"{GATEWAY_API}/v1", "kind": "Gateway", "metadata": meta(name, ns, annotations, labels),
        "spec": {"gatewayClassName": "example", "listeners": [listener()] if listeners is None else listeners},
        "status": {"addresses": [{"type": "Hostname" if any(c.isalpha() for c in a) and ":" not in a
                                  else "IPAddress", "value": a} for a in addresses],
                   "conditions": [{"type": "Programmed", "status": "True"}]},
    }


def parent_ref(name: str = "gw", ns: str | None = None, section: str | None = None, port: int | None = None,
               kind: str | None = None) -> Obj:
    ref: Obj = {"group": GATEWAY_API, "kind": kind or "Gateway", "name": name}
    for key, value in (("namespace", ns), ("sectionName", section), ("port", port)):
        if value is not None:
            ref[key] = value
    return ref


def route(kind: str = "HTTPRoute", name: str = "app", ns: str = "default", hostnames: tuple[str, ...] = (),
          parents: list[Obj] | None = None, status_parents: list[Obj] | None = None, accepted: bool = True,
          annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> Obj:
    """A route whose ``spec.parentRefs`` are ``parents`` (default: Gateway ``gw`` of its namespace) and whose
    ``status.parents`` are ``status_parents`` (default: the same), each ``Accepted`` as ``accepted`` says."""
    parents = [parent_ref()] if parents is None else parents
    spec: Obj = {"parentRefs": parents}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    status = [{"parentRef": ref, "controllerName": "example.net/gateway-controller",
               "conditions": [{"type": "Accepted", "status": "True" if accepted else "False"},
                              {"type": "ResolvedRefs", "status": "True"}]}
              for ref in (parents if status_parents is None else status_parents)]
    return {"apiVersion": f"{GATEWAY_API}/{ROUTE_VERSIONS[kind]}", "kind": kind,
            "metadata": meta(name, ns, annotations, labels), "spec": spec, "status": {"parents": status}}


def dnsendpoint(name: str = "custom", ns: str = "default", endpoints: list[Any] | None = None,
                annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> Obj:
    """ExternalDNS's DNSEndpoint (``externaldns.k8s.io/v1alpha1``) with these ``spec.endpoints``."""
    return {"apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint",
            "metadata": meta(name, ns, annotations, labels), "spec": {"endpoints": list(endpoints or [])}}


def dns_ep(dns_name: str, record_type: str, *targets: str, ttl: Any = None, **extra: Any) -> Obj:
    """One ``spec.endpoints[]`` entry of a DNSEndpoint."""
    entry: Obj = {"dnsName": dns_name, "recordType": record_type, "targets": list(targets), **extra}
    if ttl is not None:
        entry["recordTTL"] = ttl
    return entry


def namespace(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, None, None, labels)}


def run(
    services: list[Obj] | None = None,
    ingresses: list[Obj] | None = None,
    nodes: list[Obj] | None = None,
    pods: list[Obj] | None = None,
    slices: list[Obj] | None = None,
    **config: Any,
) -> SourceResult:
    snapshot = ClusterSnapshot(
        services=services or [], ingresses=ingresses or [], nodes=nodes or [], pods=pods or [],
        endpointslices=slices or [],
    )
    for key in ("ingress_classes", "domain_filter", "exclude_domains", "annotation_prefixes", "fqdn_templates",
                "sources"):
        if key in config and isinstance(config[key], list):
            config[key] = tuple(config[key])
    return collect(snapshot, SourceConfig(**config))


def ep(name: str, rtype: str, *targets: str, ttl: int | None = None, resource: str = "service/default/web",
       group: str = "") -> Endpoint:
    return Endpoint(name, rtype, tuple(sorted(targets)), ttl, resource, group)


def reasons(result: SourceResult) -> list[tuple[str, str, str]]:
    return [(s.resource, s.value, s.reason) for s in result.skipped]


def check_case(args: dict[str, Any], expected: list[Endpoint], skipped: list[tuple[str, str, str]]) -> None:
    """One table case: the endpoints exactly, and each skip's object and value exactly, its reason by substring."""
    result = run(**args)
    assert result.endpoints == sorted(expected, key=lambda e: (e.name, e.type, e.resource))
    got = reasons(result)
    assert len(got) == len(skipped), got
    for (resource, value, reason), want in zip(got, skipped, strict=True):
        assert (resource, value) == want[:2]
        assert want[2] in reason, reason
