"""The API client against the fake API server (real HTTP, the real ``kubernetes.aio`` client): configuration,
raw list pages and watch lines, errors as the server words them, and the ``--once`` snapshot (paging, scope,
shape)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncer.kube.api import ApiStatusError, KubeApiError, KubeClient, KubeConfigError
from syncer.kube.reflector import list_snapshot
from syncer.sources import kinds_for_sources
from tests.fakekube import FakeKubeServer

pytestmark = pytest.mark.timeout(30)


def service(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}


async def test_the_snapshot_is_paged_projections_with_kind_and_status(tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        for i in range(1203):
            kube.apply(service(f"s{i}", f"ns{i % 3}", {"team": "a" if i % 2 else "b"}))
        kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
        versions: dict[str, str] = {}
        async with await KubeClient.create(str(kube.write_kubeconfig(tmp_path / "kubeconfig"))) as client:
            snap = await list_snapshot(client, kinds_for_sources(["service"]), resource_versions=versions)
        lists = [q for q in kube.request_log() if q.kind == "Service"]
    assert len(snap.services) == 1203
    assert len({(s["metadata"]["namespace"], s["metadata"]["name"]) for s in snap.services}) == 1203
    assert all(s["kind"] == "Service" and s["apiVersion"] == "v1" for s in snap.services)
    assert snap.services[0]["status"]["loadBalancer"]["ingress"] == [{"ip": "10.0.0.1"}]
    assert [n["metadata"]["name"] for n in snap.nodes] == ["n1"]
    assert [(q.params["limit"], "continue" in q.params) for q in lists] == [("500", False), ("500", True),
                                                                            ("500", True)]
    assert versions == dict.fromkeys(("Service", "Node", "Pod", "EndpointSlice"), kube.resource_version)


async def test_the_namespace_and_label_selector_are_sent_to_the_server(tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        for i in range(6):
            kube.apply(service(f"s{i}", f"ns{i % 2}", {"team": "a" if i < 3 else "b"}))
        async with await KubeClient.create(str(kube.write_kubeconfig(tmp_path / "kubeconfig"))) as client:
            snap = await list_snapshot(client, ["Service", "Node"], namespace="ns0", label_selector="team=a")
        requests = {q.kind: q for q in kube.request_log()}
    assert sorted(s["metadata"]["name"] for s in snap.services) == ["s0", "s2"]
    assert (requests["Service"].path, requests["Service"].params["labelSelector"]) == (
        "/api/v1/namespaces/ns0/services", "team=a")
    assert requests["Node"].path == "/api/v1/nodes" and "labelSelector" not in requests["Node"].params


async def test_a_bad_kubeconfig_names_the_flag(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(KubeConfigError, match=r"^--kubeconfig .*kubeconfig: cannot load"):
        await KubeClient.create(str(tmp_path / "kubeconfig"))
    with pytest.raises(KubeConfigError, match=r"^--kubeconfig /nonexistent: cannot load .*: no such file"):
        await KubeClient.create("/nonexistent")


async def test_without_a_flag_the_message_names_every_place_looked(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(KubeConfigError) as raised:
        await KubeClient.create()
    message = str(raised.value)
    assert message.startswith(f"in-cluster service account and $KUBECONFIG ({tmp_path}/missing): cannot load")
    assert "\n" not in message


async def test_kubeconfig_from_the_environment_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with FakeKubeServer() as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
        async with await KubeClient.create() as client:
            assert client.server == kube.url
            page = await client.list_page("Node")
    assert page["kind"] == "NodeList" and page["items"] == []


async def test_list_pages_and_watch_lines_are_the_servers_json(tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        for i in range(3):
            kube.apply(service(f"s{i}", "ns0", {"team": "a"}))
        async with await KubeClient.create(str(kube.write_kubeconfig(tmp_path / "kubeconfig"))) as client:
            first = await client.list_page("Service", "ns0", label_selector="team=a", limit=2)
            second = await client.list_page("Service", "ns0", label_selector="team=a", limit=2,
                                            continue_token=first["metadata"]["continue"])
            rv = second["metadata"]["resourceVersion"]
            kube.apply(service("s9", "ns0", {"team": "a"}))
            async with client.watch("Service", "ns0", resource_version=rv, label_selector="team=a",
                                    timeout_seconds=5) as stream:
                kube.send_bookmarks()
                events = [await anext(stream), await anext(stream)]
        watch = kube.request_log()[-1]
    assert [i["metadata"]["name"] for i in first["items"] + second["items"]] == ["s0", "s1", "s2"]
    assert "kind" not in first["items"][0] and "continue" not in second["metadata"]
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [
        ("ADDED", kube.resource_version), ("BOOKMARK", kube.resource_version)]
    assert watch.path == "/api/v1/namespaces/ns0/services"
    assert watch.params == {"watch": "true", "allowWatchBookmarks": "true", "resourceVersion": rv,
                            "labelSelector": "team=a", "timeoutSeconds": "5"}


async def test_an_error_answer_carries_the_servers_status(tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        async with await KubeClient.create(str(kube.write_kubeconfig(tmp_path / "kubeconfig"))) as client:
            kube.fail_requests(429, 1, verb="list", retry_after=7)
            with pytest.raises(ApiStatusError) as throttled:
                await client.list_page("Ingress")
            kube.fail_requests(403, 1, verb="watch")
            with pytest.raises(ApiStatusError) as denied:
                await client.watch("Pod", "default").open()
    assert (throttled.value.status, throttled.value.reason, throttled.value.retry_after) == (429, "TooManyRequests", 7)
    assert (denied.value.status, denied.value.verb, denied.value.kind) == (403, "watch", "Pod")
    assert 'cannot watch resource "pods" in API group "" in the namespace "default"' in denied.value.message


async def test_list_snapshot_gives_up_after_the_retry_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNSSYNC_RETRY_SECONDS", "0.5")
    with FakeKubeServer() as kube:
        async with await KubeClient.create(str(kube.write_kubeconfig(tmp_path / "kubeconfig"))) as client:
            kube.fail_requests(500, None, verb="list", kind="Service")
            with pytest.raises(KubeApiError, match=r"list Service: still failing after 0.5 s of retries"):
                await list_snapshot(client, ["Node", "Service"])
            retried = kube.count_requests("list", "Service")
            kube.fail_requests(403, None, verb="list", kind="Node")
            with pytest.raises(KubeApiError, match=r"list Node: HTTP 403 Forbidden: nodes is forbidden"):
                await list_snapshot(client, ["Node"])
            refused = kube.count_requests("list", "Node")
    assert retried >= 2
    assert refused == 2  # one in the first snapshot, one refused at once in the second
