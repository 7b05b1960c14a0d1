"""Look-ups over one :class:`ClusterSnapshot`, built once per ``collect`` call (never per Service).

Nodes by name, pods by namespace and name, pods by namespace, EndpointSlices by (namespace, service name from the
``kubernetes.io/service-name`` label). Malformed entries (not a mapping, no name) are ignored here.
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
    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.memo: dict[Any, Any] = {}  # results shared by many objects of one collect call
        self.nodes: dict[str, Obj] = {}
        # node name -> (ExternalIPs, InternalIPs); unschedulable nodes are absent (--exclude-unschedulable).
        self.node_addresses: dict[str, tuple[list[str], list[str]]] = {}
        for node in snapshot.nodes:
            if isinstance(node, dict) and meta(node).get("name"):
                name = str(meta(node)["name"])
                self.nodes[name] = node
                if as_map(node.get("spec")).get("unschedulable") is True:
                    continue
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
        self.pods: dict[tuple[str, str], Obj] = {}
        self.pods_by_namespace: dict[str, list[Obj]] = {}
        self.pod_labels: dict[tuple[str, str], dict[str, str]] = {}
        self._pods_by_label: dict[tuple[str, str, str], list[Obj]] = {}
        for pod in snapshot.pods:
            if not isinstance(pod, dict) or not meta(pod).get("name"):
                continue
            ns = str(meta(pod).get("namespace") or "default")
            key = (ns, str(meta(pod)["name"]))
            self.pods[key] = pod
            self.pods_by_namespace.setdefault(ns, []).append(pod)
            labels = str_map(meta(pod).get("labels"))
            self.pod_labels[key] = labels
            for label, value in labels.items():
                self._pods_by_label.setdefault((ns, label, value), []).append(pod)
        self.slices: dict[tuple[str, str], list[Obj]] = {}
        for eps in snapshot.endpointslices:
            if not isinstance(eps, dict):
                continue
            svc = str_map(meta(eps).get("labels")).get(SERVICE_NAME_LABEL)
            if svc:
                ns = str(meta(eps).get("namespace") or "default")
                self.slices.setdefault((ns, svc), []).append(eps)
        for slices in self.slices.values():
            slices.sort(key=lambda s: str(meta(s).get("name") or ""))

    def labels_of(self, pod: Obj) -> dict[str, str]:
        ns = str(meta(pod).get("namespace") or "default")
        return self.pod_labels.get((ns, str(meta(pod).get("name"))), {})

    def pods_selected(self, namespace: str, selector: Mapping[str, str]) -> list[Obj]:
        """Pods of ``namespace`` whose labels match every ``key: value`` of ``selector`` (all pods if it is empty,
        as ExternalDNS lists them), found through a label index rather than by scanning the namespace."""
        if not selector:
            return self.pods_by_namespace.get(namespace, [])
        candidates: list[Obj] | None = None
        for label, value in selector.items():
            pods = self._pods_by_label.get((namespace, label, value), [])
            if candidates is None or len(pods) < len(candidates):
                candidates = pods
        return [p for p in candidates or [] if selector_matches(selector, self.labels_of(p))]
