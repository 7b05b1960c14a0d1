"""What the syncer keeps of a Kubernetes object: the fields the sources read, nothing else. Pure, no I/O.

A projection is a plain dict in the API's JSON shape (so the sources read it exactly as they read a whole
object) holding only:

* every kind: ``kind``, ``apiVersion`` (the kind's own when the object leaves it out, as list items do, so a
  listed object and the same object from a watch event project alike),
  ``metadata.name``/``namespace``/``labels``/``annotations`` (without
  ``kubectl.kubernetes.io/last-applied-configuration``, which alone is often larger than the rest), and
  ``metadata.resourceVersion`` (kept for logs; never compared);
* Service: ``spec.type``, ``clusterIP``, ``externalIPs``, ``externalName``, ``selector``,
  ``externalTrafficPolicy``, ``publishNotReadyAddresses``, ``ports[].nodePort``/``protocol``;
  ``status.loadBalancer.ingress[].ip``/``hostname``;
* Ingress: ``spec.ingressClassName``, ``rules[].host``, ``tls[].hosts``; the same load-balancer status;
* Node: ``spec.unschedulable``, ``status.addresses[].type``/``address``;
* Pod: annotations only under the annotation prefixes (``target`` is the one a pod may carry),
  ``metadata.deletionTimestamp``, ``spec.nodeName``/``hostname``,
  ``status.phase``/``hostIP`` and the ``Ready`` condition;
* EndpointSlice: ``addressType``, ``endpoints[].addresses``/``conditions.ready``/``targetRef``
  (``kind``/``apiVersion``/``name``);
* Gateway: ``spec.listeners[].name``/``hostname``/``port``/``protocol``/``allowedRoutes``,
  ``status.addresses[].type``/``value`` (not its conditions, which change on every reconcile of its controller);
* HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute: ``spec.hostnames``, ``spec.parentRefs[]``
  (``group``/``kind``/``namespace``/``name``/``sectionName``/``port``), ``status.parents[].parentRef`` (the same
  fields) and the parent's ``Accepted`` condition (``type``/``status``);
* Namespace: its metadata (the labels a listener's ``allowedRoutes`` selector reads);
* DNSEndpoint: ``metadata.generation``, ``spec.endpoints[]`` (``dnsName``/``recordType``/``targets``/``recordTTL``/
  ``providerSpecific``) and ``status.observedGeneration`` (the status the syncer writes).

:func:`same` compares two projections ignoring ``resourceVersion``: an update that touched only fields we do
not keep (a Pod's other conditions, ``managedFields``, a status heartbeat) is no change at all. Strings that
recur across many objects (namespaces, label keys and values, annotation keys) are interned.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from syncer.config import ANNOTATION_PREFIXES
from syncer.model import KINDS

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_intern = sys.intern


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: Any, keep: Callable[[str], bool] = lambda _k: True) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    out = {_intern(k) if isinstance(k, str) else k: (_intern(v) if isinstance(v, str) and len(v) < 64 else v)
           for k, v in value.items() if keep(k)}
    return out or None


def _pick(source: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: source[f] for f in fields if source.get(f) is not None}


def _metadata(obj: Mapping[str, Any], pod: bool, prefixes: tuple[str, ...]) -> dict[str, Any]:
    meta = _map(obj.get("metadata"))
    out: dict[str, Any] = {}
    for field in ("name", "namespace"):
        if isinstance(meta.get(field), str):
            out[field] = _intern(meta[field])
    if meta.get("resourceVersion") is not None:
        out["resourceVersion"] = meta["resourceVersion"]
    if pod:
        if meta.get("deletionTimestamp"):
            out["deletionTimestamp"] = meta["deletionTimestamp"]
        keep: Callable[[str], bool] = lambda k: isinstance(k, str) and k.startswith(prefixes)  # noqa: E731
    else:
        keep = lambda k: k != LAST_APPLIED  # noqa: E731
    labels = _strings(meta.get("labels"))
    annotations = _strings(meta.get("annotations"), keep)
    if labels:
        out["labels"] = labels
    if annotations:
        out["annotations"] = annotations
    return out


def _lb_status(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    ingress = [_pick(_map(i), ("ip", "hostname")) for i in _list(_map(_map(obj.get("status")).get("loadBalancer"))
                                                                 .get("ingress"))]
    return {"loadBalancer": {"ingress": ingress}} if ingress else None


def _spec_and_lb_status(obj: Mapping[str, Any], out: Obj, spec: dict[str, Any]) -> None:
    """Services and Ingresses: the kept spec, and the load balancer's addresses when there are any."""
    out["spec"] = spec
    status = _lb_status(obj)
    if status:
        out["status"] = status


def _service(obj: Mapping[str, Any], out: Obj) -> None:
    spec = _map(obj.get("spec"))
    kept = _pick(spec, ("type", "clusterIP", "externalIPs", "externalName", "externalTrafficPolicy",
                        "publishNotReadyAddresses"))
    if "selector" in spec:
        kept["selector"] = _strings(spec["selector"]) or {}
    ports = [_pick(_map(p), ("nodePort", "protocol")) for p in _list(spec.get("ports"))]
    if ports:
        kept["ports"] = ports
    _spec_and_lb_status(obj, out, kept)


def _ingress(obj: Mapping[str, Any], out: Obj) -> None:
    spec = _map(obj.get("spec"))
    kept = _pick(spec, ("ingressClassName",))
    rules = [_pick(_map(r), ("host",)) for r in _list(spec.get("rules"))]
    tls = [_pick(_map(t), ("hosts",)) for t in _list(spec.get("tls"))]
    if rules:
        kept["rules"] = rules
    if tls:
        kept["tls"] = tls
    _spec_and_lb_status(obj, out, kept)


def _node(obj: Mapping[str, Any], out: Obj) -> None:
    spec = _map(obj.get("spec"))
    if spec.get("unschedulable") is not None:
        out["spec"] = {"unschedulable": spec["unschedulable"]}
    addresses = [_pick(_map(a), ("type", "address")) for a in _list(_map(obj.get("status")).get("addresses"))]
    if addresses:
        out["status"] = {"addresses": addresses}


def _pod(obj: Mapping[str, Any], out: Obj) -> None:
    spec = _map(obj.get("spec"))
    kept = _pick(spec, ("nodeName", "hostname"))
    if kept:
        out["spec"] = kept
    status = _map(obj.get("status"))
    kept_status = _pick(status, ("phase", "hostIP"))
    ready = [_pick(_map(c), ("type", "status")) for c in _list(status.get("conditions"))
             if _map(c).get("type") == "Ready"]
    if ready:
        kept_status["conditions"] = ready
    if kept_status:
        out["status"] = kept_status


def _endpointslice(obj: Mapping[str, Any], out: Obj) -> None:
    if obj.get("addressType") is not None:
        out["addressType"] = obj["addressType"]
    endpoints = []
    for ep in _list(obj.get("endpoints")):
        ep = _map(ep)
        kept: dict[str, Any] = {}
        if ep.get("addresses") is not None:
            kept["addresses"] = ep["addresses"]
        ready = _map(ep.get("conditions")).get("ready")
        if ready is not None:
            kept["conditions"] = {"ready": ready}
        ref = _pick(_map(ep.get("targetRef")), ("kind", "apiVersion", "name"))
        if ref:
            kept["targetRef"] = ref
        endpoints.append(kept)
    if endpoints:
        out["endpoints"] = endpoints


_PARENT_REF = ("group", "kind", "namespace", "name", "sectionName", "port")


def _gateway(obj: Mapping[str, Any], out: Obj) -> None:
    listeners = [_pick(_map(lis), ("name", "hostname", "port", "protocol", "allowedRoutes"))
                 for lis in _list(_map(obj.get("spec")).get("listeners"))]
    out["spec"] = {"listeners": listeners} if listeners else {}
    addresses = [_pick(_map(a), ("type", "value")) for a in _list(_map(obj.get("status")).get("addresses"))]
    if addresses:
        out["status"] = {"addresses": addresses}


def _route(obj: Mapping[str, Any], out: Obj) -> None:
    spec = _map(obj.get("spec"))
    kept = _pick(spec, ("hostnames",))
    refs = [_pick(_map(r), _PARENT_REF) for r in _list(spec.get("parentRefs"))]
    if refs:
        kept["parentRefs"] = refs
    out["spec"] = kept
    parents = []
    for parent in _list(_map(obj.get("status")).get("parents")):
        parent = _map(parent)
        accepted = [_pick(_map(c), ("type", "status")) for c in _list(parent.get("conditions"))
                    if _map(c).get("type") == "Accepted"]
        parents.append({"parentRef": _pick(_map(parent.get("parentRef")), _PARENT_REF), "conditions": accepted})
    if parents:
        out["status"] = {"parents": parents}


_ENDPOINT_FIELDS = ("dnsName", "recordType", "targets", "recordTTL", "providerSpecific")


def _dnsendpoint(obj: Mapping[str, Any], out: Obj) -> None:
    generation = _map(obj.get("metadata")).get("generation")
    if generation is not None:
        out["metadata"]["generation"] = generation
    endpoints = _list(_map(obj.get("spec")).get("endpoints"))
    out["spec"] = {"endpoints": [_pick(e, _ENDPOINT_FIELDS) if isinstance(e, dict) else e for e in endpoints]}
    observed = _map(obj.get("status")).get("observedGeneration")
    if observed is not None:
        out["status"] = {"observedGeneration": observed}


_BY_KIND: dict[str, Callable[[Mapping[str, Any], Obj], None]] = {
    "Service": _service, "Ingress": _ingress, "Node": _node, "Pod": _pod, "EndpointSlice": _endpointslice,
    "Gateway": _gateway, "HTTPRoute": _route, "GRPCRoute": _route, "TLSRoute": _route, "TCPRoute": _route,
    "UDPRoute": _route, "DNSEndpoint": _dnsendpoint,
}


def project(obj: Mapping[str, Any], kind: str | None = None,
            annotation_prefixes: tuple[str, ...] = ANNOTATION_PREFIXES) -> Obj:
    """The projection of ``obj`` (its ``kind``, or ``kind`` when the list left it out); unknown kinds keep only
    their metadata. A Pod keeps only the annotations under ``annotation_prefixes`` (``--annotation-prefix``).
    Never raises on malformed input: a field of the wrong shape is simply left out."""
    kind = kind or str(obj.get("kind") or "")
    out: Obj = {"kind": kind}
    api_version = obj.get("apiVersion") or (KINDS[kind].api_version if kind in KINDS else None)
    if api_version:
        out["apiVersion"] = api_version
    out["metadata"] = _metadata(obj, kind == "Pod", annotation_prefixes)
    fill = _BY_KIND.get(kind)
    if fill is not None:
        fill(obj, out)
    return out


def object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """``(namespace or "", name)`` of an object (a projection or a whole object)."""
    meta = _map(obj.get("metadata"))
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def same(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal projections, ``metadata.resourceVersion`` aside."""
    if a is None or b is None:
        return a is b
    if a.keys() != b.keys():
        return False
    for field in a:
        if field == "metadata":
            ma, mb = a[field], b[field]
            if {k: v for k, v in ma.items() if k != "resourceVersion"} != \
                    {k: v for k, v in mb.items() if k != "resourceVersion"}:
                return False
        elif a[field] != b[field]:
            return False
    return True
