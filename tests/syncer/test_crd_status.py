"""DNSEndpoints end to end: ``--once``, continuous and ``--from-manifests`` against the fake API server (real
list/watch, the real ``kubernetes`` client) and a real etcd; the SkyDNS values written for every record type, a
real dnssync-resolver answering them over UDP, and ``status.observedGeneration`` written as ExternalDNS does -
once per generation, never in a dry run."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest

from devtools.localetcd import LocalEtcd
from skydns.etcd import EtcdClient, read_prefix
from syncer.cli import parse_config
from syncer.config import SyncConfig
from syncer.controller import Controller, run_once
from syncer.keys import record_key
from tests.fakekube import FakeKubeServer
from tests.processes import ask, wait_until
from tests.syncer.running import eventually, running, truthy
from tests.syncer.source_objects import dns_ep, dnsendpoint

pytestmark = pytest.mark.timeout(90)

OWNER = "cluster-a"
RESOURCE = "dnsendpoint/default/custom"
Obj = dict[str, Any]
TEXT = 'v=DKIM1; k=rsa; p="' + "Ab0+/" * 70 + '" ünïcødé <&> \u2028 end'  # > 255 bytes, quotes, UTF-8
EVERY_TYPE = [
    dns_ep("foo.example.org", "A", "192.0.2.7", ttl=60),
    dns_ep("foo.example.org", "AAAA", "2001:db8::7"),
    dns_ep("saas.example.org", "CNAME", "shop.example.net."),
    dns_ep("foo.example.org", "TXT", TEXT, "v=spf1 -all"),
    dns_ep("example.org", "MX", "10 mail.example.org", "20 backup.example.net."),
    dns_ep("mail.example.org", "A", "192.0.2.25"),
    dns_ep("_sip._tcp.example.org", "SRV", "10 5 5060 sip.example.net."),
    dns_ep("example.org", "NS", "ns1.example.net"),
    dns_ep("zone.example.org", "NS", "ns1.zone.example.org", "ns2.example.net"),
    dns_ep("bad.example.org", "A", "192.0.2.1", "not-an-ip"),
]


def config_for(kube: FakeKubeServer, endpoint: str, tmp_path: Path, *extra: str) -> SyncConfig:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    return parse_config(["--owner-id", OWNER, "--policy", "sync", "--source", "crd", "--kubeconfig", str(kubeconfig),
                         "--etcd-endpoints", endpoint, "--http-listen", "127.0.0.1:0", "--resync-interval", "0",
                         *extra], env={})


async def values(client: EtcdClient) -> dict[str, Obj]:
    _, kvs = await read_prefix(client, b"/skydns/")
    return {kv.key.decode(): json.loads(kv.value) for kv in kvs}


async def revision(client: EtcdClient) -> int:
    rev, _ = await read_prefix(client, b"/skydns/")
    return rev


def ours(name: str, rtype: str, target: str, **fields: Any) -> tuple[str, Obj]:
    """The key and value the syncer writes for one target of the DNSEndpoint."""
    return record_key("/skydns", name, rtype, target), {**fields, "owner": OWNER, "resource": RESOURCE}


def status_puts(kube: FakeKubeServer) -> int:
    return sum(1 for r in kube.request_log() if r.method == "PUT" and r.path.endswith("/status"))


def observed(kube: FakeKubeServer, name: str = "custom") -> Any:
    obj = kube.get("DNSEndpoint", name)
    assert obj is not None
    return (obj.get("status") or {}).get("observedGeneration")


async def settle(kube: FakeKubeServer, ctl: Controller, etcd: EtcdClient) -> None:
    """Every change the API server holds (our own status writes included) seen, and nothing left to write."""
    newest = kube.resource_version

    async def current() -> bool:
        kube.send_bookmarks()
        return all(getattr(w, "resource_version", newest) == newest for w in ctl.watches)

    await eventually(current, "the reflectors at the newest resourceVersion")
    rev = await revision(etcd)
    await eventually(lambda: truthy(ctl.mirror.revision >= rev and ctl.idle()), "the syncer to settle")


def txt_answer(port: int, name: str) -> set[bytes]:
    """Each TXT record's character-strings joined: the bytes a client reassembles."""
    response = dns.query.udp(dns.message.make_query(name, "TXT", use_edns=0, payload=4096), "127.0.0.1",
                             port=port, timeout=2)
    return {b"".join(rr.strings) for rrset in response.answer if rrset.rdtype == dns.rdatatype.TXT for rr in rrset}


async def test_once_writes_every_record_type_and_the_resolver_answers_it(
        etcd: EtcdClient, etcd_server: LocalEtcd, resolver: int, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(dnsendpoint("custom", endpoints=EVERY_TYPE))
        out = io.StringIO()
        assert await run_once(config_for(kube, etcd_server.endpoint, tmp_path, "--once"), out=out) == 0
        printed = out.getvalue()
        assert "bad.example.org A 192.0.2.1,not-an-ip" in printed and "not an IPv4 address" in printed
        stored = await values(etcd)
        for key, value in (
            ours("foo.example.org", "TXT", TEXT, text=TEXT, targetstrip=1),
            ours("example.org", "MX", "10 mail.example.org", host="_.mail.example.org", port=-1, priority=10,
                 mail=True, targetstrip=1),
            ours("_sip._tcp.example.org", "SRV", "10 5 5060 sip.example.net", host="_.sip.example.net", port=5060,
                 priority=10, weight=5, targetstrip=1),
            ours("zone.example.org", "NS", "ns2.example.net", host="ns2.example.net"),
            ours("foo.example.org", "A", "192.0.2.7", host="192.0.2.7", ttl=60, targetstrip=1),
        ):
            assert stored[key] == value, key
        assert record_key("/skydns", "zone.example.org", "NS", "ns2.example.net").startswith(
            "/skydns/org/example/zone/dns/ns/")
        assert not any("/bad/" in key for key in stored)
        assert observed(kube) == 1

        wait_until(lambda: ask(resolver, "foo.example.org.", "A")[1] == {("foo.example.org.", "A", "192.0.2.7")},
                   10, "foo A")
        assert ask(resolver, "foo.example.org.", "AAAA")[1] == {("foo.example.org.", "AAAA", "2001:db8::7")}
        assert ask(resolver, "saas.example.org.", "CNAME")[1] == {("saas.example.org.", "CNAME",
                                                                  "shop.example.net.")}
        assert txt_answer(resolver, "foo.example.org.") == {TEXT.encode(), b"v=spf1 -all"}
        assert ask(resolver, "example.org.", "MX")[1] == {("example.org.", "MX", "10 mail.example.org."),
                                                          ("example.org.", "MX", "20 backup.example.net.")}
        assert ask(resolver, "_sip._tcp.example.org.", "SRV")[1] == {
            ("_sip._tcp.example.org.", "SRV", "10 100 5060 sip.example.net.")}
        assert ask(resolver, "example.org.", "NS")[1] == {("example.org.", "NS", "ns1.example.net.")}
        assert ask(resolver, "foo.example.org.", "MX")[1] == set()  # TXT and A there, no stray MX or SRV
        assert ask(resolver, "example.org.", "SRV")[1] == set()  # the MX values are not SRV data

        # The same objects again: nothing to write, and the status is already observed.
        before, puts = await revision(etcd), status_puts(kube)
        assert await run_once(config_for(kube, etcd_server.endpoint, tmp_path, "--once"), out=io.StringIO()) == 0
        assert await revision(etcd) == before
        assert status_puts(kube) == puts


async def test_once_writes_the_status_once_per_generation_and_never_in_a_dry_run(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(dnsendpoint("custom", endpoints=[dns_ep("foo.example.org", "A", "192.0.2.7")]))
        dry = config_for(kube, etcd_server.endpoint, tmp_path, "--once", "--dry-run")
        assert await run_once(dry, out=io.StringIO()) == 0
        assert (status_puts(kube), observed(kube), await values(etcd)) == (0, None, {})

        once = config_for(kube, etcd_server.endpoint, tmp_path, "--once")
        assert await run_once(once, out=io.StringIO()) == 0
        assert (status_puts(kube), observed(kube)) == (1, 1)
        assert await run_once(once, out=io.StringIO()) == 0
        assert status_puts(kube) == 1  # the generation is observed: no write

        stored = kube.get("DNSEndpoint", "custom")
        assert stored is not None
        stored["spec"]["endpoints"][0]["targets"] = ["192.0.2.8"]
        kube.apply(stored)  # generation 2, the status kept
        assert await run_once(once, out=io.StringIO()) == 0
        assert (status_puts(kube), observed(kube)) == (2, 2)
        key, value = ours("foo.example.org", "A", "192.0.2.8", host="192.0.2.8", targetstrip=1)
        assert await values(etcd) == {key: value}


async def test_continuous_follows_dnsendpoints_and_writes_each_generation_once(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(dnsendpoint("custom", endpoints=[dns_ep("foo.example.org", "A", "192.0.2.7")]))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path)) as ctl:
            first = ours("foo.example.org", "A", "192.0.2.7", host="192.0.2.7", targetstrip=1)
            assert await values(etcd) == dict([first])
            await eventually(lambda: truthy(observed(kube) == 1), "observedGeneration 1")

            stored = kube.get("DNSEndpoint", "custom")
            assert stored is not None
            stored["spec"]["endpoints"] = [dns_ep("foo.example.org", "A", "192.0.2.9"),
                                           dns_ep("www.example.org", "CNAME", "foo.example.org"),
                                           dns_ep("www.example.org", "A", "bad")]
            kube.apply(stored)
            await eventually(lambda: truthy(observed(kube) == 2), "observedGeneration 2")
            await settle(kube, ctl, etcd)
            assert await values(etcd) == dict([
                ours("foo.example.org", "A", "192.0.2.9", host="192.0.2.9", targetstrip=1),
                ours("www.example.org", "CNAME", "foo.example.org", host="foo.example.org", targetstrip=1)])
            assert status_puts(kube) == 2  # our own status write came back as an event and wrote nothing

            metadata_only = kube.get("DNSEndpoint", "custom")
            assert metadata_only is not None
            metadata_only["metadata"]["labels"] = {"team": "a"}  # no spec change: same generation
            kube.apply(metadata_only)
            await settle(kube, ctl, etcd)
            assert status_puts(kube) == 2

            kube.delete("DNSEndpoint", "custom")
            await eventually(lambda: _empty(etcd), "the records of the deleted object to go")


async def _empty(etcd: EtcdClient) -> bool:
    return await values(etcd) == {}


async def test_a_failed_status_write_never_holds_back_records_and_is_tried_again(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        rule = kube.fail_requests(500, 1, verb="update", kind="DNSEndpoint")
        kube.apply(dnsendpoint("custom", endpoints=[dns_ep("foo.example.org", "A", "192.0.2.7")]))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path)):
            assert await values(etcd) == dict([ours("foo.example.org", "A", "192.0.2.7", host="192.0.2.7",
                                                    targetstrip=1)])
            await eventually(lambda: truthy(observed(kube) == 1), "observedGeneration 1 after the retry")
            assert rule.hits == 1 and status_puts(kube) == 2


async def test_a_dry_run_writes_no_status(
        etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    with FakeKubeServer() as kube:
        kube.apply(dnsendpoint("custom", endpoints=[dns_ep("foo.example.org", "A", "192.0.2.7")]))
        async with running(config_for(kube, etcd_server.endpoint, tmp_path, "--dry-run")) as ctl:
            await settle(kube, ctl, etcd)
            assert "+ foo.example.org A 192.0.2.7" in ctl.out.getvalue()  # type: ignore[attr-defined]
        assert (status_puts(kube), observed(kube), await values(etcd)) == (0, None, {})


async def test_from_manifests_once_and_continuous(etcd: EtcdClient, etcd_server: LocalEtcd, tmp_path: Path) -> None:
    folder = tmp_path / "objects"
    folder.mkdir()
    manifest = folder / "custom.json"
    manifest.write_text(json.dumps(dnsendpoint("custom", endpoints=[dns_ep("foo.example.org", "A", "192.0.2.7")])))
    args = ["--owner-id", OWNER, "--policy", "sync", "--source", "crd", "--from-manifests", str(folder),
            "--etcd-endpoints", etcd_server.endpoint, "--http-listen", "127.0.0.1:0"]
    assert await run_once(parse_config(["--once", *args], env={}), out=io.StringIO()) == 0
    assert await values(etcd) == dict([ours("foo.example.org", "A", "192.0.2.7", host="192.0.2.7", targetstrip=1)])
    async with running(parse_config(args, env={})):
        manifest.write_text(json.dumps(dnsendpoint("custom", endpoints=[
            dns_ep("foo.example.org", "A", "192.0.2.8"), dns_ep("-bad-.example.org", "A", "192.0.2.8")])))
        want = dict([ours("foo.example.org", "A", "192.0.2.8", host="192.0.2.8", targetstrip=1)])

        async def edited() -> bool:
            return await values(etcd) == want

        await eventually(edited, "the edited manifest's record")
