"""The whole resolver (real etcd, mirror, store, answerer, sockets) seen through DNS, as clients see it."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import pytest
from aetcd import transactions

from devtools.localetcd import LocalEtcd
from resolver.cli import Resolver
from skydns.etcd import EtcdClient
from tests.resolver.cases import CASES, FIXTURE, ZONES, check
from tests.resolver.conftest import addresses, eventually, query, start_resolver


def value(host: str, **extra: object) -> bytes:
    return json.dumps({"host": host, **extra}).encode()


async def answer_is(resolver: Resolver, name: str, expected: set[str], tcp: bool = False) -> bool:
    msg = await query(resolver.dns_address, name, tcp=tcp)
    return addresses(msg) == expected


@pytest.mark.timeout(30)
async def test_change_and_delete_are_visible_on_the_next_query(etcd: EtcdClient, resolver: Resolver) -> None:
    name = "svc.skydns.test."
    assert (await query(resolver.dns_address, name)).rcode() == dns.rcode.NXDOMAIN
    await etcd.put(b"/skydns/test/skydns/svc/a", value("10.0.0.1"))
    await eventually(lambda: answer_is(resolver, name, {"10.0.0.1"}), what="a new name")
    await etcd.put(b"/skydns/test/skydns/svc/a", value("10.0.0.2"))
    await eventually(lambda: answer_is(resolver, name, {"10.0.0.2"}, tcp=True), what="a changed value")
    await etcd.put(b"/skydns/test/skydns/svc/b", value("10.0.0.3"))
    await eventually(lambda: answer_is(resolver, name, {"10.0.0.2", "10.0.0.3"}), what="a second target")
    await etcd.delete(b"/skydns/test/skydns/svc/a")
    await eventually(lambda: answer_is(resolver, name, {"10.0.0.3"}), what="a deleted target")
    await etcd.delete(b"/skydns/test/skydns/svc/b")

    async def gone() -> bool:
        return (await query(resolver.dns_address, name)).rcode() == dns.rcode.NXDOMAIN

    await eventually(gone, what="NXDOMAIN once nothing is left")


@pytest.mark.timeout(60)
async def test_a_transaction_is_never_seen_half_applied(etcd: EtcdClient, resolver: Resolver) -> None:
    """A name moves between two keys (X -> Y) in one txn; a tight query loop sees exactly one address."""
    name = "move.skydns.test."
    await etcd.put(b"/skydns/test/skydns/move/x", value("10.0.0.1"))
    await eventually(lambda: answer_is(resolver, name, {"10.0.0.1"}), what="the start state")
    seen: list[frozenset[str]] = []
    stop = asyncio.Event()

    async def reader(tcp: bool) -> None:
        while not stop.is_set():
            seen.append(frozenset(addresses(await query(resolver.dns_address, name, tcp=tcp))))

    readers = [asyncio.create_task(reader(tcp)) for tcp in (False, False, True)]
    moves = 60
    for i in range(moves):
        old, new = ("x", "y") if i % 2 == 0 else ("y", "x")
        await etcd.transaction(compare=[], success=[
            transactions.Delete(f"/skydns/test/skydns/move/{old}".encode()),
            transactions.Put(f"/skydns/test/skydns/move/{new}".encode(), value(f"10.0.{i // 250}.{i % 250 + 2}")),
        ], failure=[])
        await asyncio.sleep(0)  # let the readers run between transactions
    final = f"10.0.{(moves - 1) // 250}.{(moves - 1) % 250 + 2}"
    await eventually(lambda: answer_is(resolver, name, {final}), what="the last move")
    stop.set()
    await asyncio.gather(*readers)
    assert len(seen) > moves
    assert all(len(s) == 1 for s in seen), [sorted(s) for s in seen if len(s) != 1][:5]
    assert len(set(seen)) > 2, "the readers saw the moves happen"


@pytest.mark.timeout(90)
async def test_answers_survive_a_frozen_and_a_restarted_etcd(own_etcd: LocalEtcd, own_client: EtcdClient) -> None:
    await own_client.put(b"/skydns/test/skydns/www", value("10.0.0.1"))
    resolver = await start_resolver(own_etcd.endpoint)
    try:
        assert resolver.mirror is not None
        own_etcd.freeze()
        try:
            await eventually(lambda: asyncio.sleep(0, not resolver.mirror.connected), timeout=25,  # type: ignore
                             what="the frozen etcd noticed")
            assert await answer_is(resolver, "www.skydns.test.", {"10.0.0.1"})
            assert await answer_is(resolver, "www.skydns.test.", {"10.0.0.1"}, tcp=True)
            details = resolver.mirror.health()
            assert "serving last good state" in details["detail"]
        finally:
            own_etcd.thaw()
        await asyncio.to_thread(own_etcd.restart)
        await own_client.put(b"/skydns/test/skydns/www", value("10.0.0.2"))
        await own_client.put(b"/skydns/test/skydns/new", value("10.0.0.3"))
        await eventually(lambda: answer_is(resolver, "www.skydns.test.", {"10.0.0.2"}), timeout=20,
                         what="a change after the restart")
        assert await answer_is(resolver, "new.skydns.test.", {"10.0.0.3"})
        # compaction past the mirror while it is disconnected: reloaded whole, the deleted name gone
        task = resolver.mirror_task
        assert task is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await own_client.delete(b"/skydns/test/skydns/new")
        rev = (await own_client.put(b"/skydns/test/skydns/later", value("10.0.0.4"))).header.revision
        await own_client.compact(rev)
        resolver._mirror_task = asyncio.create_task(resolver.mirror.run())
        await eventually(lambda: answer_is(resolver, "later.skydns.test.", {"10.0.0.4"}), timeout=20,
                         what="state after compaction")
        assert resolver.mirror.loads == 2
        assert (await query(resolver.dns_address, "new.skydns.test.")).rcode() == dns.rcode.NXDOMAIN
        assert await answer_is(resolver, "www.skydns.test.", {"10.0.0.2"})
    finally:
        await resolver.stop()


async def run_tool(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    return out.decode()


@pytest.fixture
async def loaded(etcd: EtcdClient, resolver: Resolver) -> Resolver:
    await etcd.put(b"/skydns/test/skydns/www", value("10.0.0.1"))
    for i in range(60):  # 60 A records: 1 kB, more than fits in 512 bytes
        await etcd.put(f"/skydns/test/skydns/many/n{i:02d}".encode(), value(f"10.0.1.{i}"))
    await eventually(lambda: answer_is(resolver, "www.skydns.test.", {"10.0.0.1"}), what="loaded")
    await eventually(lambda: answer_is(resolver, "many.skydns.test.", {f"10.0.1.{i}" for i in range(60)},
                                       tcp=True), what="loaded")
    return resolver


def answer_lines(out: str) -> list[str]:
    return sorted(line.split()[-1] for line in out.splitlines()
                  if line and not line.startswith(";") and "\tA\t" in line.replace(" ", "\t"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tool", ["dig", "kdig"])
async def test_interop_with_dig_and_kdig(tool: str, loaded: Resolver) -> None:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    host, port = loaded.dns_address
    base = [path, f"@{host}", "-p", str(port)]
    for transport in ([], ["+tcp"]):
        out = await run_tool(*base, "www.skydns.test.", "A", "+norec", *transport)
        assert "status: NOERROR" in out and answer_lines(out) == ["10.0.0.1"], out
        assert " aa" in out.lower().split("flags:")[1].split(";")[0], "authoritative answer"
    out = await run_tool(*base, "many.skydns.test.", "A", "+norec", "+bufsize=512")
    assert "Truncated, retrying in TCP mode" in out or "retrying over TCP" in out, out
    assert answer_lines(out) == sorted(f"10.0.1.{i}" for i in range(60)), out
    out = await run_tool(*base, "nothing.skydns.test.", "A", "+norec")
    assert "status: NXDOMAIN" in out and "SOA" in out
    out = await run_tool(*base, "www.example.com.", "A", "+norec")
    assert "status: REFUSED" in out


@pytest.mark.timeout(30)
async def test_queries_get_servfail_until_the_first_load(own_etcd: LocalEtcd) -> None:
    own_etcd.stop()
    resolver = await start_resolver(own_etcd.endpoint, wait_ready=False)
    try:
        assert (await query(resolver.dns_address, "www.skydns.test.")).rcode() == dns.rcode.SERVFAIL
        assert (await query(resolver.dns_address, "www.skydns.test.", tcp=True)).rcode() == dns.rcode.SERVFAIL
        await asyncio.to_thread(own_etcd.start)
        started = time.monotonic()

        async def answered() -> bool:
            return (await query(resolver.dns_address, "www.skydns.test.")).rcode() == dns.rcode.NXDOMAIN

        await eventually(answered, timeout=20, what="answers after the first load")
        assert time.monotonic() - started < 20
        msg = await query(resolver.dns_address, "www.skydns.test.")
        assert msg.flags & dns.flags.AA
    finally:
        await resolver.stop()


@pytest.mark.timeout(60)
async def test_every_case_of_the_table_over_udp_and_tcp(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    """The shared CoreDNS-style table, loaded into real etcd, asked over real UDP and TCP sockets."""
    for key, raw in FIXTURE:
        await etcd.put(key.encode(), raw.encode())
    resolver = await start_resolver(etcd_server.endpoint, zones=ZONES)
    failures: list[str] = []
    try:
        host, port = resolver.dns_address
        for case in CASES:
            for transport in ("udp", "udp-edns", "tcp"):
                if transport == "udp" and case.tcp_only:
                    continue
                q = dns.message.make_query(case.qname, case.qtype, use_edns=0 if transport == "udp-edns" else -1,
                                           payload=4096)
                if transport == "tcp":
                    r = await dns.asyncquery.tcp(q, host, port=port, timeout=2)
                else:
                    r = await dns.asyncquery.udp(q, host, port=port, timeout=2)
                try:
                    check(case, r)
                except AssertionError as exc:
                    failures.append(f"[{transport}] {exc}")
    finally:
        await resolver.stop()
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:10])


@pytest.mark.timeout(30)
async def test_a_leased_key_answers_with_its_remaining_lease_time(etcd: EtcdClient, resolver: Resolver) -> None:
    lease = await etcd.lease(45)
    await etcd.put(b"/skydns/test/skydns/leased", value("10.0.0.5", ttl=300), lease=lease)
    await etcd.put(b"/skydns/test/skydns/plain", value("10.0.0.6", ttl=300))
    await eventually(lambda: answer_is(resolver, "plain.skydns.test.", {"10.0.0.6"}), what="both written")
    leased = await query(resolver.dns_address, "leased.skydns.test.")
    assert addresses(leased) == {"10.0.0.5"}
    assert 30 <= leased.answer[0].ttl <= 45, "the lease's remaining time, not the record's 300"
    plain = await query(resolver.dns_address, "plain.skydns.test.")
    assert plain.answer[0].ttl == 300
    await lease.revoke()

    async def gone() -> bool:
        return (await query(resolver.dns_address, "leased.skydns.test.")).rcode() == dns.rcode.NXDOMAIN

    await eventually(gone, what="the key gone with its lease")
