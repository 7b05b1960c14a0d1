"""The whole resolver (real etcd, mirror, store, answerer, sockets) seen through DNS, as clients see it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import time

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from aetcd import transactions

from devtools.localetcd import LocalEtcd
from resolver.cli import Resolver, parse_config
from resolver.lookup import SoaFields
from skydns.etcd import EtcdClient
from tests.resolver.cases import CASES, FIXTURE, MODES, ZONES, check
from tests.resolver.conftest import ZONE as ZONE_NAME
from tests.resolver.conftest import addresses, eventually, query, resolver_config, start_resolver


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


async def soa_serial(resolver: Resolver, zone: str = "skydns.test.") -> int:
    msg = await query(resolver.dns_address, zone, "SOA")
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer, msg
    return int(msg.answer[0][0].serial)


@pytest.mark.timeout(90)
async def test_the_serial_counts_deletes_across_restarts_and_replicas_agree(own_etcd: LocalEtcd,
                                                                            own_client: EtcdClient) -> None:
    """The serial is the revision of the zone's latest change, deletes included, on every replica: one that kept
    running, one started after the delete (and after writes elsewhere in etcd), one restarted."""
    first = (await own_client.put(b"/skydns/test/skydns/a", value("10.0.0.1"))).header.revision
    newest = (await own_client.put(b"/skydns/test/skydns/b", value("10.0.0.2"))).header.revision
    running = await start_resolver(own_etcd.endpoint)
    replicas = [running]
    try:
        assert await soa_serial(running) == newest
        deleted = (await own_client.delete(b"/skydns/test/skydns/b")).header.revision

        async def moved() -> bool:
            return await soa_serial(running) == deleted

        await eventually(moved, what="the delete in the running replica's serial")
        # etcd moves on elsewhere (another prefix, a zone nobody serves): the header revision is no serial
        await own_client.put(b"/elsewhere/x", value("10.9.9.9"))
        await own_client.put(b"/skydns/test/unserved/x", value("10.9.9.8"))
        later = await start_resolver(own_etcd.endpoint)
        replicas.append(later)
        await later.serials_exact()
        assert await soa_serial(later) == deleted == await soa_serial(running)
        negative = await query(later.dns_address, "b.skydns.test.")
        assert negative.rcode() == dns.rcode.NXDOMAIN and negative.authority[0][0].serial == deleted
        await running.stop()
        replicas.remove(running)
        restarted = await start_resolver(own_etcd.endpoint)
        replicas.append(restarted)
        await restarted.serials_exact()
        assert await soa_serial(restarted) == deleted
        # Once etcd has compacted the delete away, a new replica cannot see it: it serves the compaction revision
        # (every change it cannot see is at or before it), so its serial is never below what any replica served;
        # the next change puts every replica on the same serial again.
        compaction = (await own_client.put(b"/elsewhere/y", value("10.9.9.7"))).header.revision
        await own_client.compact(compaction)
        compacted = await start_resolver(own_etcd.endpoint)
        replicas.append(compacted)
        await compacted.serials_exact()
        assert await soa_serial(compacted) == compaction > deleted > first
        change = (await own_client.put(b"/skydns/test/skydns/c", value("10.0.0.3"))).header.revision

        async def agree() -> bool:
            return {await soa_serial(r) for r in replicas} == {change}

        await eventually(agree, what="every replica on the change's revision")
    finally:
        for replica in replicas:
            await replica.stop()


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
    if tool == "kdig":  # zone transfers: an answer (REFUSED) over TCP and UDP, never silence
        for transfer in (["skydns.test.", "AXFR"], ["+notcp", "skydns.test.", "IXFR=1"]):
            proc = await asyncio.create_subprocess_exec(*base, *transfer, "+retry=0", "+time=2",
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
            out = (await asyncio.wait_for(proc.communicate(), 20))[0].decode()
            assert "REFUSED" in out, out


@pytest.mark.timeout(30)
async def test_zone_transfers_are_refused_over_tcp_and_udp(loaded: Resolver) -> None:
    host, port = loaded.dns_address
    axfr = dns.message.make_query("skydns.test.", "AXFR")
    ixfr = dns.message.make_query("skydns.test.", "IXFR")
    ixfr.authority.append(dns.rrset.from_text("skydns.test.", 0, "IN", "SOA", "ns. host. 1 2 3 4 5"))
    for q in (axfr, ixfr):
        for answer in (await dns.asyncquery.tcp(q, host, port=port, timeout=2),
                       await dns.asyncquery.udp(q, host, port=port, timeout=2)):
            assert answer.rcode() == dns.rcode.REFUSED and answer.id == q.id


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


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", MODES)
async def test_every_case_of_the_table_over_udp_and_tcp(etcd: EtcdClient, etcd_server: LocalEtcd,
                                                        mode: str) -> None:
    """The shared CoreDNS-style table, loaded into real etcd, asked over real UDP and TCP sockets, one resolver
    per answer mode (the flags the command line sets)."""
    for key, raw in FIXTURE:
        await etcd.put(key.encode(), raw.encode())
    config = dataclasses.replace(resolver_config(etcd_server.endpoint, ZONES), own_records_only=mode == "own",
                                 subtree_answers=mode == "subtree")
    resolver = Resolver(config)
    await resolver.start()
    assert resolver.mirror is not None
    await asyncio.wait_for(resolver.mirror.ready.wait(), 15)
    failures: list[str] = []
    try:
        host, port = resolver.dns_address
        for case in (c for c in CASES if c.mode == mode):
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


@pytest.mark.timeout(30)
async def test_answer_flags_from_the_command_line(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    """--soa-* and --subtree-answers, as parsed from a command line, change what clients get."""
    await etcd.put(b"/skydns/test/skydns/wild/a", value("10.0.4.1"))
    await etcd.put(b"/skydns/test/skydns/wild/b/c", value("10.0.4.2"))
    argv = ["--zone", ZONE_NAME, "--etcd-endpoints", etcd_server.endpoint, "--listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0"]
    soa_flags = ["--soa-mname", "ns1.example.net", "--soa-rname", "dns-admin@example.net", "--soa-refresh", "1h",
                 "--soa-retry", "600", "--soa-expire", "14d", "--soa-minimum", "5m"]
    resolvers = [Resolver(parse_config([*argv, *soa_flags], env={})),
                 Resolver(parse_config([*argv, "--subtree-answers"], env={}))]
    try:
        for r in resolvers:
            await r.start()
            assert r.mirror is not None
            await asyncio.wait_for(r.mirror.ready.wait(), 15)
        custom, subtree = resolvers
        soa = (await query(custom.dns_address, ZONE_NAME, "SOA")).answer[0]
        assert soa.ttl == 300 and soa[0].mname.to_text() == "ns1.example.net."
        assert soa[0].rname.to_text() == "dns-admin.example.net."
        assert (soa[0].refresh, soa[0].retry, soa[0].expire, soa[0].minimum) == (3600, 600, 14 * 86400, 300)
        assert (await query(custom.dns_address, "nope.skydns.test.")).authority[0].ttl == 300
        assert (await query(custom.dns_address, "any.wild.skydns.test.")).rcode() == dns.rcode.NXDOMAIN
        assert addresses(await query(custom.dns_address, "wild.skydns.test.")) == {"10.0.4.1"}
        assert addresses(await query(subtree.dns_address, "any.wild.skydns.test.")) == {"10.0.4.1", "10.0.4.2"}
        assert addresses(await query(subtree.dns_address, "wild.skydns.test.")) == {"10.0.4.1", "10.0.4.2"}
    finally:
        for r in resolvers:
            await r.stop()


@pytest.mark.parametrize(("flags", "env", "message"), [
    (["--subtree-answers", "--own-records-only"], {}, "exclude each other"),
    (["--soa-mname", "a..b"], {}, "--soa-mname/--soa-rname"),
    (["--soa-rname", "@example.org"], {}, "--soa-mname/--soa-rname"),
    (["--soa-minimum", "-5"], {}, "--soa-minimum"),
    (["--soa-expire", "100y"], {}, "--soa-expire"),
    ([], {"DNSSYNC_RESOLVER_SUBTREE_ANSWERS": "maybe"}, "DNSSYNC_RESOLVER_SUBTREE_ANSWERS"),
])
def test_bad_answer_flags_exit_2_naming_the_flag(flags: list[str], env: dict[str, str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_config(["--zone", ZONE_NAME, *flags], env=env)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_answer_flags_come_from_the_environment_too() -> None:
    config = parse_config(["--zone", ZONE_NAME], env={"DNSSYNC_RESOLVER_SUBTREE_ANSWERS": "true",
                                                      "DNSSYNC_RESOLVER_SOA_RNAME": "admin@example.org",
                                                      "DNSSYNC_RESOLVER_SOA_MINIMUM": "60"})
    assert config.subtree_answers and config.soa is not None
    assert config.soa.rname == (b"admin", b"example", b"org") and config.soa.minimum == 60
    assert parse_config(["--zone", ZONE_NAME], env={}).soa == SoaFields()
