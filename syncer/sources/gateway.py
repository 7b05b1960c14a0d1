"""Gateway API routes -> records, as ExternalDNS's ``gateway-httproute``, ``gateway-grpcroute``,
``gateway-tlsroute``, ``gateway-tcproute`` and ``gateway-udproute`` sources do (ListenerSets, ExternalDNS's
``--gateway-listener-sets``, are not read).

API versions, as ExternalDNS v0.22 reads them: Gateway, HTTPRoute, GRPCRoute and TLSRoute
``gateway.networking.k8s.io/v1``; TCPRoute and UDPRoute ``gateway.networking.k8s.io/v1alpha2``.

Host names of a route (``--label-filter``, ``--annotation-filter``, ``--namespace`` and the ``controller``
annotation apply to the route, as for every source):

* its ``spec.hostnames`` (HTTPRoute, GRPCRoute, TLSRoute; TCPRoute and UDPRoute have none) and the ``hostname``
  annotation; with a route that has no ``spec.hostnames``, also the host names of the listeners it attaches to;
* the ``gateway-hostname-source`` annotation narrows that: ``annotation-only`` (case-insensitive): the annotation
  alone; ``defined-hosts-only``: ``spec.hostnames`` alone (and no listener host names); another value is a warning
  and both are used;
* ``--fqdn-template`` when the annotations and the spec give no name (the common rule of every source).

Each host name is narrowed by the listeners of the parent Gateways:

1. every ``status.parents[]`` entry whose ``parentRef`` is also in ``spec.parentRefs`` (``group`` defaults to
   ``gateway.networking.k8s.io``, ``kind`` to ``Gateway``, ``namespace`` to the route's) and names a Gateway;
2. the Gateway must be known and pass ``--gateway-namespace``, ``--gateway-label-filter``, ``--gateway-name`` and
   the ``controller`` annotation (``--namespace`` does not apply to Gateways);
3. the entry's ``Accepted`` condition must be ``True``;
4. its listeners: the one named ``sectionName``, else all; a listener must match the route's protocol (HTTPRoute
   HTTP or HTTPS, GRPCRoute HTTP or HTTPS, TLSRoute TLS, TCPRoute TCP or TLS, UDPRoute UDP), the entry's ``port``
   if set, and admit the route: ``allowedRoutes.namespaces.from`` ``Same`` (the default: the Gateway's
   namespace), ``All``, or ``Selector`` (the route's Namespace labels; a missing Namespace or a bad selector admits
   nothing), and ``allowedRoutes.kinds`` when given;
5. host matching: a listener without ``hostname`` takes the route's name as it is; else the names must be equal,
   or one is a wildcard (``*.example.org``: any name below ``example.org``, not ``example.org`` itself) and the
   more specific name is used. IP addresses and invalid names never match.

Targets of a host name: for every Gateway whose listener matched, its ``target`` annotation if set, else every
``status.addresses[].value``; the TTL comes from the route's ``ttl`` annotation. A route that names a host but gets
no record is reported as skipped with the reason (not accepted, Gateway unknown or filtered out, no listener
matching, no addresses yet). A route with neither host names of its own nor listener host names gets nothing,
silently (as a Service without a hostname annotation).

Continuous mode: a route's records depend on the Gateways its ``spec.parentRefs`` name and on its Namespace
(:class:`~syncer.sources.base.Needs`), so a change of either recomputes exactly those routes.

Differences from ExternalDNS: ``--combine-fqdn-annotation`` and ``--ignore-hostname-annotation`` do not exist
here; with the ``hostname`` annotation set and no ``spec.hostnames``, ``--fqdn-template`` names are not added
(ExternalDNS adds them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from skydns.names import InvalidNameError
from syncer.annotations import HOSTNAME_SOURCE_ANNOTATION_ONLY, HOSTNAME_SOURCE_DEFINED_HOSTS_ONLY, Annotations
from syncer.model import GATEWAY_API, KINDS
from syncer.selector import Requirement, Selector
from syncer.sources.base import Filters, HostNames, Needs, Obj, Source, Warnings
from syncer.sources.index import ClusterIndex, as_list, as_map, meta, str_map
from syncer.sources.records import ObjectRecords, normalize_hostname

log = structlog.get_logger()

GATEWAY_KIND = "Gateway"
HOSTNAME_SOURCE = "gateway-hostname-source"


@dataclass(frozen=True)
class RouteKind:
    kind: str
    source: str  # the --source value
    protocol: str  # ExternalDNS's route protocol, matched against the listeners' (protocol_matches)
    has_hostnames: bool  # spec.hostnames exists


ROUTE_KINDS = (
    RouteKind("HTTPRoute", "gateway-httproute", "HTTP", True),
    RouteKind("GRPCRoute", "gateway-grpcroute", "HTTPS", True),
    RouteKind("TLSRoute", "gateway-tlsroute", "TLS", True),
    RouteKind("TCPRoute", "gateway-tcproute", "TCP", False),
    RouteKind("UDPRoute", "gateway-udproute", "UDP", False),
)


# ---- host names ----------------------------------------------------------------------------------------------

def gateway_host(raw: str) -> str | None:
    """The canonical form of a route or listener host name (``""`` stays ``""``: no name); ``None`` for an IP
    address or an invalid name, which match nothing."""
    if raw == "":
        return ""
    try:
        ipaddress.ip_address(raw)
        return None
    except ValueError:
        pass
    try:
        host = normalize_hostname(raw)
    except InvalidNameError:
        return None
    return host if host != "*" else None


def matching_host(a: str, b: str) -> str | None:
    """The more specific of two canonical host names that overlap (``""`` overlaps everything; ``*.x`` covers any
    name below ``x``), else ``None``."""
    if a == "":
        return b
    if b == "" or a == b:
        return a
    if len(b) < len(a) or (len(a) == len(b) and b.startswith("*.")):
        a, b = b, a
    if a.startswith("*.") and b.endswith(a[1:]):
        return b
    return None


def protocol_matches(route: str, listener: str) -> bool:
    """HTTP and HTTPS are the same; a TCP route also attaches to a TLS listener."""
    route = "HTTP" if route == "HTTPS" else route
    listener = "HTTP" if listener == "HTTPS" else listener
    if route == "TCP" and listener == "TLS":
        listener = "TCP"
    return route == listener


def hostname_source(ann: Annotations) -> tuple[str | None, str | None]:
    """``gateway-hostname-source``: the mode (``None``: both kinds of names), and a warning for an unknown value."""
    raw = ann.get(HOSTNAME_SOURCE)
    if raw is None:
        return None, None
    value = raw.lower()
    if value in (HOSTNAME_SOURCE_ANNOTATION_ONLY, HOSTNAME_SOURCE_DEFINED_HOSTS_ONLY):
        return value, None
    return None, (f"unknown gateway-hostname-source {raw!r} (expected annotation-only or defined-hosts-only); "
                  "using both the annotation and the route's hostnames")


def spec_hostnames(rk: RouteKind, route: Mapping[str, Any]) -> list[str]:
    if not rk.has_hostnames:
        return []
    return [str(h) for h in as_list(as_map(route.get("spec")).get("hostnames")) if h]


def route_hostnames(rk: RouteKind, route: Mapping[str, Any], ann: Annotations) -> tuple[HostNames, Warnings]:
    """The route's own host names (spec and annotation, narrowed by ``gateway-hostname-source``)."""
    mode, warning = hostname_source(ann)
    if mode == HOSTNAME_SOURCE_ANNOTATION_ONLY:
        names = ann.hostnames()
    elif mode == HOSTNAME_SOURCE_DEFINED_HOSTS_ONLY:
        names = spec_hostnames(rk, route)
    else:
        names = spec_hostnames(rk, route) + ann.hostnames()
    return [(n, False) for n in names], [(ann.get(HOSTNAME_SOURCE) or "", warning)] if warning else []


def takes_listener_hosts(rk: RouteKind, route: Mapping[str, Any], ann: Annotations) -> bool:
    """A route without ``spec.hostnames`` also gets its listeners' host names (unless the annotation says which
    names to use)."""
    return hostname_source(ann)[0] is None and not spec_hostnames(rk, route)


# ---- parents -------------------------------------------------------------------------------------------------

ParentKey = tuple[str, str, str, str]  # (group, kind, namespace, name)


def parent_key(ref: Mapping[str, Any], route_namespace: str) -> ParentKey:
    return (str(ref.get("group") or GATEWAY_API), str(ref.get("kind") or GATEWAY_KIND),
            str(ref.get("namespace") or route_namespace), str(ref.get("name") or ""))


def route_needs(route: Mapping[str, Any]) -> Needs:
    """The Gateways named in ``spec.parentRefs``, and the route's Namespace (for ``allowedRoutes`` selectors)."""
    namespace = str(meta(route).get("namespace") or "default")
    keys = (parent_key(as_map(r), namespace) for r in as_list(as_map(route.get("spec")).get("parentRefs")))
    gateways = frozenset((ns, name) for group, kind, ns, name in keys
                         if group == GATEWAY_API and kind == GATEWAY_KIND and name)
    return Needs(gateways=gateways, namespace=True)


def condition_true(conditions: Any, kind: str) -> bool:
    for condition in as_list(conditions):
        condition = as_map(condition)
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def label_selector(raw: Any) -> Selector | None:
    """A ``metav1.LabelSelector`` (``matchLabels``, ``matchExpressions``); ``None`` when absent or invalid
    (it then matches nothing, as in ExternalDNS); ``{}`` matches everything."""
    if not isinstance(raw, dict):
        return None
    requirements = [Requirement(str(k), "=", frozenset([str(v)])) for k, v in as_map(raw.get("matchLabels")).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in as_list(raw.get("matchExpressions")):
        expression = as_map(expression)
        op = ops.get(str(expression.get("operator")))
        key = expression.get("key")
        values = frozenset(str(v) for v in as_list(expression.get("values")))
        if op is None or not key or (op in ("in", "notin")) != bool(values):
            return None
        requirements.append(Requirement(str(key), op, values))
    return Selector(tuple(requirements))


@dataclass
class Parent:
    """A Gateway that accepted the route, the listeners the route attaches to, and its targets."""

    namespace: str
    name: str
    listeners: list[Mapping[str, Any]]
    port: Any  # the status entry's parentRef.port, None when unset
    targets: list[str]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def gateway_targets(gateway: Mapping[str, Any], prefixes: tuple[str, ...]) -> list[str]:
    """The Gateway's ``target`` annotation, else every ``status.addresses[].value``."""
    override = Annotations.read(str_map(meta(gateway).get("annotations")), prefixes).targets()
    if override:
        return override
    return [str(a["value"]) for a in map(as_map, as_list(as_map(gateway.get("status")).get("addresses")))
            if a.get("value")]


def gateway_excluded(namespace: str, name: str, gateway: Mapping[str, Any], f: Filters) -> str | None:
    """Why the Gateway is left out by the Gateway filters, or ``None``."""
    if f.gateway_namespace is not None and namespace != f.gateway_namespace:
        return f"Gateway {namespace}/{name} is outside --gateway-namespace {f.gateway_namespace}"
    if not f.gateway_labels.empty and not f.gateway_labels.matches(str_map(meta(gateway).get("labels"))):
        return f"Gateway {namespace}/{name} does not match --gateway-label-filter {f.gateway_labels}"
    if not Annotations.read(str_map(meta(gateway).get("annotations")), f.prefixes).is_ours():
        return f"Gateway {namespace}/{name} has the controller annotation of another controller"
    if f.gateway_name is not None and name != f.gateway_name:
        return f"Gateway {namespace}/{name} is not --gateway-name {f.gateway_name}"
    return None


def accepted_parents(route: Mapping[str, Any], index: ClusterIndex, f: Filters) -> tuple[list[Parent], list[str]]:
    """The parent Gateways that accepted the route (in ``status.parents`` order), and why the other entries
    don't count."""
    namespace = str(meta(route).get("namespace") or "default")
    refs = {parent_key(as_map(r), namespace) for r in as_list(as_map(route.get("spec")).get("parentRefs"))}
    if not refs:
        return [], ["the route has no spec.parentRefs"]
    statuses = as_list(as_map(route.get("status")).get("parents"))
    if not statuses:
        return [], ["no Gateway has accepted the route yet (status.parents is empty)"]
    parents: list[Parent] = []
    reasons: list[str] = []
    for status in map(as_map, statuses):
        ref = as_map(status.get("parentRef"))
        group, kind, gw_namespace, gw_name = key = parent_key(ref, namespace)
        where = f"{kind} {gw_namespace}/{gw_name}"
        if key not in refs:
            reasons.append(f"status.parents names {where}, which is not in spec.parentRefs")
            continue
        if group != GATEWAY_API or kind != GATEWAY_KIND:
            reasons.append(f"parent {group}/{where} is not a Gateway")
            continue
        gateway = index.gateways.get((gw_namespace, gw_name))
        if gateway is None:
            reasons.append(f"{where} is not known")
            continue
        excluded = gateway_excluded(gw_namespace, gw_name, gateway, f)
        if excluded is not None:
            reasons.append(excluded)
            continue
        if not condition_true(status.get("conditions"), "Accepted"):
            reasons.append(f"{where} has not accepted the route (no Accepted=True condition)")
            continue
        section = str(ref.get("sectionName") or "")
        listeners = [as_map(lis) for lis in as_list(as_map(gateway.get("spec")).get("listeners"))
                     if not section or as_map(lis).get("name") == section]
        if not listeners:
            reasons.append(f"{where} has no listener named {section!r}" if section else f"{where} has no listeners")
            continue
        parents.append(Parent(gw_namespace, gw_name, listeners, ref.get("port"), gateway_targets(gateway, f.prefixes)))
    return parents, reasons


def route_admitted(rk: RouteKind, route: Mapping[str, Any], owner_namespace: str, listener: Mapping[str, Any],
                   index: ClusterIndex) -> bool:
    """Whether the listener's ``allowedRoutes`` admits the route (its namespace, its kind)."""
    route_namespace = str(meta(route).get("namespace") or "default")
    allowed = as_map(listener.get("allowedRoutes"))
    namespaces = as_map(allowed.get("namespaces"))
    source = namespaces.get("from") or "Same"
    if source == "Same":
        if route_namespace != owner_namespace:
            return False
    elif source == "Selector":
        selector = label_selector(namespaces.get("selector"))
        namespace = index.namespaces.get(route_namespace)
        if selector is None or namespace is None:
            log.debug("listener admits no route by namespace", listener=listener.get("name"),
                      reason="invalid selector" if selector is None else f"namespace {route_namespace} not known")
            return False
        if not selector.matches(str_map(meta(namespace).get("labels"))):
            return False
    elif source != "All":
        return False
    kinds = as_list(allowed.get("kinds"))
    if not kinds:
        return True
    api_version = str(route.get("apiVersion") or KINDS[rk.kind].api_version)
    group = api_version.rpartition("/")[0]
    return any(str(as_map(k).get("group") or GATEWAY_API) == group and as_map(k).get("kind") == rk.kind
               for k in kinds)


@dataclass
class HostTargets:
    """Host name -> targets, and the Gateways that matched a host without having an address."""

    targets: dict[str, list[str]] = field(default_factory=dict)
    no_address: dict[str, list[str]] = field(default_factory=dict)

    def add(self, host: str, parent: Parent) -> None:
        self.targets.setdefault(host, []).extend(parent.targets)
        if not parent.targets:
            self.no_address.setdefault(host, []).append(parent.ref)


def host_targets(rk: RouteKind, route: Mapping[str, Any], route_hosts: list[str], parents: list[Parent],
                 index: ClusterIndex) -> HostTargets:
    """Every route host name narrowed by every matching listener of every accepted parent, with its targets."""
    out = HostTargets()
    for parent in parents:
        for listener in parent.listeners:
            if not protocol_matches(rk.protocol, str(listener.get("protocol") or "")):
                continue
            if parent.port is not None and parent.port != listener.get("port"):
                continue
            if not route_admitted(rk, route, parent.namespace, listener, index):
                continue
            listener_host = gateway_host(str(listener.get("hostname") or ""))
            if listener_host is None:
                continue
            for route_host in route_hosts:
                if listener_host == "" and route_host == "":
                    continue
                host = matching_host(listener_host, route_host)
                if host is not None:
                    out.add(host, parent)
    return out


def route_records(rk: RouteKind, route: Mapping[str, Any], ann: Annotations, hostnames: HostNames,
                  index: ClusterIndex, f: Filters, records: ObjectRecords) -> None:
    """Add the records of ``route`` for its normalised host names (and its listeners' host names) to ``records``."""
    hosts = list(dict.fromkeys(h for h in (gateway_host(name) for name, _ in hostnames) if h))
    if takes_listener_hosts(rk, route, ann):
        hosts.append("")
    if not hosts:
        return
    parents, reasons = accepted_parents(route, index, f)
    matched = host_targets(rk, route, hosts, parents, index)
    named = ",".join(h for h in hosts if h)
    if not matched.targets:
        if parents:
            gateways = ", ".join(p.ref for p in parents)
            reasons.append(f"no listener of Gateway {gateways} matches the route's host names, protocol, port "
                           "and namespace")
        if named:
            records.skip(named, "no records: " + "; ".join(reasons))
        else:
            log.debug("route without host names", resource=records.resource, reasons="; ".join(reasons))
        return
    for host, targets in sorted(matched.targets.items()):
        name = records.name(host)
        if name is None:
            continue
        if not targets:
            records.skip(name, f"no targets yet: Gateway {', '.join(matched.no_address[host])} has no "
                         "status.addresses")
        elif not records.add(name, targets):
            records.skip(name, "no valid target")


def _source(rk: RouteKind) -> Source:
    def hostnames(route: Obj, ann: Annotations) -> tuple[HostNames, Warnings]:
        return route_hostnames(rk, route, ann)

    def records(route: Obj, ann: Annotations, names: HostNames, index: ClusterIndex, f: Filters,
                out: ObjectRecords) -> None:
        route_records(rk, route, ann, names, index, f, out)

    return Source(name=rk.source, kind=rk.kind, reads=(rk.kind, GATEWAY_KIND, "Namespace"), hostnames=hostnames,
                  records=records, needs=route_needs, default=False, names_elsewhere=True)


#: one row per route kind, in ExternalDNS's order
SOURCES = tuple(_source(rk) for rk in ROUTE_KINDS)
