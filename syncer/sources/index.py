"""Look-ups over the Nodes, Pods and EndpointSlices the service source reads (never a scan per Service), and the
Gateways and Namespaces the Gateway route sources read.

Nodes by name, pods by namespace and name, pods by namespace and by label, EndpointSlices by (namespace, service
name from the ``kubernetes.io/service-name`` label), Gateways by (namespace, name), Namespaces by name. Built
once per ``collect`` call from a snapshot, or kept up to date one object at a time in continuous mode. Malformed
entries (not a mapping, no name) are ignored here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncer.model import ClusterSnapshot, Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


_EMPTY: Mapping[str, Any] = {}


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else _EMPTY


def as_map(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object (a dict), else an empty mapping."""
    return value if isinstance(value, dict) else _EMPTY


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


NO_LB_STATUS = "no targets yet (status.loadBalancer is empty)"


def load_balancer_targets(obj: Mapping[str, Any]) -> list[str]:
    """``status.loadBalancer.ingress[]``: each entry's ``ip`` and ``hostname`` (both when both are set)."""
    targets: list[str] = []
    for lb in as_list(as_map(as_map(obj.get("status")).get("loadBalancer")).get("ingress")):
        lb = as_map(lb)
        targets.extend(str(lb[k]) for k in ("ip", "hostname") if lb.get(k))
    return targets


def str_map(value: Any) -> dict[str, str]:
    """Labels or annotations as ``str -> str`` (non-string values are turned into strings, ``None`` dropped)."""
    if not isinstance(value, dict):
        return {}
    if all(type(k) is str and type(v) is str for k, v in value.items()):
        return value
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items() if v is not None}


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service's ``spec.selector`` (equality on every key); an empty selector matches every pod, as ExternalDNS."""
    return all(labels.get(k) == v for k, v in selector.items())


class ClusterIndex:
    """Nodes, Pods and EndpointSlices, indexed for the service source; kept up to date object by object
    (:meth:`put`, :meth:`remove`) in continuous mode, or built once from a snapshot."""

    def __init__(self, snapshot: ClusterSnapshot | None = None) -> None:
        self.memo: dict[Any, Any] = {}  # results shared by many Services until the next Node change
        self.nodes: dict[str, Obj] = {}
        # node name -> (ExternalIPs, InternalIPs); unschedulable nodes are absent (--exclude-unschedulable).
        self.node_addresses: dict[str, tuple[list[str], list[str]]] = {}
        self.pods: dict[tuple[str, str], Obj] = {}
        self.pod_labels: dict[tuple[str, str], dict[str, str]] = {}
        self._pods_by_namespace: dict[str, dict[str, Obj]] = {}
        self._pods_by_label: dict[tuple[str, str, str], dict[str, Obj]] = {}
        self._slices: dict[tuple[str, str], dict[str, Obj]] = {}
        self._slice_owner: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, slice name) -> (ns, service)
        self.gateways: dict[tuple[str, str], Obj] = {}  # (namespace, name) -> Gateway
        self.namespaces: dict[str, Obj] = {}  # name -> Namespace
        if snapshot is not None:
            for kind, objs in (("Node", snapshot.nodes), ("Pod", snapshot.pods),
                               ("EndpointSlice", snapshot.endpointslices), ("Gateway", snapshot.gateways),
                               ("Namespace", snapshot.namespaces)):
                for obj in objs:
                    self.put(kind, obj)

    # -- changes ---------------------------------------------------------------------------------------------

    def put(self, kind: str, obj: Any) -> None:
        """Add or replace one Node, Pod, EndpointSlice, Gateway or Namespace (other kinds and malformed entries
        are ignored)."""
        if not isinstance(obj, dict) or not meta(obj).get("name"):
            return
        self.remove(kind, obj)
        name = str(meta(obj)["name"])
        if kind == "Node":
            self._put_node(name, obj)
        elif kind == "Pod":
            self._put_pod(str(meta(obj).get("namespace") or "default"), name, obj)
        elif kind == "EndpointSlice":
            ns = str(meta(obj).get("namespace") or "default")
            svc = str_map(meta(obj).get("labels")).get(SERVICE_NAME_LABEL)
            if svc:
                self._slices.setdefault((ns, svc), {})[name] = obj
                self._slice_owner[(ns, name)] = (ns, svc)
        elif kind == "Gateway":
            self.gateways[(str(meta(obj).get("namespace") or "default"), name)] = obj
        elif kind == "Namespace":
            self.namespaces[name] = obj

    def remove(self, kind: str, obj: Any) -> None:
        """Forget the Node, Pod, EndpointSlice, Gateway or Namespace with ``obj``'s namespace and name."""
        if not isinstance(obj, dict) or not meta(obj).get("name"):
            return
        name = str(meta(obj)["name"])
        ns = str(meta(obj).get("namespace") or "default")
        if kind == "Node":
            if self.nodes.pop(name, None) is not None:
                self.node_addresses.pop(name, None)
                self.memo.clear()
        elif kind == "Pod":
            key = (ns, name)
            if self.pods.pop(key, None) is not None:
                self._pods_by_namespace.get(ns, {}).pop(name, None)
                for label, value in self.pod_labels.pop(key, {}).items():
                    self._pods_by_label.get((ns, label, value), {}).pop(name, None)
        elif kind == "EndpointSlice":
            owner = self._slice_owner.pop((ns, name), None)
            if owner is not None:
                self._slices.get(owner, {}).pop(name, None)
        elif kind == "Gateway":
            self.gateways.pop((ns, name), None)
        elif kind == "Namespace":
            self.namespaces.pop(name, None)

    def _put_node(self, name: str, node: Obj) -> None:
        self.nodes[name] = node
        self.memo.clear()
        if as_map(node.get("spec")).get("unschedulable") is True:
            return
        external: list[str] = []
        internal: list[str] = []
        for address in as_list(as_map(node.get("status")).get("addresses")):
            address = as_map(address)
            kind, value = address.get("type"), address.get("address")
            if value and kind == "ExternalIP":
                external.append(str(value))
            elif value and kind == "InternalIP":
                internal.append(str(value))
        self.node_addresses[name] = (external, internal)

    def _put_pod(self, ns: str, name: str, pod: Obj) -> None:
        key = (ns, name)
        self.pods[key] = pod
        self._pods_by_namespace.setdefault(ns, {})[name] = pod
        labels = str_map(meta(pod).get("labels"))
        self.pod_labels[key] = labels
        for label, value in labels.items():
            self._pods_by_label.setdefault((ns, label, value), {})[name] = pod

    # -- reads -----------------------------------------------------------------------------------------------

    def slices_of(self, namespace: str, service: str) -> list[Obj]:
        """The EndpointSlices labelled with the service's name, by slice name."""
        slices = self._slices.get((namespace, service))
        return [slices[n] for n in sorted(slices)] if slices else []

    def labels_of(self, pod: Obj) -> dict[str, str]:
        ns = str(meta(pod).get("namespace") or "default")
        return self.pod_labels.get((ns, str(meta(pod).get("name"))), {})

    def pods_selected(self, namespace: str, selector: Mapping[str, str]) -> list[Obj]:
        """Pods of ``namespace`` whose labels match every ``key: value`` of ``selector`` (all pods if it is empty,
        as ExternalDNS lists them), found through a label index rather than by scanning the namespace."""
        if not selector:
            return list(self._pods_by_namespace.get(namespace, {}).values())
        candidates: dict[str, Obj] | None = None
        for label, value in selector.items():
            pods = self._pods_by_label.get((namespace, label, value), {})
            if candidates is None or len(pods) < len(candidates):
                candidates = pods
        return [p for p in (candidates or {}).values() if selector_matches(selector, self.labels_of(p))]
