"""The API reader against the fake API server (real HTTP, real kubernetes client): paging, scope, shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncer.kube.api import KubeApi, KubeConfigError, kinds_for_sources
from tests.fakekube import FakeKubeServer

pytestmark = pytest.mark.timeout(30)


def service(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}


def test_lists_are_paged_plain_dicts_with_kind_and_status(tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        for i in range(1203):
            kube.apply(service(f"s{i}", f"ns{i % 3}", {"team": "a" if i % 2 else "b"}))
        kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
        api = KubeApi(str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
        try:
            snap = api.list_snapshot(kinds_for_sources(["service"]))
        finally:
            api.close()
        lists = [path for method, path in kube.requests if method == "GET" and "/services" in path]
    assert len(snap.services) == 1203
    assert len({(s["metadata"]["namespace"], s["metadata"]["name"]) for s in snap.services}) == 1203
    assert all(s["kind"] == "Service" and s["apiVersion"] == "v1" for s in snap.services)
    assert snap.services[0]["status"]["loadBalancer"]["ingress"] == [{"ip": "10.0.0.1"}]
    assert [n["metadata"]["name"] for n in snap.nodes] == ["n1"]
    assert len(lists) == 3 and all("limit=500" in p for p in lists) and "continue=" in lists[-1]


def test_namespace_and_label_selector_are_sent_to_the_server(tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        for i in range(6):
            kube.apply(service(f"s{i}", f"ns{i % 2}", {"team": "a" if i < 3 else "b"}))
        api = KubeApi(str(kube.write_kubeconfig(tmp_path / "kubeconfig")), namespace="ns0", label_selector="team=a")
        try:
            services = api.list_kind("Service")
        finally:
            api.close()
        paths = [path for _, path in kube.requests if "/services" in path]
    assert sorted(s["metadata"]["name"] for s in services) == ["s0", "s2"]
    assert paths and all(p.startswith("/api/v1/namespaces/ns0/services") and "labelSelector=team" in p
                         for p in paths)


def test_a_bad_kubeconfig_names_the_flag(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(KubeConfigError, match=r"^--kubeconfig .*kubeconfig: cannot load"):
        KubeApi(str(tmp_path / "kubeconfig"))
