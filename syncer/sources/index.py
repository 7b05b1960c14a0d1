"""Look-ups over one :class:`ClusterSnapshot`, built once per ``collect`` call (never per Service).

Nodes by name, pods by namespace and name, pods by namespace, EndpointSlices by (namespace, service name from the
``kubernetes.io/service-name`` label). Malformed entries (not a mapping, no name) are ignored here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncer.model import ClusterSnapshot, Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, Mapping) else {}


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def str_map(value: Any) -> dict[str, str]:
    """Labels or annotations as ``str -> str`` (non-string values are turned into strings, ``None`` dropped)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items() if v is not None}


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service's ``spec.selector`` (equality on every key); an empty selector matches every pod, as ExternalDNS."""
    return all(labels.get(k) == v for k, v in selector.items())


class ClusterIndex:
    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.nodes: dict[str, Obj] = {}
        for node in snapshot.nodes:
            if isinstance(node, dict) and meta(node).get("name"):
                self.nodes[str(meta(node)["name"])] = node
        self.pods: dict[tuple[str, str], Obj] = {}
        self.pods_by_namespace: dict[str, list[Obj]] = {}
        for pod in snapshot.pods:
            if not isinstance(pod, dict) or not meta(pod).get("name"):
                continue
            ns = str(meta(pod).get("namespace") or "default")
            self.pods[(ns, str(meta(pod)["name"]))] = pod
            self.pods_by_namespace.setdefault(ns, []).append(pod)
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
