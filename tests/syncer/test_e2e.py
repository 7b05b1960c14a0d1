"""dnssync end to end: the real CLI as a subprocess against a real etcd (and a fake API server over real HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.localetcd import LocalEtcd
from skydns.etcd import EtcdClient, read_prefix
from skydns.record import Record, encode, host_kind
from syncer.etcd.state import read_current
from syncer.keys import record_key
from tests.syncer.helpers import EXAMPLES, OWNER, PREFIX, ROOT, run_dnssync

pytestmark = pytest.mark.timeout(60)
SYNC = ("--once", "--owner-id", OWNER, "--policy", "sync")
EXPECTED = {  # (name, type) -> targets the examples imply
    ("api.example.org", "A"): ["203.0.113.20"],
    ("shop.example.org", "A"): ["203.0.113.20"],
    ("web.example.org", "A"): ["203.0.113.10"],
    ("docs.example.org", "CNAME"): ["docs.example.net"],
    ("game.example.org", "A"): ["198.51.100.11", "198.51.100.12"],
    ("_game._tcp.game.example.org", "SRV"): ["0 50 30777 game.example.org"],
}


async def snapshot(client: EtcdClient) -> dict[str, tuple[bytes, int]]:
    _, kvs = await read_prefix(client, b"/")
    return {kv.key.decode(): (kv.value, kv.mod_revision) for kv in kvs}


async def revision(client: EtcdClient) -> int:
    return (await read_current(client, PREFIX)).revision


def plan_json(stdout: str) -> dict:
    return json.loads(stdout)


async def test_once_creates_the_records_and_a_rerun_writes_nothing(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    done = run_dnssync(*SYNC, "--from-manifests", EXAMPLES, endpoint=etcd_server.endpoint)
    assert done.returncode == 0, done.stderr
    assert "6 to create, 0 to update, 0 to delete" in done.stdout
    assert "+ web.example.org A 203.0.113.10 ttl=60 service/demo/web" in done.stdout.splitlines()
    assert "[info" in done.stderr and "[info" not in done.stdout  # logs on stderr, the plan on stdout
    state = await read_current(etcd, PREFIX)
    found: dict[tuple[str, str], list[str]] = {}
    for rec in state.records:
        assert rec.owner == OWNER and rec.record.targetstrip == 1 and rec.record.text == ""
        assert rec.key == record_key(PREFIX, rec.name, rec.type, rec.target)
        found.setdefault((rec.name, rec.type), []).append(rec.target)
    assert {k: sorted(v) for k, v in found.items()} == EXPECTED
    srv = next(r for r in state.records if r.type == "SRV")
    assert (srv.record.host, srv.record.port, srv.record.weight, host_kind(srv.record).value) == (
        "_.game.example.org", 30777, 50, "CNAME")
    assert next(r for r in state.records if r.name == "web.example.org").record.ttl == 60
    assert next(r for r in state.records if r.name == "api.example.org").record.ttl == 0  # unset: left out

    before = await revision(etcd)
    again = run_dnssync(*SYNC, "--from-manifests", EXAMPLES, endpoint=etcd_server.endpoint)
    assert again.returncode == 0, again.stderr
    assert "0 to create, 0 to update, 0 to delete" in again.stdout
    assert await revision(etcd) == before


async def test_dry_run_prints_the_plan_and_writes_nothing(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    await etcd.put(b"/skydns/org/example/gone/12345678",
                   encode(Record(host="10.9.9.9", targetstrip=1, owner=OWNER, resource="service/demo/gone")))
    before = await revision(etcd)
    done = run_dnssync(*SYNC, "--dry-run", "--output", "json", "--from-manifests", EXAMPLES,
                       endpoint=etcd_server.endpoint)
    assert done.returncode == 0, done.stderr
    plan = plan_json(done.stdout)
    assert plan["summary"] == {"create": 6, "update": 0, "delete": 1, "skipped": 0}
    assert {"action": "delete", "name": "gone.example.org", "type": "A", "targets": ["10.9.9.9"], "ttl": None,
            "resource": "service/demo/gone"} in plan["changes"]
    assert {"action": "create", "name": "_game._tcp.game.example.org", "type": "SRV",
            "targets": ["0 50 30777 game.example.org"], "ttl": None, "resource": "service/demo/game"} \
        in plan["changes"]
    assert all(set(c) == {"action", "name", "type", "targets", "ttl", "resource"} for c in plan["changes"])
    assert await revision(etcd) == before


async def test_records_of_externaldns_other_owners_and_hand_written_are_never_touched(
        etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    foreign = {
        # ExternalDNS (TXT registry): a random-leaf record and its ownership TXT key.
        "/skydns/org/example/web/0a1b2c3d": Record(host="198.18.0.1", targetstrip=1),
        "/skydns/org/example/a-web/1a2b3c4d": Record(
            text='"heritage=external-dns,external-dns/owner=default,external-dns/resource=service/demo/web"',
            targetstrip=1),
        # ExternalDNS --coredns-strictly-owned by another cluster.
        "/skydns/org/example/shop/2b3c4d5e": Record(host="198.18.0.2", targetstrip=1, owner="cluster-b"),
        # Hand-written, at a name we want and at a name nobody wants.
        "/skydns/org/example/docs": Record(host="10.1.1.1"),
        "/skydns/org/example/legacy": Record(host="10.1.1.2"),
        "/skydns/org/example/gamer": Record(host="10.1.1.3"),
    }
    for key, record in foreign.items():
        await etcd.put(key.encode(), encode(record))
    await etcd.put(b"/skydns/org/example/stale/87654321",
                   encode(Record(host="10.2.2.2", targetstrip=1, owner=OWNER, resource="service/demo/stale")))
    await etcd.put(b"/skydns/org/example/broken", b"{not json")
    before = await snapshot(etcd)

    done = run_dnssync(*SYNC, "--from-manifests", EXAMPLES, endpoint=etcd_server.endpoint)
    assert done.returncode == 0, done.stderr
    after = await snapshot(etcd)
    for key in [*foreign, "/skydns/org/example/broken"]:
        assert after[key] == before[key], key
    assert "/skydns/org/example/stale/87654321" not in after
    lines = done.stdout.splitlines()
    assert "- stale.example.org A 10.2.2.2 ttl=- service/demo/stale" in lines
    skipped = [line for line in lines if line.startswith("! ")]
    assert len(skipped) == 3
    assert any("service/demo/web" in s and "no owner" in s for s in skipped)
    assert any("ingress/demo/shop" in s and "owner 'cluster-b'" in s for s in skipped)
    assert any("service/demo/docs" in s and "/skydns/org/example/docs" in s for s in skipped)
    assert "3 to create, 0 to update, 1 to delete, 3 skipped" in lines
    assert "unreadable_record_ignored" in done.stderr and "/skydns/org/example/broken" in done.stderr


async def test_a_changed_object_updates_its_record_and_removes_the_old_key(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    web = (ROOT / EXAMPLES / "web-loadbalancer.yaml").read_text()
    (tmp_path / "web.yaml").write_text(web)
    assert run_dnssync(*SYNC, "--from-manifests", str(tmp_path), endpoint=etcd_server.endpoint).returncode == 0
    (tmp_path / "web.yaml").write_text(web.replace("203.0.113.10", "203.0.113.99"))
    done = run_dnssync(*SYNC, "--from-manifests", "-", endpoint=etcd_server.endpoint,
                       stdin=(tmp_path / "web.yaml").read_text())
    assert done.returncode == 0, done.stderr
    assert "~ web.example.org A 203.0.113.99 (was 203.0.113.10) ttl=60 service/demo/web" in done.stdout
    keys = sorted(await snapshot(etcd))
    assert keys == [record_key(PREFIX, "web.example.org", "A", "203.0.113.99")]


async def test_policies_upsert_only_and_create_only(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    await etcd.put(b"/skydns/org/example/stale/87654321",
                   encode(Record(host="10.2.2.2", targetstrip=1, owner=OWNER, resource="service/demo/stale")))
    done = run_dnssync("--once", "--owner-id", OWNER, "--policy", "upsert-only", "--from-manifests", EXAMPLES,
                       endpoint=etcd_server.endpoint)
    assert done.returncode == 0 and "6 to create, 0 to update, 0 to delete" in done.stdout
    assert b"/skydns/org/example/stale/87654321" in {k.encode() for k in await snapshot(etcd)}


def test_etcd_unreachable_exits_1_with_one_line(tmp_path: Path) -> None:
    with LocalEtcd() as server:
        endpoint = server.endpoint
    done = run_dnssync(*SYNC, "--dry-run", "--from-manifests", EXAMPLES, endpoint=endpoint,
                       env={"DNSSYNC_RETRY_SECONDS": "1"})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("dnssync: error: etcd at http://127.0.0.1:") and "unreachable" in last
    assert done.stdout == ""


def test_etcd_refusing_our_credentials_exits_1_with_one_line(own_etcd: LocalEtcd) -> None:
    etcdctl = [str(Path(sys.executable).parent / "etcdctl"), "--endpoints", own_etcd.endpoint]
    for args in (("user", "add", "root:s3cret"), ("auth", "enable")):
        subprocess.run([*etcdctl, *args], check=True, capture_output=True, timeout=20)
    for env, why in (({"ETCD_USERNAME": "root", "ETCD_PASSWORD": "wrong"}, "authentication failed"),
                     ({}, "user name is empty")):
        done = run_dnssync(*SYNC, "--from-manifests", EXAMPLES, endpoint=own_etcd.endpoint, env=env)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"dnssync: error: etcd at {own_etcd.endpoint}: ") and why in last
        assert done.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (("--once", "--owner-id", OWNER, "--from-manifests", EXAMPLES), "--policy is required"),
    ((*SYNC, "--from-manifests", "nope/"), "--from-manifests: nope/: no such file or directory"),
    ((*SYNC, "--kubeconfig", "/nonexistent/kubeconfig"), "--kubeconfig /nonexistent/kubeconfig"),
    (("--owner-id", OWNER, "--policy", "sync", "--from-manifests", "-"), "stdin can't be watched"),
    (("--owner-id", OWNER, "--policy", "sync", "--http-listen", "192.0.2.1:8081"),
     "--http-listen 192.0.2.1:8081: cannot listen"),
])
def test_usage_errors_exit_2_with_one_line(args: tuple[str, ...], message: str) -> None:
    done = run_dnssync(*args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert done.stdout == ""


def test_a_bad_manifest_exits_2_naming_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: Service\nmetadata:\n  name: [x\n")
    done = run_dnssync(*SYNC, "--from-manifests", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"{tmp_path}/bad.yaml: document 1, line " in done.stderr


async def test_kubeconfig_reads_a_real_api_server_with_the_real_client(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    from syncer.kube.manifests import load
    from tests.fakekube import FakeKubeServer

    examples = load([str(ROOT / EXAMPLES)])
    with FakeKubeServer() as kube:
        for obj in [*examples.services, *examples.ingresses, *examples.nodes]:
            kube.apply(obj)
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        done = run_dnssync(*SYNC, "--kubeconfig", str(kubeconfig), "--output", "json",
                           endpoint=etcd_server.endpoint)
        assert done.returncode == 0, done.stderr
        changes = plan_json(done.stdout)["changes"]
        assert {(c["name"], c["type"]): c["targets"] for c in changes} == EXPECTED
        scoped = run_dnssync(*SYNC, "--kubeconfig", str(kubeconfig), "--namespace", "other", "--dry-run",
                             endpoint=etcd_server.endpoint)
        assert scoped.returncode == 0, scoped.stderr
        assert "0 to create, 0 to update, 6 to delete" in scoped.stdout
    state = await read_current(etcd, PREFIX)
    assert len(state.records) == 7


def test_kubernetes_api_unreachable_exits_1(tmp_path: Path) -> None:
    from tests.fakekube import FakeKubeServer

    with FakeKubeServer() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    done = run_dnssync(*SYNC, "--kubeconfig", str(kubeconfig), env={"DNSSYNC_RETRY_SECONDS": "1"})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("dnssync: error: Kubernetes API http://127.0.0.1:") and "unreachable" in last

