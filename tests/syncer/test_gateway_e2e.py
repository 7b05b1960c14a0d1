"""Gateway API routes end to end: the fake API server (real list/watch) or manifest files, the real dnssync
(``--once`` as a subprocess, continuous mode in this process), a real etcd, and a real dnssync-resolver answering
what was written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.localetcd import LocalEtcd
from skydns.etcd import EtcdClient
from tests.fakekube import FakeKubeServer
from tests.processes import ask, wait_until
from tests.syncer.helpers import run_dnssync
from tests.syncer.running import eventually, running, wait_answer
from tests.syncer.source_objects import A, N, gateway, listener, namespace, parent_ref, route
from tests.syncer.test_continuous import OWNER, answers, config_for

pytestmark = pytest.mark.timeout(90)

Obj = dict[str, Any]
ROUTE_SOURCES = ("gateway-httproute", "gateway-grpcroute", "gateway-tlsroute", "gateway-tcproute",
                 "gateway-udproute")
SOURCE_FLAGS = tuple(arg for s in ROUTE_SOURCES for arg in ("--source", s))
PUBLIC = {"matchLabels": {"dns": "public"}}


def cluster() -> list[Obj]:
    """A shared Gateway in ``infra`` admitting HTTP routes from namespaces labelled ``dns=public`` and TLS, TCP
    and UDP routes from everywhere; an ``edge`` Gateway whose target annotation names its load balancer; one
    route of each kind in ``team``, and one HTTP route from a namespace the listener does not admit."""
    shared = gateway("shared", "infra", [
        listener("http", "HTTP", hostname="*.example.org", from_="Selector", selector=PUBLIC),
        listener("tls", "TLS", port=8443, from_="All"),
        listener("tcp", "TCP", port=5432, from_="All"),
        listener("udp", "UDP", port=53, from_="All"),
    ], ("203.0.113.30",))
    edge = gateway("edge", "infra", [listener("grpc", "HTTPS", hostname="grpc.example.org", port=443, from_="All")],
                   ("198.51.100.1",), annotations={N + "target": "edge-lb.example.net"})
    return [
        namespace("infra"), namespace("team", PUBLIC["matchLabels"]), namespace("other"), shared, edge,
        route("HTTPRoute", "web", "team", ("web.example.org",), [parent_ref("shared", "infra", section="http")],
              annotations={A + "ttl": "60"}),
        route("GRPCRoute", "rpc", "team", parents=[parent_ref("edge", "infra")]),
        route("TLSRoute", "secure", "team", ("secure.example.org",), [parent_ref("shared", "infra", section="tls")]),
        route("TCPRoute", "db", "team", parents=[parent_ref("shared", "infra", section="tcp")],
              annotations={A + "hostname": "db.example.org"}),
        route("UDPRoute", "dns", "team", parents=[parent_ref("shared", "infra", section="udp")],
              annotations={A + "hostname": "dns.example.org"}),
        route("HTTPRoute", "blocked", "other", ("blocked.example.org",),
              [parent_ref("shared", "infra", section="http")]),
    ]


WANT = {"db.example.org": ["203.0.113.30"], "dns.example.org": ["203.0.113.30"],
        "grpc.example.org": ["edge-lb.example.net"], "secure.example.org": ["203.0.113.30"],
        "web.example.org": ["203.0.113.30"]}


def check_resolver(port: int) -> None:
    for name in ("web", "secure", "db", "dns"):
        wait_answer(port, f"{name}.example.org.", "A", {(f"{name}.example.org.", "A", "203.0.113.30")})
    wait_answer(port, "grpc.example.org.", "CNAME", {("grpc.example.org.", "CNAME", "edge-lb.example.net.")})
    assert ask(port, "blocked.example.org.", "A")[0] == "NXDOMAIN"


async def test_once_through_the_api_server_and_the_resolver_answers(
        etcd: EtcdClient, etcd_server: LocalEtcd, resolver: int, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        for obj in cluster():
            kube.apply(obj)
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        done = run_dnssync("--once", "--owner-id", OWNER, "--policy", "sync", "--kubeconfig", str(kubeconfig),
                           *SOURCE_FLAGS, "--output", "json", endpoint=etcd_server.endpoint)
    assert done.returncode == 0, done.stderr
    assert await answers(etcd) == WANT
    assert "httproute/other/blocked" in done.stdout  # reported as skipped, with the reason
    assert "no listener of Gateway infra/shared matches" in done.stdout
    check_resolver(resolver)
    wait_until(lambda: ask(resolver, "web.example.org.", "A")[1], 5, "web")
    _, response = ask(resolver, "web.example.org.", "A")
    assert response == {("web.example.org.", "A", "203.0.113.30")}


async def test_from_manifests_once_and_the_resolver_answers(
        etcd: EtcdClient, etcd_server: LocalEtcd, resolver: int, tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    folder.mkdir()
    (folder / "gateway-api.yaml").write_text(yaml.safe_dump_all(cluster()))
    done = run_dnssync("--once", "--owner-id", OWNER, "--policy", "sync", "--from-manifests", str(folder),
                       *SOURCE_FLAGS, endpoint=etcd_server.endpoint)
    assert done.returncode == 0, done.stderr
    assert await answers(etcd) == WANT
    check_resolver(resolver)


def _route_web(accepted: bool = True) -> Obj:
    return route("HTTPRoute", "web", "team", ("web.example.org",), [parent_ref("shared", "infra", section="http")],
                 accepted=accepted)


async def _is(etcd: EtcdClient, want: dict[str, list[str]]) -> bool:
    return await answers(etcd) == want


async def test_continuous_gateway_route_and_namespace_changes_reach_etcd(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        for obj in cluster():
            kube.apply(obj)
        async with running(config_for(kube, etcd_server.endpoint, tmp_path, *SOURCE_FLAGS)):
            assert await answers(etcd) == WANT
            # The Gateway gets a new address: every route attached to it follows, the edge one does not move.
            moved = gateway("shared", "infra", [
                listener("http", "HTTP", hostname="*.example.org", from_="Selector", selector=PUBLIC),
                listener("tls", "TLS", port=8443, from_="All"),
                listener("tcp", "TCP", port=5432, from_="All"),
                listener("udp", "UDP", port=53, from_="All"),
            ], ("203.0.113.31",))
            kube.apply(moved)
            want = {name: ["203.0.113.31"] if hosts == ["203.0.113.30"] else hosts for name, hosts in WANT.items()}
            await eventually(lambda: _is(etcd, want), "the routes following the Gateway's new address")
            # The Gateway stops accepting the HTTP route: its record goes, the rest stays.
            kube.apply(_route_web(accepted=False))
            await eventually(lambda: _is(etcd, {k: v for k, v in want.items() if k != "web.example.org"}),
                             "the detached route's record deleted")
            kube.apply(_route_web())
            await eventually(lambda: _is(etcd, want), "the route accepted again")
            # The namespace loses the label the listener selects on: the HTTP route is no longer admitted.
            kube.apply(namespace("team"))
            await eventually(lambda: _is(etcd, {k: v for k, v in want.items() if k != "web.example.org"}),
                             "the route no longer admitted")
            kube.apply(namespace("team", PUBLIC["matchLabels"]))
            await eventually(lambda: _is(etcd, want), "the namespace labelled again")
            # The Gateway goes away: every route on it loses its records; the edge route keeps its CNAME.
            kube.delete("Gateway", "shared", "infra")
            await eventually(lambda: _is(etcd, {"grpc.example.org": ["edge-lb.example.net"]}),
                             "the records of the deleted Gateway's routes deleted")


async def test_continuous_from_a_manifest_folder_follows_a_gateway_file(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    from syncer.cli import parse_config

    folder = tmp_path / "objects"
    folder.mkdir()
    shared = gateway("shared", "default", [listener(hostname="*.example.org")], ("192.0.2.1",))
    (folder / "gateway.json").write_text(json.dumps(shared))
    (folder / "route.yaml").write_text(yaml.safe_dump(route(parents=[parent_ref("shared")])))
    config = parse_config(["--owner-id", OWNER, "--policy", "sync", "--from-manifests", str(folder),
                           "--etcd-endpoints", etcd_server.endpoint, "--http-listen", "127.0.0.1:0",
                           "--source", "gateway-httproute"], env={})
    async with running(config):
        assert await answers(etcd) == {"*.example.org": ["192.0.2.1"]}  # the listener's host name
        narrowed = gateway("shared", "default", [listener(hostname="app.example.org")], ("192.0.2.2",))
        (folder / "gateway.json").write_text(json.dumps(narrowed))
        await eventually(lambda: _is(etcd, {"app.example.org": ["192.0.2.2"]}), "the edited Gateway file")
        (folder / "gateway.json").unlink()
        await eventually(lambda: _is(etcd, {}), "the removed Gateway file")


@pytest.mark.parametrize("where", ["api", "manifests"])
async def test_namespace_scopes_the_routes_but_not_the_gateways(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path, where: str) -> None:
    """ExternalDNS's RouteNamespace case: ``--namespace team`` reads the routes of ``team`` only, and still
    their Gateway in ``infra`` (``--gateway-namespace`` is the Gateways' scope)."""
    args = ("--once", "--owner-id", OWNER, "--policy", "sync", "--namespace", "team", *SOURCE_FLAGS)
    if where == "api":
        with FakeKubeServer() as kube:
            for obj in cluster():
                kube.apply(obj)
            kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
            done = run_dnssync(*args, "--kubeconfig", str(kubeconfig), endpoint=etcd_server.endpoint)
    else:
        (tmp_path / "cluster.yaml").write_text(yaml.safe_dump_all(cluster()))
        done = run_dnssync(*args, "--from-manifests", str(tmp_path / "cluster.yaml"), endpoint=etcd_server.endpoint)
    assert done.returncode == 0, done.stderr
    assert await answers(etcd) == WANT
