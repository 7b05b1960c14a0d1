"""The records a split-horizon view gets (``--publish-view``): what clients inside the cluster should use."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from syncer.config import SourceConfig
from syncer.model import ClusterSnapshot, Endpoint
from syncer.sources import collect
from tests.syncer.source_objects import A, Obj, ep, hostname, ingress, pod, service, slice_


@dataclass(frozen=True)
class Case:
    title: str
    services: list[Obj] = field(default_factory=list)
    ingresses: list[Obj] = field(default_factory=list)
    pods: list[Obj] = field(default_factory=list)
    slices: list[Obj] = field(default_factory=list)
    expected: list[Endpoint] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # reasons, by substring


CASES = [
    Case("a load balancer's hostname gets its cluster IP",
         services=[service(annotations=hostname("web.example.org"), lb=[{"ip": "203.0.113.1"}])],
         expected=[ep("web.example.org", "A", "10.96.0.10")]),
    Case("internal-hostname and hostname alike",
         services=[service(annotations={**hostname("a.example.org"), A + "internal-hostname": "b.example.org"},
                           type="ClusterIP")],
         expected=[ep("a.example.org", "A", "10.96.0.10"), ep("b.example.org", "A", "10.96.0.10")]),
    Case("a NodePort service gets its cluster IP and no SRV",
         services=[service(type="NodePort", annotations=hostname("game.example.org"),
                           ports=[{"port": 80, "nodePort": 30080}])],
         expected=[ep("game.example.org", "A", "10.96.0.10")]),
    Case("headless: the ready pod IPs and per-pod names, as in the main records",
         services=[service("db", type="ClusterIP", cluster_ip="None", annotations=hostname("db.example.org"),
                           selector={"app": "db"})],
         pods=[pod("db-0", labels={"app": "db"}, hostname="db-0")],
         slices=[slice_("db", [("db-0", "10.1.0.5", True)])],
         expected=[ep("db.example.org", "A", "10.1.0.5", resource="service/default/db"),
                   ep("db-0.db.example.org", "A", "10.1.0.5", resource="service/default/db")]),
    Case("ExternalName: nothing (the view falls back to the main CNAME)",
         services=[service("docs", type="ExternalName", cluster_ip=None, annotations=hostname("docs.example.org"),
                           externalName="docs.example.net")]),
    Case("no cluster IP yet: skipped with the reason",
         services=[service(annotations=hostname("web.example.org"), cluster_ip=None)],
         skipped=["spec.clusterIP is not set yet"]),
    Case("ingresses publish nothing into views",
         ingresses=[ingress(hosts=("shop.example.org",), lb=[{"ip": "203.0.113.5"}])]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.title for c in CASES])
def test_view_records(case: Case) -> None:
    snapshot = ClusterSnapshot(services=case.services, ingresses=case.ingresses, pods=case.pods,
                               endpointslices=case.slices)
    result = collect(snapshot, SourceConfig(), view=True)
    assert result.endpoints == sorted(case.expected, key=lambda e: (e.name, e.type, e.resource))
    assert len(result.skipped) == len(case.skipped)
    for skip, reason in zip(result.skipped, case.skipped, strict=True):
        assert reason in skip.reason
