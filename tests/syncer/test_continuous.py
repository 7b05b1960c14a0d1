"""Continuous mode end to end: the real controller, the fake API server (real list/watch), a real etcd.

Each test runs ``Controller`` in this process (so it can await conditions instead of sleeping) against objects
changed through the fake API server, and checks what etcd holds - what the resolver and users see.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devtools.localetcd import LocalEtcd
from skydns.etcd import EtcdClient, read_prefix
from skydns.record import Record, encode
from syncer import metrics
from syncer.cli import parse_config
from syncer.config import SyncConfig
from syncer.controller import Controller, run_once
from syncer.keys import record_key
from tests.conftest import etcd_settings
from tests.fakekube import FakeKubeServer
from tests.processes import http_status
from tests.syncer.helpers import ROOT
from tests.syncer.running import eventually, running
from tests.syncer.source_objects import hostname, node, pod, service, slice_

OWNER = "cluster-a"
Obj = dict[str, Any]


def lb_service(name: str, ip: str, ns: str = "default", **spec: Any) -> Obj:
    return service(name, ns, annotations=hostname(f"{name}.example.org"), lb=[{"ip": ip}], **spec)


def config_for(kube: FakeKubeServer, endpoint: str, tmp_path: Path, *extra: str) -> SyncConfig:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    return parse_config(["--owner-id", OWNER, "--policy", "sync", "--kubeconfig", str(kubeconfig),
                         "--etcd-endpoints", endpoint, "--http-listen", "127.0.0.1:0", "--resync-interval", "0",
                         *extra], env={})


async def dump(client: EtcdClient) -> dict[str, Obj]:
    _, kvs = await read_prefix(client, b"/skydns/")
    return {kv.key.decode(): json.loads(kv.value) for kv in kvs}


async def answers(client: EtcdClient) -> dict[str, list[str]]:
    """``name -> sorted hosts`` of our records (SRV as ``port host``), what a resolver would serve."""
    out: dict[str, list[str]] = {}
    for key, value in (await dump(client)).items():
        if value.get("owner") != OWNER:
            continue
        name = ".".join(reversed(key.split("/")[2:-1]))
        host = value.get("host", "")
        out.setdefault(name, []).append(f"{value['port']} {host}" if value.get("port") else host)
    return {name: sorted(hosts) for name, hosts in sorted(out.items())}


async def revision(client: EtcdClient) -> int:
    rev, _ = await read_prefix(client, b"/skydns/")
    return rev


async def test_a_change_is_written_within_one_transaction_and_touches_only_its_name(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(lb_service("web", "10.0.0.1"))
        kube.apply(lb_service("api", "10.0.0.2"))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path)) as ctl:
            assert await answers(etcd) == {"api.example.org": ["10.0.0.2"], "web.example.org": ["10.0.0.1"]}
            before_rev, before = await revision(etcd), await dump(etcd)
            committed = metrics.EVENT_TO_COMMIT._sum.get()  # type: ignore[attr-defined]
            kube.apply(lb_service("web", "10.0.0.9"))
            await eventually(lambda: _has(etcd, "web.example.org", ["10.0.0.9"]), "the new IP")
            after = await dump(etcd)
            assert await revision(etcd) == before_rev + 1  # one transaction: the old key out, the new one in
            api_key = next(k for k in before if "/api/" in k)
            assert after[api_key] == before[api_key]
            assert metrics.EVENT_TO_COMMIT._sum.get() > committed  # type: ignore[attr-defined]
            assert ctl.health()[0]


async def _has(etcd: EtcdClient, name: str, hosts: list[str] | None) -> bool:
    got = (await answers(etcd)).get(name)
    return got == hosts


async def test_deleting_an_object_deletes_its_records_and_nothing_else(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    await etcd.put(b"/skydns/org/example/hand", encode(Record(host="192.0.2.1")))
    with FakeKubeServer() as kube:
        kube.apply(lb_service("web", "10.0.0.1"))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path)):
            kube.delete("Service", "web")
            await eventually(lambda: _has(etcd, "web.example.org", None), "the delete")
    assert list(await dump(etcd)) == ["/skydns/org/example/hand"]


async def test_node_changes_update_nodeport_records(etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(node("n1", external=("203.0.113.1",)))
        kube.apply(node("n2", external=("203.0.113.2",)))
        kube.apply(service("game", type="NodePort", annotations=hostname("game.example.org"),
                           ports=[{"port": 80, "nodePort": 30777, "protocol": "TCP"}]))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path)):
            assert (await answers(etcd))["game.example.org"] == ["203.0.113.1", "203.0.113.2"]
            assert (await answers(etcd))["_game._tcp.game.example.org"] == ["30777 _.game.example.org"]
            kube.apply(node("n2", external=("203.0.113.22",)))
            await eventually(lambda: _has(etcd, "game.example.org", ["203.0.113.1", "203.0.113.22"]), "n2's new IP")
            kube.apply(node("n1", external=("203.0.113.1",), unschedulable=True))
            await eventually(lambda: _has(etcd, "game.example.org", ["203.0.113.22"]), "n1 cordoned")
            kube.delete("Node", "n2")
            await eventually(lambda: _has(etcd, "game.example.org", None), "no node left")


async def test_endpointslice_and_pod_changes_update_headless_records(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(service("db", type="ClusterIP", cluster_ip="None", annotations=hostname("db.example.org"),
                           selector={"app": "db"}))
        for i in (1, 2):
            kube.apply(pod(f"db-{i}", labels={"app": "db"}, hostname=f"db-{i}"))
        kube.apply(slice_("db", [("db-1", "10.1.0.1", True), ("db-2", "10.1.0.2", True)]))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path)):
            got = await answers(etcd)
            assert got["db.example.org"] == ["10.1.0.1", "10.1.0.2"] and got["db-2.db.example.org"] == ["10.1.0.2"]
            kube.apply(slice_("db", [("db-1", "10.1.0.1", True), ("db-2", "10.1.0.2", False)]))
            await eventually(lambda: _has(etcd, "db-2.db.example.org", None), "db-2 not ready")
            assert (await answers(etcd))["db.example.org"] == ["10.1.0.1"]
            kube.apply(pod("db-1", labels={"app": "other"}, hostname="db-1"))  # no longer selected by the service
            await eventually(lambda: _has(etcd, "db.example.org", None), "db-1 unselected")


async def test_drift_is_repaired_and_foreign_records_are_never_touched(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    foreign_value = encode(Record(host="192.0.2.7", targetstrip=1, owner="someone-else"))
    foreign_key = b"/skydns/org/example/web/ffffffff"
    with FakeKubeServer() as kube:
        kube.apply(lb_service("web", "10.0.0.1"))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path)):
            ours = record_key("/skydns", "web.example.org", "A", "10.0.0.1")
            good = (await dump(etcd))[ours]
            repairs = metrics.DRIFT_REPAIRS._value.get()  # type: ignore[attr-defined]
            await etcd.delete(ours.encode())
            await eventually(lambda: _value(etcd, ours, good), "the deleted record put back")
            await etcd.put(ours.encode(), encode(Record(host="10.6.6.6", targetstrip=1, owner=OWNER)))
            await eventually(lambda: _value(etcd, ours, good), "the changed record put back")
            assert metrics.DRIFT_REPAIRS._value.get() == repairs + 2  # type: ignore[attr-defined]
            await etcd.put(foreign_key, foreign_value)  # another owner writes at our name
            kube.apply(lb_service("web", "10.0.0.2"))
            await eventually(lambda: _has(etcd, "web.example.org", ["10.0.0.2"]), "our update")
            assert (await _raw(etcd))[foreign_key] == foreign_value


async def _value(etcd: EtcdClient, key: str, want: Obj) -> bool:
    return (await dump(etcd)).get(key) == want


async def test_etcd_down_during_events_loses_nothing(own_etcd: LocalEtcd, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNSSYNC_RETRY_SECONDS", "0.5")
    client = EtcdClient(etcd_settings(own_etcd))
    try:
        with FakeKubeServer() as kube:
            kube.apply(lb_service("web", "10.0.0.1"))
            async with running(config_for(kube, own_etcd.endpoint, tmp_path)) as ctl:
                own_etcd.stop()
                for i in range(5):
                    kube.apply(lb_service("web", f"10.0.1.{i}"))
                    kube.apply(lb_service(f"new{i}", f"10.0.2.{i}"))

                async def etcd_reported() -> bool:
                    ok, details = ctl.health()
                    return not ok and any("etcd" in p for p in details["problems"])

                await eventually(etcd_reported, "/healthz reporting etcd")
                port = ctl.http.port if ctl.http else 0
                status, body = await asyncio.to_thread(http_status, port, "/healthz")
                assert status == 503 and b"etcd" in body
                own_etcd.start()
                want = {"web.example.org": ["10.0.1.4"], **{f"new{i}.example.org": [f"10.0.2.{i}"] for i in range(5)}}

                async def caught_up() -> bool:
                    with contextlib.suppress(Exception):
                        return await answers(client) == want
                    return False

                await eventually(caught_up, "the changes made while etcd was down", timeout=30)
                await eventually(lambda: truthy(ctl.health()[0]), "healthy again", timeout=30)
    finally:
        await client.close()


async def truthy(value: bool) -> bool:
    return value


async def test_dry_run_prints_each_plan_and_writes_nothing(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(lb_service("web", "10.0.0.1"))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path, "--dry-run")) as ctl:
            assert isinstance(ctl.out, io.StringIO)
            assert "+ web.example.org A 10.0.0.1" in ctl.out.getvalue()
            start = await revision(etcd)
            kube.apply(lb_service("api", "10.0.0.2"))
            await eventually(lambda: truthy("+ api.example.org A 10.0.0.2" in ctl.out.getvalue()), "the printed plan")
            assert await revision(etcd) == start and await dump(etcd) == {}


async def test_a_relist_after_410_and_a_resync_write_nothing(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        for i in range(20):
            kube.apply(lb_service(f"s{i}", f"10.0.0.{i}"))
        config = config_for(kube, etcd_server.endpoint, tmp_path, "--resync-interval", "0.2s")
        async with running(config):
            start = await revision(etcd)
            lists = kube.count_requests("list", "Service")
            kube.compact()
            kube.expire_watches("Service")
            await eventually(lambda: truthy(kube.count_requests("list", "Service") == lists + 1), "one relist")
            synced = metrics.LAST_FULL_SYNC._value.get()  # type: ignore[attr-defined]
            await eventually(lambda: truthy(metrics.LAST_FULL_SYNC._value.get() > synced),  # type: ignore[attr-defined]
                             "a full resync")
            assert kube.count_requests("list", "Service") == lists + 1  # exactly one, never a loop
            assert await revision(etcd) == start


async def test_an_api_outage_keeps_the_records_and_changes_flow_again_after_it(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(lb_service("web", "10.0.0.1"))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path)):
            before = await dump(etcd)
            kube.fail_requests(503, count=None)
            kube.drop_watches()
            await eventually(lambda: truthy(sum(r.status == 503 for r in kube.request_log()) >= 10),
                             "the syncer retrying")
            assert await dump(etcd) == before  # nothing deleted because the API failed
            kube.clear_failures()
            kube.apply(lb_service("web", "10.0.0.5"))
            await eventually(lambda: _has(etcd, "web.example.org", ["10.0.0.5"]), "the change after the outage",
                             timeout=40)


async def test_manifest_folder_edits_act_like_watch_events(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    folder = tmp_path / "objects"
    folder.mkdir()
    (folder / "web.json").write_text(json.dumps(lb_service("web", "10.0.0.1")))
    config = parse_config(["--owner-id", OWNER, "--policy", "sync", "--from-manifests", str(folder),
                           "--etcd-endpoints", etcd_server.endpoint, "--http-listen", "127.0.0.1:0"], env={})
    async with running(config):
        assert await answers(etcd) == {"web.example.org": ["10.0.0.1"]}
        (folder / "web.json").write_text(json.dumps(lb_service("web", "10.0.0.2")))
        await eventually(lambda: _has(etcd, "web.example.org", ["10.0.0.2"]), "the edited file")
        (folder / "web.json").write_text('{"kind": "Service", "metadata": {')  # half-written
        (folder / "api.json").write_text(json.dumps(lb_service("api", "10.0.0.3")))
        await eventually(lambda: _has(etcd, "api.example.org", ["10.0.0.3"]), "the added file")
        assert (await answers(etcd))["web.example.org"] == ["10.0.0.2"]  # its last good objects stay
        (folder / "api.json").unlink()
        await eventually(lambda: _has(etcd, "api.example.org", None), "the removed file")


async def test_sigterm_stops_the_process_cleanly_and_quickly(etcd: EtcdClient, etcd_server: LocalEtcd,
                                                         tmp_path: Path) -> None:
    from tests.processes import wait_until

    folder = tmp_path / "objects"
    folder.mkdir()
    (folder / "web.json").write_text(json.dumps(lb_service("web", "10.0.0.1")))
    from devtools.localetcd import free_port

    port = free_port()
    log = open(tmp_path / "syncer.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "syncer", "--owner-id", OWNER, "--policy", "sync",
                             "--from-manifests", str(folder), "--etcd-endpoints", etcd_server.endpoint,
                             "--http-listen", f"127.0.0.1:{port}", "--log-format", "json"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_until(lambda: http_status(port, "/readyz")[0] == 200, 20, "/readyz")
        status, body = http_status(port, "/metrics")
        assert status == 200 and b"dnssync_event_to_commit_seconds" in body and b"dnssync_cached_objects" in body
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    lines = [json.loads(line) for line in (tmp_path / "syncer.log").read_text().splitlines() if line.startswith("{")]
    created = [line for line in lines if line.get("event") == "record_created"]
    assert created and created[0]["name"] == "web.example.org" and "event_to_commit_ms" in created[0]
    assert lines[-1]["event"] == "stopped"


# -- a seeded random churn with faults: the end state is exactly what --once writes --------------------------------


def _random_object(rng: random.Random, i: int) -> Obj:
    kind = rng.choice(["lb", "lb", "nodeport", "headless"])
    name = f"s{i}"
    if kind == "lb":
        return lb_service(name, f"10.0.{rng.randrange(4)}.{rng.randrange(1, 250)}")
    if kind == "nodeport":
        return service(name, type="NodePort", annotations=hostname(f"{name}.example.org"),
                       ports=[{"port": 80, "nodePort": 30000 + i, "protocol": "TCP"}])
    return service(name, type="ClusterIP", cluster_ip="None", annotations=hostname(f"{name}.example.org"),
                   selector={"app": name})


async def test_random_churn_with_faults_ends_byte_for_byte_as_once_would_write(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNSSYNC_RETRY_SECONDS", "2")
    rng = random.Random(7)
    with FakeKubeServer() as kube:
        for n in range(3):
            kube.apply(node(f"n{n}", external=(f"203.0.113.{n}",)))
        config = config_for(kube, etcd_server.endpoint, tmp_path)
        async with running(config) as ctl:
            for step in range(300):
                i = rng.randrange(25)
                roll = rng.random()
                if roll < 0.45:
                    kube.apply(_random_object(rng, i))
                elif roll < 0.55:
                    with contextlib.suppress(Exception):
                        kube.delete("Service", f"s{i}")
                elif roll < 0.75:
                    ready = rng.random() < 0.8
                    kube.apply(pod(f"s{i}-0", node_name=f"n{rng.randrange(3)}", labels={"app": f"s{i}"},
                                   hostname="p0"))
                    kube.apply(slice_(f"s{i}", [(f"s{i}-0", f"10.9.{i}.{rng.randrange(1, 9)}", ready)]))
                elif roll < 0.82:
                    n = rng.randrange(3)
                    kube.apply(node(f"n{n}", external=(f"203.0.113.{rng.randrange(1, 99)}",),
                                    unschedulable=rng.random() < 0.2))
                elif roll < 0.86:
                    kube.drop_watches()
                elif roll < 0.89:
                    kube.compact()
                    kube.expire_watches()
                elif roll < 0.92:
                    kube.fail_requests(500, count=2)
                elif roll < 0.94:
                    await etcd.delete_range(b"/skydns/", b"/skydns0")  # someone wipes our records
                if step % 25 == 0:
                    await asyncio.sleep(0)  # let the syncer run between bursts, as a real cluster would

            kube.clear_failures()
            await settle(kube, ctl, etcd)
            continuous = await _raw(etcd)
        await etcd.delete_range(b"\0", b"\0")
        once = parse_config(["--once", "--owner-id", OWNER, "--policy", "sync", "--kubeconfig",
                             str(tmp_path / "kubeconfig"), "--etcd-endpoints", etcd_server.endpoint], env={})
        assert await run_once(once, out=io.StringIO()) == 0
    assert await _raw(etcd) == continuous


async def settle(kube: FakeKubeServer, ctl: Controller, etcd: EtcdClient) -> None:
    """Wait until the syncer has seen every change the API server and etcd hold, and written what they imply:
    a BOOKMARK at the API server's newest resourceVersion reaches every reflector, the mirror reaches etcd's
    newest revision, and nothing is left to plan or write."""
    newest = kube.resource_version

    async def reflectors_current() -> bool:
        kube.send_bookmarks()
        return all(getattr(w, "resource_version", newest) == newest for w in ctl.watches)

    await eventually(reflectors_current, "every reflector at the API server's newest resourceVersion", timeout=60)
    etcd_revision = await revision(etcd)
    await eventually(lambda: truthy(ctl.mirror.revision >= etcd_revision and ctl.idle()), "the syncer to settle",
                     timeout=60)


async def _raw(etcd: EtcdClient) -> dict[bytes, bytes]:
    _, kvs = await read_prefix(etcd, b"/skydns/")
    return {kv.key: kv.value for kv in kvs}


async def view_answers(client: EtcdClient, view: str) -> dict[str, list[str]]:
    _, kvs = await read_prefix(client, f"/dnssync/views/{view}/".encode())
    out: dict[str, list[str]] = {}
    for kv in kvs:
        value = json.loads(kv.value)
        assert value["owner"] == OWNER
        name = ".".join(reversed(kv.key.decode().split("/")[4:-1]))
        out.setdefault(name, []).append(value["host"])
    return {name: sorted(hosts) for name, hosts in sorted(out.items())}


async def test_a_published_view_gets_the_cluster_ips_and_follows_the_service(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(service("web", annotations=hostname("web.example.org"), cluster_ip="10.96.0.7",
                           lb=[{"ip": "203.0.113.7"}]))
        kube.apply(service("docs", type="ExternalName", annotations=hostname("docs.example.org"), cluster_ip=None,
                           externalName="docs.example.net"))
        config = config_for(kube, etcd_server.endpoint, tmp_path, "--publish-view", "inside")
        async with running(config):
            assert await answers(etcd) == {"docs.example.org": ["docs.example.net"],
                                           "web.example.org": ["203.0.113.7"]}
            assert await view_answers(etcd, "inside") == {"web.example.org": ["10.96.0.7"]}

            async def view_is(want: dict[str, list[str]]) -> bool:
                return await view_answers(etcd, "inside") == want

            kube.apply(service("web", annotations=hostname("web.example.org"), cluster_ip="10.96.0.8",
                               lb=[{"ip": "203.0.113.7"}]))
            await eventually(lambda: view_is({"web.example.org": ["10.96.0.8"]}), "the view following the service")
            kube.delete("Service", "web")
            await eventually(lambda: view_is({}), "the view record deleted with the service")
            assert await answers(etcd) == {"docs.example.org": ["docs.example.net"]}
    (tmp_path / "api.json").write_text(json.dumps(service("api", annotations=hostname("api.example.org"),
                                                          cluster_ip="10.96.0.9", lb=[{"ip": "203.0.113.9"}])))
    once = parse_config(["--once", "--owner-id", OWNER, "--policy", "sync", "--from-manifests",
                         str(tmp_path / "api.json"), "--publish-view", "inside",
                         "--etcd-endpoints", etcd_server.endpoint], env={})
    out = io.StringIO()
    assert await run_once(once, out=out) == 0
    assert "view inside:\n+ api.example.org A 10.96.0.9" in out.getvalue()
    assert await view_answers(etcd, "inside") == {"api.example.org": ["10.96.0.9"]}
    assert await answers(etcd) == {"api.example.org": ["203.0.113.9"]}
