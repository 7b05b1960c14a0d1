"""The reflector against the fake API server through the real ``kubernetes.aio`` client: paged lists, resuming
from bookmarks, exactly one relist per expiry with a diff of what really changed, outages, access denied,
stalled watches, selectors, and changes to fields the projection does not keep."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

import pytest
from structlog.testing import capture_logs

from skydns.listwatch import Expired
from syncer.kube.api import ApiStatusError, KubeClient, KubeProtocolError
from syncer.kube.projection import project
from syncer.kube.reflector import Reflector, WatchError
from tests.fakekube import FakeKubeServer
from tests.syncer.kube.helpers import Recorder, eventually, in_thread, metric, node, running, service

pytestmark = pytest.mark.timeout(30)
QUIET = 30.0  # an inactivity timeout no test reaches: the watch requests counted are only the ones a test causes


def reflector(client: KubeClient, kind: str = "Service", **kwargs: Any) -> tuple[Reflector, Recorder]:
    recorder = Recorder()
    kwargs.setdefault("inactivity_timeout", QUIET)
    kwargs.setdefault("backoff_max", 0.5)
    return Reflector(client, kind, on_changes=recorder, **kwargs), recorder


def pod(name: str, ready: str = "True", **status: Any) -> dict[str, Any]:
    conditions = [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": ready}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                                         "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": "10.1.0.1", "conditions": conditions, **status}}


async def test_load_pages_the_list_and_hands_over_only_real_changes(kube: FakeKubeServer,
                                                                     client: KubeClient) -> None:
    for i in range(5):
        kube.apply(service(f"s{i}", metadata={"managedFields": [{"manager": "kubectl"}]}))
    r, got = reflector(client, page=2)
    await r.load()
    lists = kube.request_log()
    assert [q.params.get("limit") for q in lists] == ["2", "2", "2"]
    assert ["continue" in q.params for q in lists] == [False, True, True]
    assert r.resource_version == kube.resource_version
    assert sorted(r.cache) == [("default", f"s{i}") for i in range(5)]
    assert r.cache["default", "s0"] == project(kube.get("Service", "s0") or {}, "Service")
    assert "managedFields" not in r.cache["default", "s0"]["metadata"]
    assert len(got.batches) == 1 and got.names() == [(f"s{i}", "added") for i in range(5)]

    got.clear()
    await r.load()  # an unchanged cluster: nothing to hand over
    assert got.batches == []
    kube.apply(service("s1", ip="192.0.2.99"))
    kube.delete("Service", "s4")
    kube.apply(service("s5"))
    await r.load()
    assert sorted(got.names()) == [("s1", "modified"), ("s4", "deleted"), ("s5", "added")]
    assert r.cache["default", "s1"]["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.99"}]


async def test_resumes_from_the_newest_bookmark_after_a_clean_end_and_after_a_cut(
        kube: FakeKubeServer, client: KubeClient) -> None:
    kube.apply(service("web"))
    r, got = reflector(client)
    async with running(r):
        await in_thread(kube.wait_for_watches, 1)
        listed = r.resource_version
        kube.apply(node("n1"))  # moves the resourceVersion on, with no Service event
        await in_thread(kube.end_watches, "Service", bookmark=True)
        bookmark = kube.resource_version
        assert bookmark != listed
        await eventually(lambda: kube.count_requests("watch", "Service", resourceVersion=bookmark), "re-watch")

        await in_thread(kube.wait_for_watches, 1)
        kube.apply(node("n2"))
        assert kube.send_bookmarks() == 1
        second = kube.resource_version
        await eventually(lambda: r.resource_version == second, "the second bookmark")
        await in_thread(kube.drop_watches, "Service")
        await eventually(lambda: kube.count_requests("watch", "Service", resourceVersion=second), "re-watch")
        kube.apply(service("api"))
        await eventually(lambda: ("default", "api") in r.cache, "an event on the resumed watch")
    assert kube.count_requests("watch", "Service", resourceVersion=listed) == 1
    assert kube.count_requests("list", "Service") == 1
    assert got.names() == [("web", "added"), ("api", "added")]


@dataclass(frozen=True)
class Expiry:
    name: str
    compact: bool  # forget the history, so a re-watch from the old resourceVersion is refused
    watch_status: int | None  # fail the re-watch with this HTTP status instead
    error_event: bool  # resume the stalled watch and send it an ERROR 410 event


EXPIRIES = [
    Expiry("ERROR 410 event on the open watch", compact=False, watch_status=None, error_event=True),
    Expiry("re-watch after a cut into compacted history", compact=True, watch_status=None, error_event=False),
    Expiry("HTTP 410 on the re-watch", compact=False, watch_status=410, error_event=False),
]


@pytest.mark.parametrize("case", EXPIRIES, ids=lambda c: c.name)
async def test_an_expired_watch_relists_once_and_hands_over_only_what_changed(
        kube: FakeKubeServer, client: KubeClient, case: Expiry) -> None:
    for name in ("a", "b", "c"):
        kube.apply(service(name))
    r, got = reflector(client)
    async with running(r):
        await in_thread(kube.wait_for_watches, 1)
        got.clear()
        relists = metric("dnssync_relists_total", kind="Service", reason="expired")
        kube.stall_watches("Service")  # the events from here on are lost to the open watch
        kube.apply(service("a", metadata={"annotations": {
            "external-dns.alpha.kubernetes.io/hostname": "a.example.org",
            "kubectl.kubernetes.io/last-applied-configuration": "{}"}, "managedFields": [{"manager": "x"}]}))
        kube.apply(service("b", ip="192.0.2.2"))
        kube.delete("Service", "c")
        kube.apply(service("d"))
        kube.clear_log()
        if case.compact:
            kube.compact()
        if case.watch_status:
            kube.fail_requests(case.watch_status, 1, verb="watch", kind="Service")
        if case.error_event:
            kube.resume_watches("Service")
            assert await in_thread(kube.expire_watches, "Service") == 1
        else:
            await in_thread(kube.drop_watches, "Service")
        await eventually(lambda: got.batches, "the relist's changes")
        await in_thread(kube.wait_for_watches, 1)
        assert kube.count_requests("list", "Service") == 1
        assert r.reloads == 1
        assert metric("dnssync_relists_total", kind="Service", reason="expired") == relists + 1
        assert len(got.batches) == 1
        assert sorted(got.names()) == [("b", "modified"), ("c", "deleted"), ("d", "added")]
        assert sorted(r.cache) == [("default", n) for n in ("a", "b", "d")]
        assert r.resource_version == kube.resource_version
        kube.apply(service("e"))
        await eventually(lambda: ("default", "e") in r.cache, "an event after the relist")
    assert kube.count_requests("list", "Service") == 1


@dataclass(frozen=True)
class Outage:
    name: str
    status: int
    verb: str
    count: int
    retry_after: int | None
    min_wait: float  # the least time between the failed request and the next one


OUTAGES = [
    Outage("500 on the list", 500, "list", 2, None, 0.05),
    Outage("503 on the list with Retry-After", 503, "list", 1, 1, 1.0),
    Outage("429 on the watch with Retry-After", 429, "watch", 1, 1, 1.0),
    Outage("500 on the watch", 500, "watch", 2, None, 0.05),
]


@pytest.mark.parametrize("case", OUTAGES, ids=lambda c: c.name)
async def test_an_outage_is_retried_with_backoff_then_recovers(kube: FakeKubeServer, client: KubeClient,
                                                               case: Outage) -> None:
    kube.apply(service("web"))
    kube.fail_requests(case.status, case.count, verb=case.verb, kind="Service", retry_after=case.retry_after)
    r, got = reflector(client)
    async with running(r, ready=False):
        await asyncio.wait_for(r.ready.wait(), 10)
        await in_thread(kube.wait_for_watches, 1, timeout=10)
        await eventually(lambda: r.health()["connected"], "connected again")
        kube.apply(service("api"))
        await eventually(lambda: ("default", "api") in r.cache, "an event after the recovery")
    attempts = [q for q in kube.request_log() if q.verb == case.verb]
    assert [q.status for q in attempts] == [case.status] * case.count + [200]
    gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(attempts)]
    assert min(gaps) >= case.min_wait
    assert kube.count_requests("list", "Service") == (1 + case.count if case.verb == "list" else 1)
    assert got.names() == [("web", "added"), ("api", "added")]


async def test_access_denied_is_retried_logged_once_and_shown_in_health_until_fixed(
        kube: FakeKubeServer, client: KubeClient) -> None:
    kube.apply(service("web"))
    kube.fail_requests(403, None, kind="Service")
    with capture_logs() as logs:
        r, got = reflector(client)
        async with running(r, ready=False):
            await eventually(lambda: kube.count_requests("list", "Service") >= 3, "three refused lists")
            health = r.health()
            assert health["forbidden"] is True and health["ready"] is False and health["connected"] is False
            assert 'cannot list resource "services"' in health["access_denied"]
            assert (metric("dnssync_kube_forbidden", kind="Service"), metric("dnssync_kube_api_up", kind="Service")) \
                == (1, 0)
            kube.clear_failures()  # RBAC fixed
            await asyncio.wait_for(r.ready.wait(), 5)
            assert r.health()["forbidden"] is False and "access_denied" not in r.health()
            assert (metric("dnssync_kube_forbidden", kind="Service"), metric("dnssync_kube_api_up", kind="Service")) \
                == (0, 1)
            assert got.names() == [("web", "added")]

            kube.fail_requests(403, 2, verb="watch", kind="Service")  # and refused again, on the watch
            await in_thread(kube.drop_watches, "Service")
            watches = lambda: [q.status for q in kube.request_log() if q.verb == "watch"]  # noqa: E731
            await eventually(lambda: watches()[-3:] == [403, 403, 200], "the watch back")
            await eventually(lambda: not r.forbidden, "access restored")
    denied = [e for e in logs if e["event"] == "kube_access_denied"]
    assert [(e["log_level"], e["kind"], e["status"], e["verb"]) for e in denied] == [
        ("error", "Service", 403, "list"), ("error", "Service", 403, "watch")]
    assert "system:serviceaccount:x:y" in denied[0]["message"]


async def test_a_stalled_watch_is_restarted_and_replays_what_it_missed(kube: FakeKubeServer,
                                                                        client: KubeClient) -> None:
    kube.apply(service("web"))
    r, got = reflector(client, inactivity_timeout=0.5)
    async with running(r):
        await in_thread(kube.wait_for_watches, 1)
        before = r.resource_version
        kube.stall_watches("Service")
        kube.apply(service("web", ip="192.0.2.7"))  # lost to the stalled watch
        kube.apply(service("api"))
        await eventually(lambda: ("default", "api") in r.cache, "the missed events", timeout=5)
        assert r.inactivity_restarts >= 1
        assert kube.count_requests("watch", "Service", resourceVersion=before) >= 2
    assert kube.count_requests("list", "Service") == 1
    assert got.names() == [("web", "added"), ("web", "modified"), ("api", "added")]
    assert got.changes[1].new is not None
    assert got.changes[1].new["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.7"}]


async def test_namespace_and_selectors_are_sent_and_objects_leaving_them_are_deleted(
        kube: FakeKubeServer, client: KubeClient) -> None:
    for i in range(6):
        kube.apply(service(f"s{i}", f"ns{i % 2}", metadata={"labels": {"team": "a" if i < 4 else "b"}}))
    r, got = reflector(client, namespace="ns0", label_selector="team=a", field_selector="metadata.name!=s2")
    async with running(r):
        assert sorted(r.cache) == [("ns0", "s0")]
        await in_thread(kube.wait_for_watches, 1)
        kube.apply(service("s4", "ns0", metadata={"labels": {"team": "a"}}))  # moves into the selector
        kube.apply(service("s0", "ns0", metadata={"labels": {"team": "b"}}))  # and out of it
        await eventually(lambda: len(got.changes) == 3, "two changes")
    assert got.names() == [("s0", "added"), ("s4", "added"), ("s0", "deleted")]
    assert sorted(r.cache) == [("ns0", "s4")]
    requests = [q for q in kube.request_log() if q.kind == "Service"]
    assert {q.verb for q in requests} == {"list", "watch"}
    for q in requests:
        assert q.path == "/api/v1/namespaces/ns0/services"
        assert (q.params["labelSelector"], q.params["fieldSelector"]) == ("team=a", "metadata.name!=s2")


async def test_changes_only_to_fields_not_kept_hand_over_nothing(kube: FakeKubeServer, client: KubeClient) -> None:
    kube.apply(pod("p1"))
    kube.apply(pod("p2"))
    r, got = reflector(client, "Pod")
    async with running(r):
        await in_thread(kube.wait_for_watches, 1)
        got.clear()
        unready = pod("p1", containerStatuses=[{"name": "c", "restartCount": 3}])
        unready["status"]["conditions"][0]["status"] = "False"  # PodScheduled, not Ready
        unready["metadata"]["managedFields"] = [{"manager": "kubelet", "operation": "Update"}]
        unready["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "now"}
        kube.apply(unready)
        kube.apply(pod("p2", ready="False"))  # a real change, after the other one on the same stream
        await eventually(lambda: got.changes, "the real change")
        assert r.cache["default", "p1"]["metadata"]["resourceVersion"] == (kube.get("Pod", "p1") or {}) \
            ["metadata"]["resourceVersion"]
    assert got.names() == [("p2", "modified")]
    change = got.changes[0]
    assert change.old is not None and change.new is not None
    assert change.old["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
    assert change.new["status"]["conditions"] == [{"type": "Ready", "status": "False"}]


async def test_deletes_leave_the_cache_and_unknown_ones_are_ignored(kube: FakeKubeServer,
                                                                   client: KubeClient) -> None:
    kube.apply(service("web"))
    kube.apply(service("api"))
    r, got = reflector(client)
    deleted = metric("dnssync_watch_events_total", kind="Service", type="DELETED")
    async with running(r):
        await in_thread(kube.wait_for_watches, 1)
        assert metric("dnssync_cached_objects", kind="Service") == 2
        before = time.monotonic()
        kube.delete("Service", "web")
        await eventually(lambda: len(got.changes) == 3, "the delete")
        assert metric("dnssync_watch_events_total", kind="Service", type="DELETED") == deleted + 1
        assert metric("dnssync_cached_objects", kind="Service") == 1
        deletion = got.changes[-1]
        assert (deletion.key, deletion.new) == (("default", "web"), None)
        assert deletion.old is not None and deletion.old["metadata"]["name"] == "web"
        assert before <= deletion.received <= time.monotonic()
        assert sorted(r.cache) == [("default", "api")]
        changes: list[Any] = []
        r.apply_event({"type": "DELETED", "object": {"kind": "Service", "apiVersion": "v1", "metadata": {
            "name": "never-seen", "namespace": "default", "resourceVersion": "999"}}}, 0.0, changes)
        assert changes == [] and sorted(r.cache) == [("default", "api")]


async def test_megabyte_objects_arrive_whole_from_the_list_and_the_watch(kube: FakeKubeServer,
                                                                        client: KubeClient) -> None:
    big = "x" * 3_000_000  # more than aiohttp's 2 MiB line buffer
    kube.apply(service("listed", metadata={"annotations": {"example.org/blob": big}}))
    r, _ = reflector(client)
    async with running(r):
        await in_thread(kube.wait_for_watches, 1)
        kube.apply(service("watched", metadata={"annotations": {"example.org/blob": big + "y"}}))
        await eventually(lambda: ("default", "watched") in r.cache, "the big watch event")
    assert r.cache["default", "listed"]["metadata"]["annotations"]["example.org/blob"] == big
    assert r.cache["default", "watched"]["metadata"]["annotations"]["example.org/blob"] == big + "y"
    assert r.inactivity_restarts == 0 and r.failures_in_a_row == 0


class CompactingClient(KubeClient):
    """After each list page that has a continuation (``times`` pages), writes something and compacts the fake's
    history, so the page's continue token has expired."""

    kube: FakeKubeServer
    times = 0

    async def list_page(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        page = await super().list_page(*args, **kwargs)
        if page["metadata"].get("continue") and self.times > 0:
            self.times -= 1
            self.kube.apply(node(f"n{self.times}"))
            self.kube.compact()
        return page


@pytest.mark.parametrize(("compactions", "loads"), [(1, True), (2, False)])
async def test_an_expired_continue_token_restarts_the_list_once(kube: FakeKubeServer, client: KubeClient,
                                                                compactions: int, loads: bool) -> None:
    for i in range(5):
        kube.apply(service(f"s{i}"))
    compacting = CompactingClient(client.configuration)
    compacting.kube, compacting.times = kube, compactions
    try:
        r, got = reflector(compacting, page=2)
        if loads:
            await r.load()
            assert sorted(r.cache) == [("default", f"s{i}") for i in range(5)] and len(got.changes) == 5
        else:
            with pytest.raises(ApiStatusError) as raised:
                await r.load()
            assert raised.value.status == 410 and r.cache == {} and got.batches == []
    finally:
        await compacting.close()
    assert r.list_restarts == 1
    statuses = [q.status for q in kube.request_log()]
    assert statuses == ([200, 410, 200, 200, 200] if loads else [200, 410, 200, 410])


@dataclass(frozen=True)
class Failure:
    name: str
    exc: BaseException
    transient: bool
    retry_after: float | None


FAILURES = [
    Failure("connection refused", ConnectionRefusedError(111, "refused"), True, None),
    Failure("a timeout", TimeoutError(), True, None),
    Failure("500", ApiStatusError(500, "InternalError", "boom"), True, None),
    Failure("503 with Retry-After", ApiStatusError(503, "ServiceUnavailable", "", retry_after=4), True, 4),
    Failure("429 with Retry-After", ApiStatusError(429, "TooManyRequests", "", retry_after=2), True, 2),
    Failure("401", ApiStatusError(401, "Unauthorized", "Unauthorized"), True, None),
    Failure("403", ApiStatusError(403, "Forbidden", "no"), True, None),
    Failure("a watch ERROR event other than 410", WatchError(500, "InternalError", "etcd"), True, None),
    Failure("a garbled line", KubeProtocolError("not JSON"), True, None),
    Failure("400 (a selector the server refuses)", ApiStatusError(400, "BadRequest", "bad selector"), False, None),
    Failure("a bug", KeyError("x"), False, None),
]


@pytest.mark.parametrize("case", FAILURES, ids=lambda c: c.name)
def test_which_failures_are_outages(client: KubeClient, case: Failure) -> None:
    r = Reflector(client, "Service")
    assert (r.transient(case.exc), r.retry_after(case.exc)) == (case.transient, case.retry_after)


def test_an_error_event_is_an_outage_and_410_an_expiry(client: KubeClient) -> None:
    r = Reflector(client, "Service")
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500,
              "message": "etcdserver: leader changed"}
    with pytest.raises(WatchError, match="etcdserver: leader changed"):
        r.apply_event({"type": "ERROR", "object": status}, 0.0, [])
    with pytest.raises(Expired, match="too old resource version"):
        r.apply_event({"type": "ERROR", "object": {**status, "code": 410, "reason": "Expired",
                                                   "message": "too old resource version: 1 (5)"}}, 0.0, [])
