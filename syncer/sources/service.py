"""Service -> records, per ``spec.type``, as ExternalDNS's service source does (defaults for the knobs we lack:
no ``--resolve-service-load-balancer-hostname``, ``--exclude-unschedulable`` on, ``--expose-internal-ipv6`` off,
``--publish-host-ip`` off, ``--always-publish-not-ready-addresses`` off).

For every host name (``hostname`` annotation, ``internal-hostname`` annotation, else ``--fqdn-template``):

1. ``target`` annotation present -> exactly those targets; the type logic below is skipped (no SRV, no pods).
2. LoadBalancer: internal-hostname -> ``spec.clusterIP``; else ``spec.externalIPs`` if any, else every
   ``status.loadBalancer.ingress[]`` ``ip`` and ``hostname``.
3. ClusterIP: ``clusterIP: None`` (headless) -> the pods (below); else ``spec.clusterIP`` only for internal-hostname
   or ``--publish-internal-services``.
4. NodePort: node addresses by ``access`` (public: ExternalIPs; private: InternalIPs; unset: ExternalIPs if any
   node has one, else InternalIPs), unschedulable nodes left out; with ``externalTrafficPolicy: Local`` only the
   nodes running a pod of the service (nodes with a ready, non-terminating pod; if none, with a ready pod; if none,
   with a running pod — ExternalDNS's order). Plus one SRV per port with a ``nodePort``:
   ``_<service>._<protocol lowercased, default tcp>.<hostname>`` -> ``0 50 <nodePort> <hostname>``.
5. ExternalName: ``spec.externalIPs`` if any, else ``spec.externalName``.
6. Headless: the EndpointSlices labelled with the service name; endpoints ready (``conditions.ready`` true or unset)
   or all with ``spec.publishNotReadyAddresses``; each must point (``targetRef``) at a pod of the namespace that the
   service selector matches. Per pod: its own ``target`` annotation, else by ``endpoints-type`` (NodeExternalIP:
   its node's ExternalIPs; HostIP: ``status.hostIP``), else the endpoint's first address. ``<hostname>`` gets every
   pod's targets, ``<pod spec.hostname>.<hostname>`` that pod's.

A host name that ends up with no target is reported as skipped, with the reason.

In a view (``--publish-view``), every host name (``hostname`` and ``internal-hostname`` alike) gets the records
clients inside the cluster should use: ``spec.clusterIP``; a headless service's pod records as above; nothing
for an ExternalName service (the view falls back to the main records, the same CNAME). No SRV records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncer.annotations import (
    ACCESS_PRIVATE,
    ACCESS_PUBLIC,
    ENDPOINTS_TYPE_HOST_IP,
    ENDPOINTS_TYPE_NODE_EXTERNAL_IP,
    Annotations,
)
from syncer.sources.base import NOTHING, Filters, HostNames, Needs, Source, Warnings
from syncer.sources.index import (
    NO_LB_STATUS,
    ClusterIndex,
    as_list,
    as_map,
    load_balancer_targets,
    meta,
    selector_matches,
    str_map,
)
from syncer.sources.records import ObjectRecords


class ServiceContext:
    """What one Service's records depend on besides its host names."""

    def __init__(
        self,
        svc: Mapping[str, Any],
        ann: Annotations,
        index: ClusterIndex,
        prefixes: tuple[str, ...],
        publish_internal: bool,
        records: ObjectRecords,
    ) -> None:
        self.svc = svc
        self.ann = ann
        self.index = index
        self.prefixes = prefixes
        self.publish_internal = publish_internal
        self.records = records
        self.name = str(meta(svc).get("name"))
        self.namespace = str(meta(svc).get("namespace") or "default")
        self.spec = as_map(svc.get("spec"))
        self.type = str(self.spec.get("type") or "ClusterIP")
        self.cluster_ip = str(self.spec.get("clusterIP") or "")
        self._node_targets: list[str] | None = None
        self._headless: dict[tuple[str, str], list[str]] | None = None
        self._warned: set[str] = set()

    def warn_once(self, value: str, reason: str) -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            self.records.warn(value, reason)

    # ---- per host name -------------------------------------------------------------------------------------
    def add_hostname(self, hostname: str, use_cluster_ip: bool) -> None:
        records = self.records
        override = self.ann.targets()
        if override:
            if not records.add(hostname, override):
                records.skip(hostname, "no valid target in the target annotation")
            return
        targets: list[str] = []
        why_none = ""
        if self.type == "LoadBalancer":
            if use_cluster_ip:
                targets, why_none = self._cluster_ip_targets()
            else:
                targets = [str(ip) for ip in as_list(self.spec.get("externalIPs")) if ip]
                if not targets:
                    targets = load_balancer_targets(self.svc)
                    why_none = NO_LB_STATUS
        elif self.type == "ClusterIP":
            if self.cluster_ip == "None":
                self._add_headless(hostname)
                return
            if use_cluster_ip or self.publish_internal:
                targets, why_none = self._cluster_ip_targets()
            else:
                why_none = (
                    "no targets: a ClusterIP service is published only with the internal-hostname annotation "
                    "or --publish-internal-services"
                )
        elif self.type == "NodePort":
            targets = self._nodeport_targets()
            why_none = self._nodeport_why_none()
            self._add_srv(hostname)
        elif self.type == "ExternalName":
            targets = [str(ip) for ip in as_list(self.spec.get("externalIPs")) if ip]
            if not targets and self.spec.get("externalName"):
                targets = [str(self.spec["externalName"]).strip().rstrip(".")]
            why_none = "no targets: an ExternalName service without spec.externalName"
        else:
            why_none = f"no targets: unsupported service type {self.type!r}"
        if targets:
            records.add(hostname, targets)
        else:
            records.skip(hostname, why_none)

    def add_view_hostname(self, hostname: str) -> None:
        """The in-cluster records of a host name (``--publish-view``): the cluster IP, or a headless service's
        ready pod IPs (and per-pod names); an ExternalName service gets none (its CNAME is the same inside)."""
        if self.type == "ExternalName":
            return
        if self.cluster_ip == "None":
            self._add_headless(hostname)
            return
        targets, why_none = self._cluster_ip_targets()
        if targets:
            self.records.add(hostname, targets)
        else:
            self.records.skip(hostname, why_none)

    # ---- target extraction ---------------------------------------------------------------------------------
    def _cluster_ip_targets(self) -> tuple[list[str], str]:
        if self.cluster_ip == "None":
            return [], "no targets: a headless service has no cluster IP"
        if not self.cluster_ip:
            return [], "no targets: spec.clusterIP is not set yet"
        return [self.cluster_ip], ""

    def _nodeport_why_none(self) -> str:
        if self.spec.get("externalTrafficPolicy") == "Local":
            return "no targets: no schedulable node runs a pod of this service (externalTrafficPolicy: Local)"
        return "no targets: no schedulable node has an address of the chosen kind"

    def _nodeport_targets(self) -> list[str]:
        if self._node_targets is not None:
            return self._node_targets
        local = self.spec.get("externalTrafficPolicy") == "Local"
        access, warning = self.ann.access()
        if warning:
            self.warn_once(str(self.ann.get("access")), warning)
        memo_key = ("nodeport-targets", access)
        if not local and memo_key in self.index.memo:
            self._node_targets = self.index.memo[memo_key]
            return self._node_targets
        node_names = self._local_nodes() if local else list(self.index.node_addresses)
        external: list[str] = []
        internal: list[str] = []
        for node_name in node_names:
            addresses = self.index.node_addresses.get(node_name)
            if addresses is not None:  # None: unschedulable
                external.extend(addresses[0])
                internal.extend(addresses[1])
        if access == ACCESS_PUBLIC:
            chosen = external
        elif access == ACCESS_PRIVATE:
            chosen = internal
        else:
            chosen = external or internal
        if not local:
            self.index.memo[memo_key] = chosen
        self._node_targets = chosen
        return chosen

    def _local_nodes(self) -> list[str]:
        """Names of the nodes running a pod of the service, in ExternalDNS's order of preference."""
        selector = str_map(self.spec.get("selector"))
        ready_live: set[str] = set()
        ready: set[str] = set()
        running: set[str] = set()
        for pod in self.index.pods_selected(self.namespace, selector):
            if as_map(pod.get("status")).get("phase") != "Running":
                continue
            node_name = str(as_map(pod.get("spec")).get("nodeName") or "")
            if node_name not in self.index.nodes:
                continue
            running.add(node_name)
            if _pod_ready(pod):
                ready.add(node_name)
                if not meta(pod).get("deletionTimestamp"):
                    ready_live.add(node_name)
        return sorted(ready_live or ready or running)

    def _add_srv(self, hostname: str) -> None:
        for port in as_list(self.spec.get("ports")):
            port = as_map(port)
            node_port = port.get("nodePort")
            if not isinstance(node_port, int) or isinstance(node_port, bool) or node_port <= 0:
                continue
            protocol = str(port.get("protocol") or "TCP").lower()
            raw = f"_{self.name}._{protocol}.{hostname}"
            name = self.records.name(raw)
            if name is not None:
                self.records.add_srv(name, 0, 50, node_port, hostname)

    # ---- headless ------------------------------------------------------------------------------------------
    def _add_headless(self, hostname: str) -> None:
        per_pod = self._headless_pod_targets()
        if not per_pod:
            self.records.skip(hostname, "no targets: no ready pod address in the service's EndpointSlices")
            return
        for (_pod, pod_hostname), targets in per_pod.items():
            self.records.add(hostname, targets)
            if pod_hostname:
                name = self.records.name(f"{pod_hostname}.{hostname}")
                if name is not None:
                    self.records.add(name, targets)

    def _headless_pod_targets(self) -> dict[tuple[str, str], list[str]]:
        """``{(pod name, pod spec.hostname or ""): targets}`` (sorted by pod), computed once per service."""
        if self._headless is not None:
            return self._headless
        out: dict[tuple[str, str], list[str]] = {}
        selector = str_map(self.spec.get("selector"))
        endpoints_type, warning = self.ann.endpoints_type()
        if warning:
            self.warn_once(str(self.ann.get("endpoints-type")), warning)
        publish_pod_ips = endpoints_type is None
        publish_not_ready = self.spec.get("publishNotReadyAddresses") is True
        for eps in self.index.slices_of(self.namespace, self.name):
            address_type = eps.get("addressType")
            for ep in as_list(eps.get("endpoints")):
                ep = as_map(ep)
                ready = as_map(ep.get("conditions")).get("ready")
                if ready is False and not publish_not_ready:
                    continue
                if publish_pod_ips and address_type not in ("IPv4", "IPv6"):
                    continue
                ref = as_map(ep.get("targetRef"))
                if ref.get("kind") != "Pod" or ref.get("apiVersion") not in (None, "", "v1"):
                    continue
                pod = self.index.pods.get((self.namespace, str(ref.get("name"))))
                if pod is None or not selector_matches(selector, self.index.labels_of(pod)):
                    continue
                targets = self._pod_targets(pod, ep, endpoints_type)
                if not targets:
                    continue
                pod_hostname = str(as_map(pod.get("spec")).get("hostname") or "")
                out.setdefault((str(meta(pod).get("name")), pod_hostname), []).extend(targets)
        self._headless = dict(sorted(out.items()))
        return self._headless

    def _pod_targets(self, pod: Mapping[str, Any], ep: Mapping[str, Any], endpoints_type: str | None) -> list[str]:
        own = Annotations.read(str_map(meta(pod).get("annotations")), self.prefixes).targets()
        if own:
            return own
        if endpoints_type == ENDPOINTS_TYPE_NODE_EXTERNAL_IP:
            node_name = str(as_map(pod.get("spec")).get("nodeName") or "")
            node = self.index.nodes.get(node_name)
            if node is None:
                self.warn_once(
                    str(meta(pod).get("name")),
                    f"pod {meta(pod).get('name')}: its node {node_name!r} is unknown; no NodeExternalIP for it",
                )
                return []
            return [
                str(a.get("address"))
                for a in map(as_map, as_list(as_map(node.get("status")).get("addresses")))
                if a.get("type") == "ExternalIP" and a.get("address")
            ]
        if endpoints_type == ENDPOINTS_TYPE_HOST_IP:
            host_ip = as_map(pod.get("status")).get("hostIP")
            return [str(host_ip)] if host_ip else []
        addresses = as_list(ep.get("addresses"))
        return [str(addresses[0])] if addresses else []


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    for condition in as_list(as_map(pod.get("status")).get("conditions")):
        condition = as_map(condition)
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def service_records(
    svc: Mapping[str, Any],
    ann: Annotations,
    hostnames: list[tuple[str, bool]],
    index: ClusterIndex,
    prefixes: tuple[str, ...],
    publish_internal: bool,
    records: ObjectRecords,
) -> None:
    """Add the records of ``svc`` for each ``(normalised host name, use cluster IP)`` to ``records``."""
    ctx = ServiceContext(svc, ann, index, prefixes, publish_internal, records)
    for hostname, use_cluster_ip in hostnames:
        ctx.add_hostname(hostname, use_cluster_ip)


def service_hostnames(svc: Mapping[str, Any], ann: Annotations) -> tuple[HostNames, Warnings]:
    """The ``hostname`` annotation's names, then the ``internal-hostname`` ones (published with the cluster IP)."""
    return [(h, False) for h in ann.hostnames()] + [(h, True) for h in ann.internal_hostnames()], []


def _records(svc: Mapping[str, Any], ann: Annotations, hostnames: HostNames, index: ClusterIndex, f: Filters,
             records: ObjectRecords) -> None:
    service_records(svc, ann, hostnames, index, f.prefixes, f.publish_internal, records)


def service_needs(svc: Mapping[str, Any]) -> Needs:
    """NodePort: the Nodes (and with ``externalTrafficPolicy: Local`` the selected Pods, which say where it runs);
    headless: its EndpointSlices, the selected Pods and the Nodes (``endpoints-type: NodeExternalIP``)."""
    spec = as_map(svc.get("spec"))
    selector = str_map(spec.get("selector"))
    if spec.get("type") == "NodePort":
        return Needs(nodes=True, pods=selector if spec.get("externalTrafficPolicy") == "Local" else None)
    if (spec.get("type") or "ClusterIP") == "ClusterIP" and spec.get("clusterIP") == "None":
        return Needs(nodes=True, pods=selector, slices=True)
    return NOTHING


def _view_records(svc: Mapping[str, Any], ann: Annotations, hostnames: HostNames, index: ClusterIndex, f: Filters,
                  records: ObjectRecords) -> None:
    ctx = ServiceContext(svc, ann, index, f.prefixes, f.publish_internal, records)
    for hostname, _ in hostnames:
        ctx.add_view_hostname(hostname)


SOURCE = Source(name="service", kind="Service", reads=("Service", "Node", "Pod", "EndpointSlice"),
                hostnames=service_hostnames, records=_records, needs=service_needs, view_records=_view_records)
