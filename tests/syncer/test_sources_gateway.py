"""Gateway route sources: routes + Gateways + Namespaces + config -> endpoints and skipped reasons.

The cases follow ExternalDNS's ``source/gateway_test.go``, ``gateway_httproute_test.go`` and the per-kind
``gateway_*route_test.go`` (the case titles are theirs where one exists); every case also runs on the objects as
continuous mode keeps them (their projections), which must give the same records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from syncer.config import SourceConfig
from syncer.desired import DesiredState
from syncer.kube.changes import ObjectChange
from syncer.kube.projection import object_key, project
from syncer.model import ClusterSnapshot, Endpoint
from syncer.sources import Filters, collect, enabled
from syncer.sources.gateway import gateway_host, label_selector, matching_host, protocol_matches
from tests.syncer.source_objects import A, N, ep, gateway, listener, namespace, parent_ref, route

Obj = dict[str, Any]
FIELDS = {"HTTPRoute": "httproutes", "GRPCRoute": "grpcroutes", "TLSRoute": "tlsroutes", "TCPRoute": "tcproutes",
          "UDPRoute": "udproutes"}
SOURCE_OF = {"HTTPRoute": "gateway-httproute", "GRPCRoute": "gateway-grpcroute", "TLSRoute": "gateway-tlsroute",
             "TCPRoute": "gateway-tcproute", "UDPRoute": "gateway-udproute"}


def in_ns(ns: str) -> Obj:
    """Route ``test`` of namespace ``ns`` for ``<ns>.example.internal`` on Gateway ``default/test``."""
    return route(name="test", ns=ns, hostnames=(f"{ns}.example.internal",), parents=[parent_ref("test", "default")])


def a(name: str, *targets: str, resource: str = "httproute/default/app", ttl: int | None = None,
      rtype: str = "A") -> Endpoint:
    return ep(name, rtype, *targets, ttl=ttl, resource=resource)


@dataclass(frozen=True)
class Case:
    title: str
    routes: list[Obj]
    gateways: list[Obj] = field(default_factory=list)
    namespaces: list[Obj] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    want: list[Endpoint] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (resource, value, reason substring)


def snapshot_of(case: Case, projected: bool) -> ClusterSnapshot:
    def keep(obj: Obj) -> Obj:
        return project(obj) if projected else obj

    snap = ClusterSnapshot(gateways=[keep(g) for g in case.gateways], namespaces=[keep(n) for n in case.namespaces])
    for r in case.routes:
        getattr(snap, FIELDS[r["kind"]]).append(keep(r))
    return snap


def config_of(case: Case) -> SourceConfig:
    kinds = sorted({r["kind"] for r in case.routes}) or ["HTTPRoute"]
    return SourceConfig(**{"sources": tuple(SOURCE_OF[k] for k in kinds), **case.config})


CASES = [
    # ---- ExternalDNS gateway_httproute_test.go ----
    Case("GatewayName", config={"gateway_name": "gateway-name"},
         gateways=[gateway("gateway-name", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",)),
                   gateway("not-gateway-name", "gateway-namespace", [listener(from_="All")], ("2.3.4.5",))],
         routes=[route(name="test", ns="route-namespace", hostnames=("test.example.internal",),
                       parents=[parent_ref("gateway-name", "gateway-namespace"),
                                parent_ref("not-gateway-name", "gateway-namespace")])],
         want=[a("test.example.internal", "1.2.3.4", resource="httproute/route-namespace/test")]),
    Case("GatewayNameNoneAccepted", config={"gateway_name": "gateway-name"},
         gateways=[gateway("gateway-name", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",))],
         routes=[route(name="old-test", ns="route-namespace", hostnames=("test.example.internal",),
                       parents=[parent_ref("gateway-name", "gateway-namespace")], accepted=False)],
         skipped=[("httproute/route-namespace/old-test", "test.example.internal",
                   "Gateway gateway-namespace/gateway-name has not accepted the route")]),
    Case("GatewayNamespace", config={"gateway_namespace": "gateway-namespace"},
         gateways=[gateway("test", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",)),
                   gateway("test", "not-gateway-namespace", [listener()], ("2.3.4.5",))],
         routes=[route(name="test", ns="route-namespace", hostnames=("test.example.internal",),
                       parents=[parent_ref("test", "gateway-namespace"), parent_ref("test", "not-gateway-namespace")])],
         want=[a("test.example.internal", "1.2.3.4", resource="httproute/route-namespace/test")]),
    Case("RouteNamespace: --namespace scopes the routes, not the Gateways", config={"namespace": "route-namespace"},
         gateways=[gateway("test", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",))],
         routes=[route(name="test", ns="route-namespace", hostnames=("route-namespace.example.internal",),
                       parents=[parent_ref("test", "gateway-namespace")]),
                 route(name="test", ns="not-route-namespace", hostnames=("not-route-namespace.example.internal",),
                       parents=[parent_ref("test", "gateway-namespace")])],
         want=[a("route-namespace.example.internal", "1.2.3.4", resource="httproute/route-namespace/test")]),
    Case("GatewayLabelFilter", config={"gateway_label_filter": "foo=bar"},
         gateways=[gateway("labels-match", labels={"foo": "bar"}, addresses=("1.2.3.4",)),
                   gateway("labels-dont-match", labels={"foo": "qux"}, addresses=("2.3.4.5",))],
         routes=[route(name="test", hostnames=("test.example.internal",),
                       parents=[parent_ref("labels-match", "default"), parent_ref("labels-dont-match", "default")])],
         want=[a("test.example.internal", "1.2.3.4", resource="httproute/default/test")]),
    Case("RouteLabelFilter", config={"label_filter": "foo=bar"},
         gateways=[gateway(addresses=("1.2.3.4",))],
         routes=[route(name="labels-match", labels={"foo": "bar"}, hostnames=("labels-match.example.internal",)),
                 route(name="labels-dont-match", labels={"foo": "qux"},
                       hostnames=("labels-dont-match.example.internal",))],
         want=[a("labels-match.example.internal", "1.2.3.4", resource="httproute/default/labels-match")]),
    Case("RouteAnnotationFilter", config={"annotation_filter": "foo=bar"},
         gateways=[gateway(addresses=("1.2.3.4",))],
         routes=[route(name="annotations-match", annotations={"foo": "bar"},
                       hostnames=("annotations-match.example.internal",)),
                 route(name="annotations-dont-match", annotations={"foo": "qux"},
                       hostnames=("annotations-dont-match.example.internal",))],
         want=[a("annotations-match.example.internal", "1.2.3.4", resource="httproute/default/annotations-match")]),
    Case("SkipControllerAnnotation",
         gateways=[gateway(addresses=("1.2.3.4",))],
         routes=[route(name="api", annotations={A + "controller": "something-else"},
                       hostnames=("api.example.internal",))]),
    Case("MultipleGateways",
         gateways=[gateway("one", addresses=("1.2.3.4",)), gateway("two", addresses=("2.3.4.5",))],
         routes=[route(hostnames=("test.example.internal",), parents=[parent_ref("one"), parent_ref("two")])],
         want=[a("test.example.internal", "1.2.3.4", "2.3.4.5")]),
    Case("MultipleListeners",
         gateways=[gateway("one", listeners=[listener("foo", hostname="foo.example.internal"),
                                             listener("bar", hostname="bar.example.internal")],
                           addresses=("1.2.3.4",))],
         routes=[route(hostnames=("*.example.internal",), parents=[parent_ref("one")])],
         want=[a("bar.example.internal", "1.2.3.4"), a("foo.example.internal", "1.2.3.4")]),
    Case("SectionNameMatch",
         gateways=[gateway("test", listeners=[listener("foo", hostname="foo.example.internal"),
                                              listener("bar", hostname="bar.example.internal")],
                           addresses=("1.2.3.4",))],
         routes=[route(hostnames=("*.example.internal",), parents=[parent_ref("test", section="foo")])],
         want=[a("foo.example.internal", "1.2.3.4")]),
    Case("PortNumberMatch",
         gateways=[gateway("test", listeners=[listener("foo", hostname="foo.example.internal", port=80),
                                              listener("bar", hostname="bar.example.internal", port=80),
                                              listener("qux", hostname="qux.example.internal", port=8080)],
                           addresses=("1.2.3.4",))],
         routes=[route(hostnames=("*.example.internal",), parents=[parent_ref("test", port=80)])],
         want=[a("bar.example.internal", "1.2.3.4"), a("foo.example.internal", "1.2.3.4")]),
    Case("WildcardInGateway",
         gateways=[gateway("test", listeners=[listener(hostname="*.example.internal")], addresses=("1.2.3.4",))],
         routes=[route(hostnames=("foo.example.internal",), parents=[parent_ref("test")])],
         want=[a("foo.example.internal", "1.2.3.4")]),
    Case("WildcardInRoute",
         gateways=[gateway("test", listeners=[listener(hostname="foo.example.internal")], addresses=("1.2.3.4",))],
         routes=[route(hostnames=("*.example.internal",), parents=[parent_ref("test")])],
         want=[a("foo.example.internal", "1.2.3.4")]),
    Case("WildcardInRouteAndGateway",
         gateways=[gateway("test", listeners=[listener(hostname="*.example.internal")], addresses=("1.2.3.4",))],
         routes=[route(hostnames=("*.example.internal",), parents=[parent_ref("test")])],
         want=[a("*.example.internal", "1.2.3.4")]),
    Case("NoRouteHostname: the listener's host name is used",
         gateways=[gateway("test", listeners=[listener(hostname="foo.example.internal")], addresses=("1.2.3.4",))],
         routes=[route(parents=[parent_ref("test")])],
         want=[a("foo.example.internal", "1.2.3.4")]),
    Case("NoGateways: a route without parentRefs",
         routes=[route(name="test", hostnames=("example.internal",), parents=[])],
         skipped=[("httproute/default/test", "example.internal", "no spec.parentRefs")]),
    Case("NoHostnames: neither the route nor the listener names a host -> nothing, silently",
         gateways=[gateway("test", addresses=("1.2.3.4",))],
         routes=[route(parents=[parent_ref("test")])]),
    Case("HostnameAnnotation",
         gateways=[gateway("test", addresses=("1.2.3.4",))],
         routes=[route(name="without-hostname", annotations={A + "hostname": "annotation.without-hostname.internal"},
                       parents=[parent_ref("test")]),
                 route(name="with-hostname", annotations={A + "hostname": "annotation.with-hostname.internal"},
                       hostnames=("with-hostname.internal",), parents=[parent_ref("test")])],
         want=[a("annotation.with-hostname.internal", "1.2.3.4", resource="httproute/default/with-hostname"),
               a("annotation.without-hostname.internal", "1.2.3.4", resource="httproute/default/without-hostname"),
               a("with-hostname.internal", "1.2.3.4", resource="httproute/default/with-hostname")]),
    Case("FQDNTemplate: only for routes without host names",
         config={"fqdn_templates": ("{{.Name}}.zero.internal, {{.Name}}.one.internal. ,  {{.Name}}.two.internal  ",)},
         gateways=[gateway("test", addresses=("1.2.3.4",))],
         routes=[route(name="fqdn-with-hostnames", hostnames=("fqdn-with-hostnames.internal",),
                       parents=[parent_ref("test")]),
                 route(name="fqdn-without-hostnames", parents=[parent_ref("test")])],
         want=[a("fqdn-with-hostnames.internal", "1.2.3.4", resource="httproute/default/fqdn-with-hostnames")] + [
             a(f"fqdn-without-hostnames.{n}.internal", "1.2.3.4", resource="httproute/default/fqdn-without-hostnames")
             for n in ("zero", "one", "two")]),
    Case("TTL: from the route's annotation; an invalid one is a warning",
         gateways=[gateway("test", addresses=("1.2.3.4",))],
         routes=[route(name="valid-ttl", annotations={A + "ttl": "15s"}, hostnames=("valid-ttl.internal",),
                       parents=[parent_ref("test")]),
                 route(name="invalid-ttl", annotations={A + "ttl": "abc"}, hostnames=("invalid-ttl.internal",),
                       parents=[parent_ref("test")])],
         want=[a("invalid-ttl.internal", "1.2.3.4", resource="httproute/default/invalid-ttl"),
               a("valid-ttl.internal", "1.2.3.4", resource="httproute/default/valid-ttl", ttl=15)],
         skipped=[("httproute/default/invalid-ttl", "abc", "ttl")]),
    Case("DifferentHostnameDifferentGateway",
         gateways=[gateway("one", listeners=[listener(hostname="*.one.internal")], addresses=("1.2.3.4",)),
                   gateway("two", listeners=[listener(hostname="*.two.internal")], addresses=("2.3.4.5",))],
         routes=[route(hostnames=("test.one.internal", "test.two.internal"),
                       parents=[parent_ref("one"), parent_ref("two")])],
         want=[a("test.one.internal", "1.2.3.4"), a("test.two.internal", "2.3.4.5")]),
    Case("AllowedRoutesSameNamespace",
         gateways=[gateway("test", "same-namespace", [listener(from_="Same")], ("1.2.3.4",))],
         routes=[route(name="test", ns="same-namespace", hostnames=("same-namespace.example.internal",),
                       parents=[parent_ref("test", "same-namespace")]),
                 route(name="test", ns="other-namespace", hostnames=("other-namespace.example.internal",),
                       parents=[parent_ref("test", "same-namespace")])],
         want=[a("same-namespace.example.internal", "1.2.3.4", resource="httproute/same-namespace/test")],
         skipped=[("httproute/other-namespace/test", "other-namespace.example.internal",
                   "no listener of Gateway same-namespace/test matches")]),
    Case("AllowedRoutesNamespaceSelector",
         namespaces=[namespace("default"), namespace("foo", {"team": "foo"}), namespace("bar", {"team": "bar"})],
         gateways=[gateway("test", listeners=[listener(from_="Selector", selector={"matchLabels": {"team": "foo"}})],
                           addresses=("1.2.3.4",))],
         routes=[in_ns("foo"),
                 in_ns("bar")],
         want=[a("foo.example.internal", "1.2.3.4", resource="httproute/foo/test")],
         skipped=[("httproute/bar/test", "bar.example.internal", "no listener")]),
    Case("AllowedRoutesNamespaceSelector with matchExpressions",
         namespaces=[namespace("foo", {"team": "foo"}), namespace("bar", {"team": "bar"})],
         gateways=[gateway("test", listeners=[listener(from_="Selector", selector={"matchExpressions": [
             {"key": "team", "operator": "NotIn", "values": ["foo"]}]})], addresses=("1.2.3.4",))],
         routes=[in_ns("foo"),
                 in_ns("bar")],
         want=[a("bar.example.internal", "1.2.3.4", resource="httproute/bar/test")],
         skipped=[("httproute/foo/test", "foo.example.internal", "no listener")]),
    Case("MissingNamespace: a selector listener admits nothing when the route's Namespace is unknown",
         gateways=[gateway("test", listeners=[listener(from_="Selector", selector={"matchLabels": {"foo": "bar"}})],
                           addresses=("1.2.3.4",))],
         routes=[route(name="test", hostnames=("example.internal",), parents=[parent_ref("test")])],
         skipped=[("httproute/default/test", "example.internal", "no listener")]),
    Case("AnnotationOverride: the Gateway's target annotation replaces its addresses",
         config={"gateway_namespace": "gateway-namespace"},
         gateways=[gateway("overridden-gateway", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",),
                           annotations={N + "target": "4.3.2.1"})],
         routes=[route(name="test", ns="route-namespace", hostnames=("test.example.internal",),
                       parents=[parent_ref("overridden-gateway", "gateway-namespace")])],
         want=[a("test.example.internal", "4.3.2.1", resource="httproute/route-namespace/test")]),
    Case("MutlipleGatewaysOneAnnotationOverride", config={"gateway_namespace": "gateway-namespace"},
         gateways=[gateway("overridden-gateway", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",),
                           annotations={N + "target": "4.3.2.1"}),
                   gateway("test", "gateway-namespace", [listener(from_="All")], ("2.3.4.5",))],
         routes=[route(name="test", ns="route-namespace", hostnames=("test.example.internal",),
                       parents=[parent_ref("overridden-gateway", "gateway-namespace"),
                                parent_ref("test", "gateway-namespace")])],
         want=[a("test.example.internal", "2.3.4.5", "4.3.2.1", resource="httproute/route-namespace/test")]),
    Case("MultipleGatewaysMultipleRoutes",
         gateways=[gateway("one", addresses=("1.2.3.4",)), gateway("two", addresses=("2.3.4.5",))],
         routes=[route(name="one", hostnames=("test.one.internal",), parents=[parent_ref("one")]),
                 route(name="two", hostnames=("test.two.internal",), parents=[parent_ref("two")])],
         want=[a("test.one.internal", "1.2.3.4", resource="httproute/default/one"),
               a("test.two.internal", "2.3.4.5", resource="httproute/default/two")]),
    Case("NoParentRefs: status.parents without spec.parentRefs", config={"gateway_namespace": "gateway-namespace"},
         gateways=[gateway("test", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",))],
         routes=[route(name="test", ns="route-namespace", hostnames=("test.example.internal",), parents=[],
                       status_parents=[parent_ref("test", "gateway-namespace")])],
         skipped=[("httproute/route-namespace/test", "test.example.internal", "no spec.parentRefs")]),
    Case("ParentRefsMismatch: a status entry for a Gateway the spec does not name",
         config={"gateway_namespace": "gateway-namespace"},
         gateways=[gateway("test", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",))],
         routes=[route(name="test", ns="route-namespace", hostnames=("test.example.internal",),
                       parents=[parent_ref("default-gateway", "gateway-namespace")],
                       status_parents=[parent_ref("other-gateway", "gateway-namespace")])],
         skipped=[("httproute/route-namespace/test", "test.example.internal", "not in spec.parentRefs")]),
    Case("SourceAnnotation: gateway-hostname-source=defined-hosts-only",
         gateways=[gateway("test", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",))],
         routes=[route(name="route-test", ns="test", hostnames=("test.example.internal",),
                       annotations={N + "gateway-hostname-source": "defined-hosts-only",
                                    N + "hostname": "test.org.internal"},
                       parents=[parent_ref("test", "gateway-namespace")])],
         want=[a("test.example.internal", "1.2.3.4", resource="httproute/test/route-test")]),
    Case("OnlyAnnotationHost: gateway-hostname-source=annotation-only",
         gateways=[gateway("test", "gateway-namespace", [listener(from_="All")], ("1.2.3.4",))],
         routes=[route(name="route-test", ns="test", hostnames=("test.example.internal",),
                       annotations={N + "gateway-hostname-source": "Annotation-Only",
                                    N + "hostname": "test.org.internal"},
                       parents=[parent_ref("test", "gateway-namespace")])],
         want=[a("test.org.internal", "1.2.3.4", resource="httproute/test/route-test")]),
    Case("InvalidSourceAnnotation: a warning, both kinds of names",
         gateways=[gateway("test", addresses=("1.2.3.4",))],
         routes=[route(name="invalid-annotation", hostnames=("route.invalid.internal",),
                       annotations={N + "gateway-hostname-source": "invalid-value",
                                    N + "hostname": "annotation.invalid.internal"},
                       parents=[parent_ref("test")])],
         want=[a("annotation.invalid.internal", "1.2.3.4", resource="httproute/default/invalid-annotation"),
               a("route.invalid.internal", "1.2.3.4", resource="httproute/default/invalid-annotation")],
         skipped=[("httproute/default/invalid-annotation", "invalid-value", "unknown gateway-hostname-source")]),
    # ---- the other route kinds (gateway_{grpc,tls,tcp,udp}route_test.go) ----
    Case("GRPCRoute on an HTTPS listener",
         gateways=[gateway("internal", listeners=[listener("https", "HTTPS", port=443)],
                           addresses=("10.64.0.1", "10.64.0.2"))],
         routes=[route("GRPCRoute", "api", hostnames=("api-hostnames.foobar.internal",),
                       annotations={A + "hostname": "api-annotation.foobar.internal"},
                       parents=[parent_ref("internal", "default")])],
         want=[a(n, "10.64.0.1", "10.64.0.2", resource="grpcroute/default/api")
               for n in ("api-annotation.foobar.internal", "api-hostnames.foobar.internal")]),
    Case("TLSRoute on a TLS listener",
         gateways=[gateway("internal", listeners=[listener("tls", "TLS", port=443)],
                           addresses=("10.64.0.1", "10.64.0.2"))],
         routes=[route("TLSRoute", "api", hostnames=("api-hostnames.foobar.internal",),
                       annotations={A + "hostname": "api-annotation.foobar.internal"},
                       parents=[parent_ref("internal", "default")])],
         want=[a(n, "10.64.0.1", "10.64.0.2", resource="tlsroute/default/api")
               for n in ("api-annotation.foobar.internal", "api-hostnames.foobar.internal")]),
    Case("TCPRoute: host names from the annotation only",
         gateways=[gateway("internal", listeners=[listener("tcp", "TCP", port=5432)],
                           addresses=("10.64.0.1", "10.64.0.2"))],
         routes=[route("TCPRoute", "api", annotations={A + "hostname": "api-annotation.foobar.internal"},
                       parents=[parent_ref("internal", "default")])],
         want=[a("api-annotation.foobar.internal", "10.64.0.1", "10.64.0.2", resource="tcproute/default/api")]),
    Case("TCPRoute attaches to a TLS listener, narrowed by its host name (and, having no spec.hostnames, also gets "
         "the listener's own name, as in ExternalDNS)",
         gateways=[gateway("internal", listeners=[listener("tls", "TLS", hostname="*.foobar.internal", port=443)],
                           addresses=("10.64.0.1",))],
         routes=[route("TCPRoute", "api", annotations={A + "hostname": "db.foobar.internal,db.elsewhere.internal"},
                       parents=[parent_ref("internal", "default")])],
         want=[a("*.foobar.internal", "10.64.0.1", resource="tcproute/default/api"),
               a("db.foobar.internal", "10.64.0.1", resource="tcproute/default/api")]),
    Case("UDPRoute: host names from the annotation only",
         gateways=[gateway("internal", listeners=[listener("udp", "UDP", port=53)],
                           addresses=("10.64.0.1", "10.64.0.2"))],
         routes=[route("UDPRoute", "api", annotations={A + "hostname": "api-annotation.foobar.internal"},
                       parents=[parent_ref("internal", "default")])],
         want=[a("api-annotation.foobar.internal", "10.64.0.1", "10.64.0.2", resource="udproute/default/api")]),
    # ---- more of the rules ----
    Case("protocol mismatch: an HTTPRoute never attaches to a TCP listener",
         gateways=[gateway(listeners=[listener("tcp", "TCP")])],
         routes=[route(hostnames=("app.example.org",))],
         skipped=[("httproute/default/app", "app.example.org", "no listener of Gateway default/gw matches")]),
    Case("allowedRoutes.kinds: a listener for GRPCRoutes only",
         gateways=[gateway(listeners=[listener(kinds=[{"kind": "GRPCRoute"}])])],
         routes=[route(hostnames=("app.example.org",)),
                 route("GRPCRoute", "rpc", hostnames=("rpc.example.org",))],
         want=[a("rpc.example.org", "192.0.2.10", resource="grpcroute/default/rpc")],
         skipped=[("httproute/default/app", "app.example.org", "no listener")]),
    Case("a Gateway without addresses yet",
         gateways=[gateway(addresses=())],
         routes=[route(hostnames=("app.example.org",))],
         skipped=[("httproute/default/app", "app.example.org", "no targets yet: Gateway default/gw has no "
                                                               "status.addresses")]),
    Case("a Gateway with a host name address -> CNAME; IPv6 -> AAAA",
         gateways=[gateway("lb", addresses=("lb-1.elb.example.net",)), gateway("v6", addresses=("2001:db8::10",))],
         routes=[route(hostnames=("app.example.org",), parents=[parent_ref("lb")]),
                 route(name="six", hostnames=("six.example.org",), parents=[parent_ref("v6")])],
         want=[a("app.example.org", "lb-1.elb.example.net", rtype="CNAME"),
               a("six.example.org", "2001:db8::10", rtype="AAAA", resource="httproute/default/six")]),
    Case("an unknown Gateway, and a ListenerSet parent (not read)",
         routes=[route(hostnames=("app.example.org",),
                       parents=[parent_ref("missing"), parent_ref("ls", kind="ListenerSet")])],
         skipped=[("httproute/default/app", "app.example.org", "Gateway default/missing is not known; parent "
                                                               "gateway.networking.k8s.io/ListenerSet default/ls "
                                                               "is not a Gateway")]),
    Case("a Gateway with another controller's annotation is left out",
         gateways=[gateway(annotations={A + "controller": "other"})],
         routes=[route(hostnames=("app.example.org",))],
         skipped=[("httproute/default/app", "app.example.org", "controller annotation of another controller")]),
    Case("a route host name that is an IP address matches nothing",
         gateways=[gateway(listeners=[listener(hostname="*.example.org")])],
         routes=[route(annotations={A + "hostname": "192.0.2.99"})],
         want=[a("*.example.org", "192.0.2.10")]),
    Case("the same host from two listeners and two Gateways: targets merged, each once",
         gateways=[gateway("one", listeners=[listener("a", hostname="*.example.org"),
                                             listener("b", "HTTPS", hostname="app.example.org", port=443)],
                           addresses=("192.0.2.1",)),
                   gateway("two", addresses=("192.0.2.1", "192.0.2.2"))],
         routes=[route(hostnames=("app.example.org",), parents=[parent_ref("one"), parent_ref("two")])],
         want=[a("app.example.org", "192.0.2.1", "192.0.2.2")]),
    Case("--domain-filter applies to the names listeners give",
         config={"domain_filter": ("example.org",)},
         gateways=[gateway(listeners=[listener("a", hostname="app.example.org"),
                                      listener("b", hostname="app.example.net")])],
         routes=[route()],
         want=[a("app.example.org", "192.0.2.10")]),
    Case("route and listener names are case-insensitive and lose a trailing dot",
         gateways=[gateway(listeners=[listener(hostname="*.Example.ORG")])],
         routes=[route(hostnames=("App.Example.org.",))],
         want=[a("app.example.org", "192.0.2.10")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.title for c in CASES])
@pytest.mark.parametrize("projected", [False, True], ids=["objects", "projections"])
def test_gateway_sources(case: Case, projected: bool) -> None:
    result = collect(snapshot_of(case, projected), config_of(case))
    assert result.endpoints == sorted(case.want, key=lambda e: (e.name, e.type, e.resource))
    got = [(s.resource, s.value, s.reason) for s in result.skipped]
    assert len(got) == len(case.skipped), got
    for (resource, value, reason), (want_resource, want_value, want_reason) in zip(got, case.skipped, strict=True):
        assert (resource, value) == (want_resource, want_value)
        assert want_reason in reason, reason


# ---- ExternalDNS gateway_test.go: host matching and protocols ----

@dataclass(frozen=True)
class HostCase:
    desc: str
    a: str = ""
    b: str = ""
    host: str | None = ""  # None: no match


HOST_CASES = [
    HostCase("ipv4-rejected", a="1.2.3.4", host=None),
    HostCase("ipv6-rejected", a="2001:0db8:85a3:0000:0000:8a2e:0370:7334", host=None),
    HostCase("empty-matches-empty"),
    HostCase("empty-matches-nonempty", a="example.net", host="example.net"),
    HostCase("simple-match", a="example.net", b="example.net", host="example.net"),
    HostCase("wildcard-matches-longer", a="*.example.net", b="test.example.net", host="test.example.net"),
    HostCase("wildcard-matches-equal-length", a="*.example.net", b="a.example.net", host="a.example.net"),
    HostCase("wildcard-matches-multiple-subdomains", a="*.example.net", b="foo.bar.test.example.net",
             host="foo.bar.test.example.net"),
    HostCase("wildcard-doesnt-match-parent", a="*.example.net", b="example.net", host=None),
    HostCase("wildcard-must-be-complete-label", a="*example.net", b="test.example.net", host=None),
    HostCase("two-wildcards-the-narrower-wins", a="*.example.net", b="*.foo.example.net", host="*.foo.example.net"),
    HostCase("different-names", a="a.example.net", b="b.example.net", host=None),
    HostCase("lone-star-rejected", a="*", b="a.example.net", host=None),
]


def _match(a: str, b: str) -> str | None:
    ha, hb = gateway_host(a), gateway_host(b)
    if ha is None or hb is None:
        return None
    return matching_host(ha, hb)


@pytest.mark.parametrize("case", HOST_CASES, ids=[c.desc for c in HOST_CASES])
def test_matching_host_both_ways(case: HostCase) -> None:
    assert _match(case.a, case.b) == case.host
    assert _match(case.b, case.a) == case.host


@dataclass(frozen=True)
class ProtocolCase:
    desc: str
    route: str
    listener: str
    ok: bool


PROTOCOL_CASES = [
    ProtocolCase("protocol-matches-lis-https-route-http", "HTTP", "HTTPS", True),
    ProtocolCase("protocol-match-invalid-list-https-route-tcp", "TCP", "HTTPS", False),
    ProtocolCase("protocol-match-valid-lis-tls-route-tls", "TLS", "TLS", True),
    ProtocolCase("protocol-match-valid-lis-TLS-route-TCP", "TCP", "TLS", True),
    ProtocolCase("protocol-match-invalid-lis-TCP-route-TLS", "TLS", "TCP", False),
    ProtocolCase("grpc-route-on-http-listener", "HTTPS", "HTTP", True),
    ProtocolCase("udp-route-on-tcp-listener", "UDP", "TCP", False),
]


@pytest.mark.parametrize("case", PROTOCOL_CASES, ids=[c.desc for c in PROTOCOL_CASES])
def test_protocol_matches(case: ProtocolCase) -> None:
    assert protocol_matches(case.route, case.listener) is case.ok


@dataclass(frozen=True)
class SelectorCase:
    desc: str
    selector: Any
    labels: dict[str, str]
    matches: bool


SELECTOR_CASES = [
    SelectorCase("absent selector matches nothing", None, {}, False),
    SelectorCase("empty selector matches everything", {}, {"a": "b"}, True),
    SelectorCase("matchLabels", {"matchLabels": {"team": "a"}}, {"team": "a", "x": "y"}, True),
    SelectorCase("matchLabels mismatch", {"matchLabels": {"team": "a"}}, {"team": "b"}, False),
    SelectorCase("In", {"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev", "qa"]}]},
                 {"env": "qa"}, True),
    SelectorCase("Exists", {"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""}, True),
    SelectorCase("DoesNotExist", {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]},
                 {"env": "x"}, False),
    SelectorCase("In without values is invalid", {"matchExpressions": [{"key": "env", "operator": "In"}]},
                 {"env": "x"}, False),
    SelectorCase("unknown operator is invalid", {"matchExpressions": [{"key": "env", "operator": "Gt"}]},
                 {"env": "x"}, False),
]


@pytest.mark.parametrize("case", SELECTOR_CASES, ids=[c.desc for c in SELECTOR_CASES])
def test_namespace_selector(case: SelectorCase) -> None:
    selector = label_selector(case.selector)
    assert (selector is not None and selector.matches(case.labels)) is case.matches


# ---- continuous mode: what a Gateway or Namespace change recomputes ----

def _change(obj: Obj | None, old: Obj | None = None) -> ObjectChange:
    some = obj if obj is not None else old
    assert some is not None
    return ObjectChange(some["kind"], object_key(some), old and project(old), obj and project(obj), 0.0)


def test_a_gateway_change_recomputes_exactly_the_routes_attached_to_it() -> None:
    config = SourceConfig(sources=("gateway-httproute", "gateway-tcproute"))
    state = DesiredState(enabled(config), Filters.of(config))
    gw_a, gw_b = gateway("a", addresses=("192.0.2.1",)), gateway("b", addresses=("192.0.2.2",))
    on_a = route(name="on-a", hostnames=("a.example.org",), parents=[parent_ref("a")])
    on_b = route(name="on-b", hostnames=("b.example.org",), parents=[parent_ref("b")])
    state.apply([_change(on_a), _change(on_b)])
    assert set(state.recompute()) == set()  # no Gateways yet: nothing
    state.apply([_change(gw_a), _change(gw_b)])
    assert state.marked == 2
    assert set(state.recompute()) == {"a.example.org", "b.example.org"}

    moved = gateway("a", addresses=("192.0.2.9",))
    state.apply([_change(moved, old=gw_a)])
    assert state.marked == 1  # on-a only
    assert set(state.recompute()) == {"a.example.org"}
    assert [e.targets for e in state.endpoints_at(["a.example.org"])] == [("192.0.2.9",)]

    state.apply([_change(None, old=moved)])
    assert set(state.recompute()) == {"a.example.org"}
    assert state.endpoints_at(["a.example.org"]) == []
    assert not state.wants("a.example.org") and state.wants("b.example.org")


def test_a_namespace_label_change_recomputes_the_routes_in_it() -> None:
    config = SourceConfig(sources=("gateway-httproute",))
    state = DesiredState(enabled(config), Filters.of(config))
    gw = gateway("shared", "infra", [listener(from_="Selector", selector={"matchLabels": {"dns": "public"}})])
    team = route(name="app", ns="team", hostnames=("app.example.org",), parents=[parent_ref("shared", "infra")])
    other = route(name="app", ns="other", hostnames=("other.example.org",), parents=[parent_ref("shared", "infra")])
    state.apply([_change(gw), _change(team), _change(other), _change(namespace("team")), _change(namespace("other"))])
    state.recompute()
    assert state.endpoints() == []
    state.apply([_change(namespace("team", {"dns": "public"}), old=namespace("team"))])
    assert state.marked == 1
    assert set(state.recompute()) == {"app.example.org"}
    assert [e.name for e in state.endpoints()] == ["app.example.org"]
