"""The values passed between the syncer's layers: what the cluster holds, and the records it implies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]  # a Kubernetes object as JSON (same shape from the API and from manifest files)


@dataclass(frozen=True)
class KindSpec:
    """One kind the sources read, as the API serves it and as the snapshot holds it."""

    kind: str
    api_version: str
    field: str  # ClusterSnapshot attribute
    namespaced: bool
    selectable: bool  # the object label selector applies to it
    scoped: bool = True  # --namespace applies to it (Gateways: --gateway-namespace, applied by the gateway sources)


GATEWAY_API = "gateway.networking.k8s.io"

KINDS = {
    "Service": KindSpec("Service", "v1", "services", True, True),
    "Ingress": KindSpec("Ingress", "networking.k8s.io/v1", "ingresses", True, True),
    "Node": KindSpec("Node", "v1", "nodes", False, False),
    "Pod": KindSpec("Pod", "v1", "pods", True, False),
    "EndpointSlice": KindSpec("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", True, False),
    "Namespace": KindSpec("Namespace", "v1", "namespaces", False, False),
    "Gateway": KindSpec("Gateway", f"{GATEWAY_API}/v1", "gateways", True, False, scoped=False),
    "HTTPRoute": KindSpec("HTTPRoute", f"{GATEWAY_API}/v1", "httproutes", True, True),
    "GRPCRoute": KindSpec("GRPCRoute", f"{GATEWAY_API}/v1", "grpcroutes", True, True),
    "TLSRoute": KindSpec("TLSRoute", f"{GATEWAY_API}/v1", "tlsroutes", True, True),
    "TCPRoute": KindSpec("TCPRoute", f"{GATEWAY_API}/v1alpha2", "tcproutes", True, True),
    "UDPRoute": KindSpec("UDPRoute", f"{GATEWAY_API}/v1alpha2", "udproutes", True, True),
    "DNSEndpoint": KindSpec("DNSEndpoint", "externaldns.k8s.io/v1alpha1", "dnsendpoints", True, True),
}


@dataclass
class ClusterSnapshot:
    """The objects the sources read; filled from the API (``--kubeconfig``) or from files (``--from-manifests``)."""

    services: list[Obj] = field(default_factory=list)
    ingresses: list[Obj] = field(default_factory=list)
    nodes: list[Obj] = field(default_factory=list)
    pods: list[Obj] = field(default_factory=list)
    endpointslices: list[Obj] = field(default_factory=list)
    namespaces: list[Obj] = field(default_factory=list)
    gateways: list[Obj] = field(default_factory=list)
    httproutes: list[Obj] = field(default_factory=list)
    grpcroutes: list[Obj] = field(default_factory=list)
    tlsroutes: list[Obj] = field(default_factory=list)
    tcproutes: list[Obj] = field(default_factory=list)
    udproutes: list[Obj] = field(default_factory=list)
    dnsendpoints: list[Obj] = field(default_factory=list)


@dataclass(frozen=True, order=True)
class Endpoint:
    """One desired DNS record set: a name, a type and its targets.

    ``name`` is fully normalised (lower-case, A-label) *without* the trailing dot. ``targets`` are sorted and
    de-duplicated: IP literals for A/AAAA, a host name (no trailing dot) for CNAME, ``"priority weight port target"``
    for SRV, the text for TXT. ``ttl`` is ``None`` when not set. ``resource`` names the object it came from
    (``service/<ns>/<name>`` or ``ingress/<ns>/<name>``); ``group`` is the ``coredns-group`` annotation.
    """

    name: str
    type: str
    targets: tuple[str, ...]
    ttl: int | None = None
    resource: str = ""
    group: str = ""


@dataclass(frozen=True)
class Skipped:
    """A record, or an object, the sources left out, and why (shown in the plan output and logged)."""

    resource: str
    value: str
    reason: str


@dataclass
class SourceResult:
    endpoints: list[Endpoint] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
