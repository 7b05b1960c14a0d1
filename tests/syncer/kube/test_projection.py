"""Projections: the sources give exactly the same records and skips from projections as from whole objects
(every source table case), the fields not kept are dropped, and a listed object (no kind/apiVersion) projects
like the same object from a watch event."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from syncer.config import ANNOTATION_PREFIXES
from syncer.kube.projection import LAST_APPLIED, object_key, project, same
from tests.syncer import test_sources_ingress, test_sources_service
from tests.syncer.source_objects import A, pod, reasons, run, service, slice_

OBJECT_LISTS = {"services": "Service", "ingresses": "Ingress", "nodes": "Node", "pods": "Pod",
                "slices": "EndpointSlice"}


@dataclass(frozen=True)
class SourceCase:
    name: str
    args: dict[str, Any]  # source_objects.run() arguments: object lists and the source config


SOURCE_CASES = [SourceCase(f"{table}: {row[0]}", row[1]) for table, rows in (
    ("service", test_sources_service.CASES), ("headless", test_sources_service.HEADLESS_CASES),
    ("ingress", test_sources_ingress.CASES)) for row in rows]


def projected(args: dict[str, Any]) -> dict[str, Any]:
    prefixes = tuple(args.get("annotation_prefixes") or ANNOTATION_PREFIXES)
    out = dict(args)
    for field, kind in OBJECT_LISTS.items():
        if field in args:
            out[field] = [project(obj, kind, prefixes) if isinstance(obj, dict) else obj for obj in args[field]]
    return out


@pytest.mark.parametrize("case", SOURCE_CASES, ids=lambda c: c.name)
def test_the_sources_read_projections_exactly_as_whole_objects(case: SourceCase) -> None:
    whole = run(**copy.deepcopy(case.args))
    kept = run(**projected(copy.deepcopy(case.args)))
    assert kept.endpoints == whole.endpoints
    assert reasons(kept) == reasons(whole)


def test_fields_the_sources_do_not_read_are_dropped() -> None:
    svc = service(annotations={f"{A}hostname": "web.example.org", LAST_APPLIED: "{...}"},
                  labels={"app": "web"}, ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080,
                                                 "protocol": "TCP"}], sessionAffinity="None")
    svc["metadata"].update(uid="u-1", managedFields=[{"manager": "kubectl"}], resourceVersion="7",
                           creationTimestamp="2026-01-01T00:00:00Z")
    assert project(svc) == {
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7", "labels": {"app": "web"},
                     "annotations": {f"{A}hostname": "web.example.org"}},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"nodePort": 30080, "protocol": "TCP"}]}}
    p = pod("p1", annotations={f"{A}target": "203.0.113.5", "other.io/x": "y"}, host_ip="10.0.0.1")
    p["status"]["conditions"].append({"type": "PodScheduled", "status": "True", "lastTransitionTime": "t"})
    p["status"]["containerStatuses"] = [{"name": "c", "ready": True}]
    kept = project(p)
    assert kept["metadata"]["annotations"] == {f"{A}target": "203.0.113.5"}
    assert kept["status"] == {"phase": "Running", "hostIP": "10.0.0.1",
                              "conditions": [{"type": "Ready", "status": "True"}]}
    assert project(p, annotation_prefixes=("other.io/",))["metadata"]["annotations"] == {"other.io/x": "y"}
    eps = slice_("web", [("p1", "10.1.0.1", True)])
    eps["endpoints"][0].update(nodeName="n1", zone="z")
    assert project(eps)["endpoints"] == [{"addresses": ["10.1.0.1"], "conditions": {"ready": True},
                                          "targetRef": {"kind": "Pod", "name": "p1"}}]


def test_a_listed_item_projects_like_the_same_object_from_a_watch() -> None:
    watched = service(annotations={f"{A}hostname": "web.example.org"})
    listed = {k: v for k, v in watched.items() if k not in ("kind", "apiVersion")}
    assert project(listed, "Service") == project(watched)
    assert project(listed, "Service")["apiVersion"] == "v1"
    assert object_key(project(listed, "Service")) == ("default", "web")


def test_same_ignores_only_the_resource_version() -> None:
    a = project(service(annotations={f"{A}hostname": "web.example.org"}))
    b = copy.deepcopy(a)
    b["metadata"]["resourceVersion"] = "9"
    assert same(a, b) and not same(a, None) and same(None, None)
    b["metadata"]["labels"] = {"app": "web"}
    assert not same(a, b)


@pytest.mark.parametrize("obj", [
    {}, {"kind": "Service", "metadata": "x", "spec": []},
    {"kind": "Pod", "metadata": {"name": 1, "annotations": ["a"]}, "status": {"conditions": "Ready"}},
    {"kind": "EndpointSlice", "endpoints": [None, {"conditions": 3}]},
])
def test_malformed_objects_project_without_raising(obj: dict[str, Any]) -> None:
    assert project(obj)["kind"] == obj.get("kind", "")
