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
