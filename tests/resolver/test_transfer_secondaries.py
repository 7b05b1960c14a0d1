"""Real secondaries - Knot DNS and BIND on loopback (:mod:`tests.resolver.secondaries`) - follow our resolver as a
hidden primary, with TSIG:

* they complete the first transfer and answer the resolver's query table (``tests.resolver.cases``) exactly as
  we do (rcode and answer section);
* an etcd write -> NOTIFY -> each answers the new data within 2 s, and its log shows an IXFR, not an AXFR;
* our resolver restarted and etcd compacted meanwhile: they keep serving, then catch up, and the serial they
  serve never goes backwards.

Skipped (with the reason) where ``knotd`` or ``named`` is not installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from devtools.localetcd import LocalEtcd
from resolver.cli import Resolver
from resolver.server import free_dns_port
from skydns.etcd import EtcdClient
from tests.resolver.cases import CASES, FIXTURE, ZONES, Case
from tests.resolver.conftest import resolver_config
from tests.resolver.secondaries import KNOTD, NAMED, TSIG_FLAG, Bind, Knot, Secondary, missing

MAIN = "skydns.test"
KINDS = {"knot": (Knot, KNOTD), "named": (Bind, NAMED)}


def value(host: str) -> bytes:
    return json.dumps({"host": host}).encode()


def available() -> list[str]:
    return [kind for kind, (_, binary) in KINDS.items() if missing(binary) is None]


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    reason = missing(KINDS[request.param][1])
    if reason is not None:
        pytest.skip(reason)
    return str(request.param)


async def start_primary(endpoint: str, port: int, notify: Sequence[tuple[str, int]]) -> Resolver:
    config = dataclasses.replace(resolver_config(endpoint, ZONES), listen=("127.0.0.1", port),
                                 allow_transfer=("127.0.0.1/32",), tsig_key=TSIG_FLAG, notify=tuple(notify))
    resolver = Resolver(config)
    await resolver.start()
    assert resolver.mirror is not None
    await asyncio.wait_for(resolver.mirror.ready.wait(), 15)
    await resolver.serials_exact()
    return resolver


def serial_of(resolver: Resolver, zone: str = MAIN) -> int:
    assert resolver.primary is not None
    return resolver.primary.contents[zone].serial


async def ask(address: tuple[str, int], qname: str, qtype: str) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype)
    query.flags &= ~dns.flags.RD
    return await dns.asyncquery.tcp(query, address[0], port=address[1], timeout=3)


def answer_lines(msg: dns.message.Message) -> tuple[str, set[str]]:
    lines = {f"{rrset.name.to_text().lower()} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}"
             for rrset in msg.answer for rd in rrset}
    return dns.rcode.to_text(msg.rcode()), lines


# A name whose only key holds a value that does not decode exists for us (NODATA) but has no record to transfer:
# no zone can hold a name without records (nor names below it), so a secondary answers NXDOMAIN there.
NO_RECORDS = {"onlybad.skydns.test."}
# A CNAME loop: the rcode is the server's choice (BIND says SERVFAIL, Knot and we NOERROR); the chain must agree.
LOOPS = {"loop1.skydns.test.", "loop2.skydns.test."}


def table() -> Iterator[Case]:
    """The default-mode cases a secondary can answer from zone data alone: not ANY (RFC 8482 leaves the answer to
    the server), not a CNAME chain that crosses into another zone (a secondary answers from one zone), not a name
    without records (``NO_RECORDS``)."""
    for case in CASES:
        if case.mode != "default" or case.qtype == "ANY" or case.qname.lower() in NO_RECORDS:
            continue
        zone = next((z for z in sorted(ZONES, key=len, reverse=True) if case.qname.lower().endswith(z)), None)
        if zone is None:
            continue  # outside every zone: REFUSED by us, not the secondaries' business
        if any(" CNAME " in line and not line.split()[-1].endswith(zone) for line in case.answer):
            continue
        yield case


# Secondaries reject a zone without NS records at its apex (as any DNS server does): the zones of the table that
# have none get one, a name outside them.
EXTRA_NS = [("/skydns/test/other/dns/ns/ns1", '{"host":"ns1.ns.dns.skydns.test"}'),
            ("/skydns/arpa/in-addr/10/0/dns/ns/ns1", '{"host":"ns1.ns.dns.skydns.test"}'),
            ("/skydns/example/dns/ns/ns1", '{"host":"ns1.ns.dns.skydns.test"}')]


async def load(etcd: EtcdClient, fixture: Sequence[tuple[str, str]]) -> int:
    revision = 0
    for key, val in fixture:
        revision = (await etcd.put(key.encode(), val.encode())).header.revision
    return revision


async def wait_all(resolver: Resolver, secondary: Secondary, timeout: float = 30.0) -> None:
    for zone in ZONES:
        name = zone.rstrip(".")
        await secondary.wait_serial(name, serial_of(resolver, name), timeout=timeout)


async def answers(address: tuple[str, int], qname: str, qtype: str, want: str) -> bool:
    try:
        msg = await ask(address, qname, qtype)
    except (OSError, dns.exception.DNSException):
        return False
    return any(rd.to_text() == want for rrset in msg.answer for rd in rrset)


async def until(check: object, timeout: float, what: str) -> float:
    """Poll an async check until true; the seconds it took (AssertionError after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s: {what}")


@pytest.mark.timeout(120)
async def test_secondaries_answer_as_we_do_and_follow_each_write_by_ixfr(kind: str, etcd: EtcdClient,
                                                                       etcd_server: LocalEtcd) -> None:
    await load(etcd, [*FIXTURE, *EXTRA_NS])
    port = free_dns_port()
    secondary = KINDS[kind][0](("127.0.0.1", port), ZONES)
    resolver = await start_primary(etcd_server.endpoint, port, [secondary.address])
    secondary.start()
    try:
        await wait_all(resolver, secondary)
        assert secondary.transfers(MAIN)[:1] == ["AXFR"], secondary.log()[-3000:]
        mismatches = []
        cases = list(table())
        for case in cases:
            ours = answer_lines(await ask(resolver.dns_address, case.qname, case.qtype))
            theirs = answer_lines(await ask(secondary.address, case.qname, case.qtype))
            if case.qname.lower() in LOOPS:
                ours, theirs = ours[1], theirs[1]  # type: ignore[assignment]
            if ours != theirs:
                mismatches.append(f"{case.id}: ours {ours}, {kind} {theirs}")
        assert len(cases) > 100
        assert not mismatches, "\n".join(mismatches)
        # etcd write -> NOTIFY -> IXFR: the new data within 2 s, change after change
        writes = [("put", "/skydns/test/skydns/fresh1", "10.0.99.1", "fresh1.skydns.test."),
                  ("put", "/skydns/test/skydns/a", "10.0.99.2", "a.skydns.test."),  # a changed record
                  ("put", "/skydns/test/skydns/fresh2/x", "10.0.99.3", "x.fresh2.skydns.test.")]
        for _, key, host, name in writes:
            await etcd.put(key.encode(), value(host))
            took = await until(lambda: answers(secondary.address, name, "A", host), 10, f"{kind} answers {name}")  # noqa: B023
            assert took < 2.0, f"{kind} answered {name} after {took:.2f}s"
        revision = (await etcd.delete(b"/skydns/test/skydns/fresh1")).header.revision
        await secondary.wait_serial(MAIN, revision & 0xFFFFFFFF, timeout=2.0)
        gone = await ask(secondary.address, "fresh1.skydns.test.", "A")
        assert gone.rcode() == dns.rcode.NXDOMAIN
        later = secondary.transfers(MAIN)[1:]
        assert later and set(later) == {"IXFR"}, secondary.log()[-3000:]
    finally:
        secondary.stop()
        await resolver.stop()


@pytest.mark.timeout(120)
async def test_a_restart_and_a_compaction_never_move_a_secondary_backwards(kind: str, own_etcd: LocalEtcd,
                                                                          own_client: EtcdClient) -> None:
    fixture = [("/skydns/test/skydns/dns/ns/ns1", '{"host":"10.0.12.1"}'),
               ("/skydns/test/skydns/keep", '{"host":"10.0.50.1"}'),
               ("/skydns/test/skydns/goes", '{"host":"10.0.50.2"}')]
    await load(own_client, fixture)
    port = free_dns_port()
    secondary = KINDS[kind][0](("127.0.0.1", port), [MAIN])
    resolver = await start_primary(own_etcd.endpoint, port, [secondary.address])
    secondary.start()
    seen: list[int] = []
    watching = True

    async def watch() -> None:  # every serial the secondary serves, in order
        while watching:
            serial = await secondary.serial(MAIN)
            if serial is not None and (not seen or seen[-1] != serial):
                seen.append(serial)
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        await secondary.wait_serial(MAIN, serial_of(resolver))
        # the zone's latest change is a delete: the serial a fresh load cannot see
        revision = (await own_client.delete(b"/skydns/test/skydns/goes")).header.revision
        await secondary.wait_serial(MAIN, revision)
        await resolver.stop()
        # while we are down: they keep serving; etcd moves on and compacts its history
        assert await answers(secondary.address, "keep.skydns.test.", "A", "10.0.50.1")
        await own_client.put(b"/skydns/test/skydns/new", value("10.0.50.3"))
        revision = (await own_client.delete(b"/skydns/test/skydns/keep")).header.revision
        await own_client.put(b"/elsewhere/x", value("10.9.9.9"))
        await own_client.compact(revision + 1)
        assert await answers(secondary.address, "keep.skydns.test.", "A", "10.0.50.1")
        resolver = await start_primary(own_etcd.endpoint, port, [secondary.address])
        after = serial_of(resolver)
        assert after >= revision, f"restarted at serial {after}, below the last change {revision}"
        await secondary.wait_serial(MAIN, after)
        await until(lambda: answers(secondary.address, "new.skydns.test.", "A", "10.0.50.3"), 10, "caught up")
        assert (await ask(secondary.address, "keep.skydns.test.", "A")).rcode() == dns.rcode.NXDOMAIN
    finally:
        watching = False
        await watcher
        last = await secondary.serial(MAIN)  # the watcher may have slept through the very last move
        if last is not None and seen[-1:] != [last]:
            seen.append(last)
        secondary.stop()
        await resolver.stop()
    assert seen == sorted(seen), f"{kind} served serials {seen}"
    assert len(seen) >= 2 and seen[-1] >= after, seen
