"""Forwarding names outside our zones (``--forward``, ``--allow-recursion``), over real sockets.

The upstream is :class:`FakeUpstream`: a real DNS server (dnspython messages, asyncio UDP and TCP on one loopback
port) that answers from a few name patterns and counts every question it gets - nothing ever leaves the machine.
The resolver side is the real Forwarder in front of the real Answerer, served by the real DnsServer; clients
ask over UDP/TCP from 127.0.0.1 (allowed) or 127.0.0.2 (not allowed). Cache time is a clock the test moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from devtools.localetcd import LocalEtcd, free_port
from resolver.answers import Answerer
from resolver.cli import parse_config
from resolver.forward import Forwarder, ForwardSettings, Upstreams, parse_upstreams, read_resolv_conf
from resolver.forward_cache import ForwardCache, cache_seconds, entry_from_response, parse_question, ttl_offsets
from resolver.server import DnsServer, bind_sockets, free_dns_port
from resolver.store import Store
from skydns.changes import KeyChange
from tests.processes import ROOT, http_status

ZONE = "skydns.test."
ALLOWED = "127.0.0.1"
OUTSIDER = "127.0.0.2"


# -- the fake upstream ---------------------------------------------------------------------------------------

@dataclass
class FakeUpstream:
    """A recursive resolver stand-in on loopback. Names (under example.net.) choose the answer:

    ``ttlN.*`` A 192.0.2.1 with TTL N; ``nx.*`` NXDOMAIN with SOA (TTL 3600, MINIMUM 60); ``nxnosoa.*`` NXDOMAIN
    without SOA; ``nodata.*`` NOERROR, no answer, SOA; ``servfail.*`` SERVFAIL; ``big.*`` TXT of ~4 kB (truncated
    over UDP); ``slow.*`` waits for ``gate``; ``.`` NS (health checks); anything else A 192.0.2.1, TTL 300."""

    host: str = "127.0.0.1"
    port: int = 0
    queries: list[tuple[str, str, str]] = field(default_factory=list)  # (udp|tcp, name, type)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _udp: asyncio.DatagramTransport | None = None
    _tcp: asyncio.base_events.Server | None = None

    async def start(self) -> FakeUpstream:
        udp, tcp = bind_sockets(self.host, self.port)
        self.port = udp.getsockname()[1]
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _FakeUdp(self), sock=udp)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        return self

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def count(self, name: str, transport: str | None = None) -> int:
        return sum(1 for t, n, _ in self.queries if n == name and transport in (None, t))

    async def answer(self, wire: bytes, tcp: bool) -> bytes:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        name = q.name.to_text().lower()
        self.queries.append(("tcp" if tcp else "udp", name, dns.rdatatype.to_text(q.rdtype)))
        self.arrived.set()
        first = name.split(".")[0]
        if first == "slow":
            await self.gate.wait()
        r = dns.message.make_response(query)
        r.flags |= dns.flags.RA
        soa = dns.rrset.from_text("example.net.", 3600, "IN", "SOA", "ns.example.net. h.example.net. 1 2 3 4 60")
        if name == ".":
            r.answer.append(dns.rrset.from_text(".", 3600, "IN", "NS", "a.root-servers.net."))
        elif first == "nx":
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(soa)
        elif first == "nxnosoa":
            r.set_rcode(dns.rcode.NXDOMAIN)
        elif first == "nodata":
            r.authority.append(soa)
        elif first == "servfail":
            r.set_rcode(dns.rcode.SERVFAIL)
        elif first == "big":
            r.answer.append(dns.rrset.from_text(q.name, 300, "IN", "TXT", *[f'"{i:03d}{"x" * 96}"' for i in range(40)]))
        else:
            ttl = int(first[3:]) if first.startswith("ttl") else 300
            r.answer.append(dns.rrset.from_text(q.name, ttl, "IN", "A", "192.0.2.1"))
        if tcp:
            return r.to_wire(max_size=65535)
        try:
            return r.to_wire(max_size=max(query.payload, 512))
        except dns.exception.TooBig:
            r = dns.message.make_response(query)
            r.flags |= dns.flags.TC | dns.flags.RA
            return r.to_wire()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = await self.answer(await reader.readexactly(size), True)
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        writer.close()


class _FakeUdp(asyncio.DatagramProtocol):
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        asyncio.get_running_loop().create_task(self._reply(data, addr))

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.fake.answer(data, False)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = await FakeUpstream().start()
    try:
        yield fake
    finally:
        await fake.close()


def dead_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (a UDP query to it times out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- the resolver side: Forwarder in front of the Answerer, on a real DnsServer ------------------------------

class Clock:
    """The forward cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Served:
    address: tuple[str, int]
    forwarder: Forwarder
    clock: Clock


@contextlib.asynccontextmanager
async def serving(upstreams: list[str], *, allow: tuple[str, ...] = ("127.0.0.1/32",), policy: str = "sequential",
                  timeout: float = 2.0, health_check: float = 0.05, max_fails: int = 2,
                  max_pending: int = 1000) -> AsyncIterator[Served]:
    store = Store("/skydns")
    store.replace(1, [KeyChange("/skydns/test/skydns/www", b'{"host":"10.0.0.1"}', 1)])
    answerer = Answerer(store, [ZONE])
    clock = Clock()
    pool = Upstreams(parse_upstreams(upstreams), policy=policy, timeout=timeout, health_check=health_check,
                     max_fails=max_fails)
    forwarder = Forwarder(answerer.respond, pool, [ZONE], allow, clock=clock, max_pending=max_pending)
    server = DnsServer(forwarder.respond, with_client=True)
    server.bind("127.0.0.1", 0)
    await server.start()
    try:
        yield Served(server.address, forwarder, clock)
    finally:
        await server.close()
        await forwarder.close()


async def ask(served: Served, name: str, rdtype: str = "A", *, tcp: bool = False, source: str = ALLOWED,
              rd: bool = True, **kw: object) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    if not rd:
        q.flags &= ~dns.flags.RD
    host, port = served.address
    if tcp:
        return await dns.asyncquery.tcp(q, host, port=port, timeout=5, source=source)
    return await dns.asyncquery.udp(q, host, port=port, timeout=5, source=source)


def a_records(msg: dns.message.Message) -> list[str]:
    return [rd.to_text() for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset]


# -- tests ---------------------------------------------------------------------------------------------------

async def test_a_name_outside_our_zones_is_forwarded_and_answered_with_ra(upstream: FakeUpstream) -> None:
    async with serving([upstream.address]) as served:
        for tcp in (False, True):
            r = await ask(served, "Www.Example.NET.", tcp=tcp)
            assert r.rcode() == dns.rcode.NOERROR and a_records(r) == ["192.0.2.1"]
            assert r.flags & dns.flags.RA and r.flags & dns.flags.RD and not r.flags & dns.flags.AA
            assert r.question[0].name.to_text() == "Www.Example.NET."  # the client's case kept
            assert r.answer[0].ttl == 300
    assert upstream.count("www.example.net.") == 1  # the TCP question was a cache hit


async def test_cache_hits_do_not_reach_the_upstream(upstream: FakeUpstream) -> None:
    async with serving([upstream.address]) as served:
        first = await ask(served, "hit.example.net.")
        again = [await ask(served, "hit.example.net.") for _ in range(3)]
        other_case = await ask(served, "HIT.example.net.")
        with_edns = await ask(served, "hit.example.net.", use_edns=0, payload=1232)
        assert all(a_records(r) == a_records(first) for r in [*again, other_case, with_edns])
        assert with_edns.edns == 0 and first.edns == -1
        assert upstream.count("hit.example.net.") == 1
        assert served.forwarder.stats.hits >= 5 and served.forwarder.stats.misses == 1
        # DO asks the upstream a different question (DNSSEC records): its own cache entry.
        await ask(served, "hit.example.net.", use_edns=0, want_dnssec=True)
        assert upstream.count("hit.example.net.") == 2


async def test_ttls_count_down_and_an_expired_answer_is_fetched_again(upstream: FakeUpstream) -> None:
    async with serving([upstream.address]) as served:
        assert (await ask(served, "ttl300.example.net.")).answer[0].ttl == 300
        served.clock.advance(100.4)
        assert (await ask(served, "ttl300.example.net.")).answer[0].ttl == 200
        assert upstream.count("ttl300.example.net.") == 1
        served.clock.advance(199)
        assert (await ask(served, "ttl300.example.net.")).answer[0].ttl == 1
        served.clock.advance(1)
        r = await ask(served, "ttl300.example.net.")
        assert r.answer[0].ttl == 300 and upstream.count("ttl300.example.net.") == 2


@dataclass
class NegativeCase:
    name: str
    rcode: int
    cached_for: float | None  # None: not cached at all
    soa_ttl: int | None


NEGATIVE_CASES = [
    NegativeCase("nx.example.net.", dns.rcode.NXDOMAIN, cached_for=60, soa_ttl=60),
    NegativeCase("nodata.example.net.", dns.rcode.NOERROR, cached_for=60, soa_ttl=60),
    NegativeCase("nxnosoa.example.net.", dns.rcode.NXDOMAIN, cached_for=None, soa_ttl=None),
    NegativeCase("servfail.example.net.", dns.rcode.SERVFAIL, cached_for=None, soa_ttl=None),
]


@pytest.mark.parametrize("case", NEGATIVE_CASES, ids=lambda c: c.name)
async def test_negative_answers_are_cached_for_the_soa_minimum_rfc2308(upstream: FakeUpstream,
                                                                       case: NegativeCase) -> None:
    async with serving([upstream.address]) as served:
        r = await ask(served, case.name)
        assert r.rcode() == case.rcode and not r.answer and r.flags & dns.flags.RA
        soa = [rrset for rrset in r.authority if rrset.rdtype == dns.rdatatype.SOA]
        assert (soa[0].ttl if soa else None) == case.soa_ttl
        await ask(served, case.name)
        if case.cached_for is None:
            assert upstream.count(case.name) == 2
            return
        assert upstream.count(case.name) == 1
        served.clock.advance(case.cached_for - 0.5)
        await ask(served, case.name)
        assert upstream.count(case.name) == 1
        served.clock.advance(1)
        await ask(served, case.name)
        assert upstream.count(case.name) == 2


async def test_a_truncated_upstream_answer_is_asked_again_over_tcp(upstream: FakeUpstream) -> None:
    async with serving([upstream.address]) as served:
        r = await ask(served, "big.example.net.", "TXT", tcp=True)
        assert r.rcode() == dns.rcode.NOERROR and len(r.answer[0]) == 40
        assert upstream.count("big.example.net.", "udp") == 1 and upstream.count("big.example.net.", "tcp") == 1
        # Over UDP the answer does not fit our client either: TC, and the client asks us over TCP (a cache hit).
        small = await ask(served, "big.example.net.", "TXT", use_edns=0, payload=1232)
        assert small.flags & dns.flags.TC and not small.answer
        assert upstream.count("big.example.net.") == 2


async def test_failover_when_the_first_upstream_is_down_and_recovery_by_health_check() -> None:
    port = dead_port()
    second = await FakeUpstream().start()
    first: FakeUpstream | None = None
    try:
        async with serving([f"127.0.0.1:{port}", second.address], policy="sequential", timeout=0.3,
                           health_check=0.05, max_fails=2) as served:
            dead = served.forwarder.upstreams.upstreams[0]
            r = await ask(served, "one.example.net.")
            assert a_records(r) == ["192.0.2.1"] and second.count("one.example.net.") == 1
            await wait_for(lambda: dead.down, "the dead upstream to be marked down")
            r = await ask(served, "two.example.net.")  # straight to the second: the first is down
            assert a_records(r) == ["192.0.2.1"] and second.count("two.example.net.") == 1
            first = await FakeUpstream(port=port).start()  # the first comes back on its port
            await wait_for(lambda: not dead.down and dead.fails == 0, "the health check to see it again")
            await ask(served, "three.example.net.")
            assert first.count("three.example.net.") == 1 and second.count("three.example.net.") == 0
    finally:
        await second.close()
        if first is not None:
            await first.close()


async def test_no_upstream_answering_gives_servfail_not_cached() -> None:
    async with serving([f"127.0.0.1:{dead_port()}"], timeout=0.2, max_fails=0) as served:
        r = await ask(served, "lost.example.net.")
        assert r.rcode() == dns.rcode.SERVFAIL and r.flags & dns.flags.RA
        assert len(served.forwarder.cache) == 0


async def test_clients_outside_allow_recursion_are_refused(upstream: FakeUpstream) -> None:
    async with serving([upstream.address]) as served:
        assert a_records(await ask(served, "acl.example.net.")) == ["192.0.2.1"]  # cached now
        for tcp in (False, True):
            r = await ask(served, "acl.example.net.", source=OUTSIDER, tcp=tcp)
            assert r.rcode() == dns.rcode.REFUSED and not r.answer and not r.flags & dns.flags.RA
            # ... while our own zone answers them as always
            r = await ask(served, "www.skydns.test.", source=OUTSIDER, tcp=tcp)
            assert a_records(r) == ["10.0.0.1"]
        assert upstream.count("acl.example.net.") == 1


async def test_without_an_acl_nothing_is_forwarded(upstream: FakeUpstream) -> None:
    async with serving([upstream.address], allow=()) as served:
        assert (await ask(served, "open.example.net.")).rcode() == dns.rcode.REFUSED
    assert upstream.queries == []


async def test_queries_without_rd_are_refused(upstream: FakeUpstream) -> None:
    async with serving([upstream.address]) as served:
        r = await ask(served, "nord.example.net.", rd=False)
        assert r.rcode() == dns.rcode.REFUSED
    assert upstream.queries == []


async def test_our_zones_are_never_forwarded(upstream: FakeUpstream) -> None:
    async with serving([upstream.address]) as served:
        r = await ask(served, "www.skydns.test.")
        assert a_records(r) == ["10.0.0.1"] and r.flags & dns.flags.AA
        r = await ask(served, "Missing.SkyDNS.test.")
        assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA
        r = await ask(served, "skydns.test.", "AXFR", tcp=True)
        assert r.rcode() == dns.rcode.REFUSED
    assert upstream.queries == []


async def test_identical_questions_in_flight_share_one_upstream_query(upstream: FakeUpstream) -> None:
    async with serving([upstream.address], max_pending=1) as served:
        respond = served.forwarder.respond
        queries = [dns.message.make_query("slow.example.net.", "A") for _ in range(3)]
        replies = [respond(q.to_wire(), tcp=False, client=(ALLOWED, 5000 + i)) for i, q in enumerate(queries)]
        assert all(isinstance(r, asyncio.Future) for r in replies)
        # a different question while the pending one holds the only slot: SERVFAIL at once
        other = respond(dns.message.make_query("other.example.net.", "A").to_wire(), tcp=False,
                        client=(ALLOWED, 6000))
        assert isinstance(other, bytes) and dns.message.from_wire(other).rcode() == dns.rcode.SERVFAIL
        await asyncio.wait_for(upstream.arrived.wait(), 5)
        upstream.gate.set()
        answers = [dns.message.from_wire(await asyncio.wait_for(r, 5)) for r in replies]  # type: ignore[arg-type]
        assert [a.id for a in answers] == [q.id for q in queries]
        assert all(a_records(a) == ["192.0.2.1"] for a in answers)
        assert upstream.count("slow.example.net.") == 1


async def wait_for(check: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# -- the pure parts --------------------------------------------------------------------------------------------

def test_cache_seconds_follow_rfc2308() -> None:
    def response(rcode: int, answer_ttl: int | None, soa: tuple[int, int] | None) -> dns.message.Message:
        r = dns.message.make_response(dns.message.make_query("x.example.net.", "A"))
        r.set_rcode(rcode)
        if answer_ttl is not None:
            r.answer.append(dns.rrset.from_text("x.example.net.", answer_ttl, "IN", "A", "192.0.2.1"))
        if soa is not None:
            r.authority.append(dns.rrset.from_text("example.net.", soa[0], "IN", "SOA",
                                                   f"ns.example.net. h.example.net. 1 2 3 4 {soa[1]}"))
        return r

    assert cache_seconds(response(dns.rcode.NOERROR, 300, None)) == 300
    assert cache_seconds(response(dns.rcode.NOERROR, 86400, None)) == 3600  # capped
    assert cache_seconds(response(dns.rcode.NOERROR, 0, None)) == 0
    assert cache_seconds(response(dns.rcode.NXDOMAIN, None, (3600, 60))) == 60  # SOA MINIMUM
    assert cache_seconds(response(dns.rcode.NXDOMAIN, None, (30, 600))) == 30  # SOA TTL
    assert cache_seconds(response(dns.rcode.NOERROR, None, (7200, 7200))) == 1800  # negative cap
    assert cache_seconds(response(dns.rcode.NXDOMAIN, None, None)) == 0
    assert cache_seconds(response(dns.rcode.NOERROR, None, None)) == 0
    assert cache_seconds(response(dns.rcode.SERVFAIL, None, (3600, 60))) == 0


def test_ttl_offsets_find_every_record_ttl() -> None:
    r = dns.message.make_response(dns.message.make_query("x.example.net.", "A"))
    r.answer.append(dns.rrset.from_text("x.example.net.", 111, "IN", "A", "192.0.2.1", "192.0.2.2"))
    r.authority.append(dns.rrset.from_text("example.net.", 222, "IN", "NS", "ns.example.net."))
    r.additional.append(dns.rrset.from_text("ns.example.net.", 333, "IN", "A", "192.0.2.53"))
    wire = r.to_wire()
    qend = 12 + len(dns.name.from_text("x.example.net.").to_wire())  # type: ignore[arg-type]
    ttls = [struct.unpack_from("!I", wire, off)[0] for off in ttl_offsets(wire, qend)]
    assert ttls == [111, 111, 222, 333]
    with pytest.raises(ValueError):
        ttl_offsets(wire[:-1], qend)


def test_parse_question_takes_plain_rd_queries_only() -> None:
    q = dns.message.make_query("a.example.net.", "AAAA", use_edns=0, payload=4096, want_dnssec=True)
    parsed = parse_question(q.to_wire())
    assert parsed is not None and parsed.edns and parsed.do and parsed.payload == 4096
    assert parsed.type_class == b"\x00\x1c\x00\x01"
    q.flags &= ~dns.flags.RD
    assert parse_question(q.to_wire()) is None
    two = dns.message.make_query("a.example.net.", "A")
    two.question.append(two.question[0])
    assert parse_question(two.to_wire()) is None
    assert parse_question(dns.message.make_query("a.example.net.", "A").to_wire() + b"x") is None


def test_the_cache_is_bounded() -> None:
    cache = ForwardCache(size=16)
    r = dns.message.make_response(dns.message.make_query("x.example.net.", "A"))
    r.answer.append(dns.rrset.from_text("x.example.net.", 300, "IN", "A", "192.0.2.1"))
    entries = []
    for i in range(100):
        entry, _ = entry_from_response(dns.message.from_wire(r.to_wire()), b"\x01x\x07example\x03net\x00", 0.0)
        cache.put(i.to_bytes(4, "big"), entry)
        entries.append(entry)
        assert len(cache) <= 16
    assert cache.get((99).to_bytes(4, "big"), 1.0) is entries[-1]  # the newest stay
    assert cache.get((0).to_bytes(4, "big"), 1.0) is None and not entries[0].valid  # the oldest went
    assert cache.get((99).to_bytes(4, "big"), 300.0) is None  # expired


# -- configuration -------------------------------------------------------------------------------------------

def test_upstreams_from_flags_and_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# a comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver ::1\noptions ndots:5\n")
    assert parse_upstreams(["10.0.0.1,10.0.0.2:5300", "[2001:db8::1]:5353", str(conf), "10.0.0.1"]) == (
        ("10.0.0.1", 53), ("10.0.0.2", 5300), ("2001:db8::1", 5353), ("192.0.2.53", 53), ("::1", 53))
    empty = tmp_path / "empty.conf"
    empty.write_text("search example.org\n")
    with pytest.raises(ValueError, match="no nameserver lines"):
        read_resolv_conf(str(empty))
    with pytest.raises(ValueError, match="cannot read"):
        read_resolv_conf(str(tmp_path / "missing.conf"))


@dataclass
class FlagCase:
    args: list[str]
    error: str | None = None
    upstreams: tuple[tuple[str, int], ...] = ()
    allow: tuple[str, ...] = ()


FLAG_CASES = [
    FlagCase([], upstreams=()),
    FlagCase(["--forward", "127.0.0.1:5300", "--allow-recursion", "10.0.0.0/8,127.0.0.1"],
             upstreams=(("127.0.0.1", 5300),), allow=("10.0.0.0/8", "127.0.0.1/32")),
    FlagCase(["--forward", "dns.google"], error="must be an IP address"),
    FlagCase(["--forward", "127.0.0.1:99999"], error="bad port"),
    FlagCase(["--allow-recursion", "10.0.0.0/8"], error="--allow-recursion needs --forward"),
    FlagCase(["--forward", "127.0.0.1:5300", "--allow-recursion", "ten"], error="is not an address or CIDR"),
    FlagCase(["--forward", "127.0.0.1:5353"], error="forwarding loop"),
    FlagCase(["--forward", "127.0.0.1", "--forward-policy", "fastest"], error="invalid choice"),
    FlagCase(["--forward", "127.0.0.1", "--forward-timeout", "soon"], error="not a duration"),
    FlagCase(["--forward", "127.0.0.1", "--forward-max-fails", "-1"], error="--forward-max-fails"),
]


@pytest.mark.parametrize("case", FLAG_CASES, ids=lambda c: " ".join(c.args) or "none")
def test_forward_flags(case: FlagCase, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--zone", ZONE, "--listen", "127.0.0.1:5353", *case.args]
    if case.error is not None:
        with pytest.raises(SystemExit) as exit_info:
            parse_config(argv, env={})
        assert exit_info.value.code == 2 and case.error in capsys.readouterr().err
        return
    config = parse_config(argv, env={})
    if not case.upstreams:
        assert config.forward is None
        return
    assert config.forward == ForwardSettings(case.upstreams, case.allow)


def test_forward_flags_from_the_environment() -> None:
    config = parse_config(["--zone", ZONE], env={"DNSSYNC_RESOLVER_FORWARD": "192.0.2.1,192.0.2.2:5300",
                                                 "DNSSYNC_RESOLVER_ALLOW_RECURSION": "127.0.0.0/8",
                                                 "DNSSYNC_RESOLVER_FORWARD_TIMEOUT": "500ms"})
    assert config.forward is not None and config.forward.upstreams == (("192.0.2.1", 53), ("192.0.2.2", 5300))
    assert config.forward.allow == ("127.0.0.0/8",) and config.forward.timeout == 0.5


# -- the real process, with dig and a resolv.conf ---------------------------------------------------------------

@contextlib.contextmanager
def resolver_process(args: list[str], log: Path) -> Iterator[tuple[int, int]]:
    import subprocess
    dns_port, http_port = free_dns_port(), free_port()
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "resolver", "--zone", ZONE, "--listen",
                                 f"127.0.0.1:{dns_port}", "--http-listen", f"127.0.0.1:{http_port}", *args],
                                stderr=err, stdout=subprocess.DEVNULL, cwd=ROOT)
        try:
            yield dns_port, http_port
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_ready(http_port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError):
            if (await asyncio.to_thread(http_status, http_port, "/readyz"))[0] == 200:
                return
        assert time.monotonic() < deadline, "the resolver never became ready"
        await asyncio.sleep(0.05)


async def dig(port: int, name: str) -> str:
    proc = await asyncio.create_subprocess_exec("dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=5",
                                                name, "A", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.decode()


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (make test installs it)")
async def test_the_resolver_process_forwards_for_dig_through_a_resolv_conf(etcd_server: LocalEtcd,
                                                                           tmp_path: Path) -> None:
    host = "127.0.0.86"  # resolv.conf has no ports: the fake upstream needs port 53 on a loopback address
    try:
        fake = await FakeUpstream(host=host, port=53).start()
    except OSError as exc:
        pytest.skip(f"cannot bind {host}:53 for the fake upstream: {exc}")
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {host}\n")
    log = tmp_path / "resolver.log"
    try:
        with resolver_process(["--etcd-endpoints", etcd_server.endpoint, "--forward", str(conf),
                               "--allow-recursion", "127.0.0.1/32", "--log-queries", "--log-format", "json"],
                              log) as (dns_port, http_port):
            await wait_ready(http_port)
            out = await dig(dns_port, "dig.example.net.")
            assert "status: NOERROR" in out and "192.0.2.1" in out, out
            flags = out.split("flags:")[1].split(";")[0].split()
            assert "ra" in flags and "rd" in flags and "aa" not in flags, out
            assert fake.count("dig.example.net.") == 1
    finally:
        await fake.close()
    lines = [line for line in log.read_text().splitlines() if '"dns_query"' in line]
    assert any('"name": "dig.example.net."' in line and '"rcode": "NOERROR"' in line for line in lines), lines
