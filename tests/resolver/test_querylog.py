"""The query log (``--log-queries``): one line per query with what the client got, sampled above a rate.

Lines go to a recording logger (the structlog call the log makes, kept as event + fields); the queries go over
real UDP and TCP to the real answerer behind a real DnsServer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.rcode
import pytest

from resolver.answers import Answerer
from resolver.cli import parse_config
from resolver.querylog import QueryLog, describe_query, reply_rcode
from resolver.server import DnsServer
from resolver.store import Store
from skydns.changes import KeyChange

ZONE = "skydns.test."


@dataclass
class Recorder:
    """Collects log calls: ``(event, fields)``."""

    lines: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [f for e, f in self.lines if e == name]


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def answerer() -> Answerer:
    store = Store("/skydns")
    store.replace(1, [KeyChange("/skydns/test/skydns/www", b'{"host":"10.0.0.1"}', 1)])
    return Answerer(store, [ZONE])


@contextlib.asynccontextmanager
async def logged_server(rate: int = 100) -> AsyncIterator[tuple[tuple[str, int], Recorder]]:
    recorder = Recorder()
    server = DnsServer(QueryLog(answerer().respond, rate=rate, logger=recorder).respond, with_client=True)
    server.bind("127.0.0.1", 0)
    await server.start()
    try:
        yield server.address, recorder
    finally:
        await server.close()


async def udp_exchange(address: tuple[str, int], wire: bytes) -> tuple[bytes, int]:
    """Send one datagram from a socket of our own; the reply and our port."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        await loop.sock_sendto(s, wire, address)
        reply = await asyncio.wait_for(loop.sock_recv(s, 65535), 5)
        return reply, s.getsockname()[1]


async def tcp_exchange(address: tuple[str, int], wire: bytes) -> tuple[bytes, int]:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(struct.pack("!H", len(wire)) + wire)
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(size), writer.get_extra_info("sockname")[1]
    finally:
        writer.close()


@dataclass
class LineCase:
    name: str
    rdtype: str
    tcp: bool
    rcode: str


LINE_CASES = [
    LineCase("www.skydns.test.", "A", tcp=False, rcode="NOERROR"),
    LineCase("Missing.skydns.test.", "AAAA", tcp=False, rcode="NXDOMAIN"),
    LineCase("www.skydns.test.", "TXT", tcp=True, rcode="NOERROR"),
    LineCase("www.example.net.", "A", tcp=True, rcode="REFUSED"),
]


@pytest.mark.parametrize("case", LINE_CASES, ids=lambda c: f"{c.name} {c.rdtype} {'tcp' if c.tcp else 'udp'}")
async def test_one_line_per_query_with_what_the_client_got(case: LineCase) -> None:
    async with logged_server() as (address, recorder):
        wire = dns.message.make_query(case.name, case.rdtype).to_wire()
        reply, port = await (tcp_exchange if case.tcp else udp_exchange)(address, wire)
        (line,) = recorder.events("dns_query")
        assert line["client"] == "127.0.0.1" and line["port"] == port
        assert line["proto"] == ("tcp" if case.tcp else "udp")
        assert (line["name"], line["type"], line["rcode"]) == (case.name, case.rdtype, case.rcode)
        assert line["size"] == len(reply) and dns.rcode.to_text(dns.message.from_wire(reply).rcode()) == case.rcode
        assert isinstance(line["duration"], float) and 0 <= line["duration"] < 5


async def test_lines_above_the_rate_are_counted_not_written() -> None:
    recorder, clock = Recorder(), Clock()
    log = QueryLog(answerer().respond, rate=5, logger=recorder, clock=clock)
    wire = dns.message.make_query("www.skydns.test.", "A").to_wire()
    for _ in range(20):
        assert log.respond(wire, tcp=False, client=("127.0.0.1", 4000)) is not None  # every query is answered
    assert len(recorder.events("dns_query")) == 5 and not recorder.events("dns_queries_not_logged")
    clock.now += 1
    log.respond(wire, tcp=False, client=("127.0.0.1", 4000))
    assert recorder.events("dns_queries_not_logged") == [{"skipped": 15, "rate": 5}]
    assert len(recorder.events("dns_query")) == 6  # a new second: lines again


async def test_an_answer_that_comes_later_is_logged_when_it_is_sent() -> None:
    recorder = Recorder()
    pending: list[asyncio.Future[bytes | None]] = []

    def later(query: bytes, *, tcp: bool) -> asyncio.Future[bytes | None]:
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        pending.append(future)
        return future

    log = QueryLog(later, logger=recorder)
    query = dns.message.make_query("fwd.example.net.", "MX")
    reply = log.respond(query.to_wire(), tcp=True, client=("127.0.0.1", 4001))
    assert isinstance(reply, asyncio.Future) and not recorder.lines
    answer = dns.message.make_response(query)
    answer.set_rcode(dns.rcode.NXDOMAIN)
    sent = asyncio.Event()
    reply.add_done_callback(lambda _: sent.set())  # as the server does: after the log's own callback
    pending[0].set_result(answer.to_wire())
    await asyncio.wait_for(sent.wait(), 5)
    (line,) = recorder.events("dns_query")
    assert (line["name"], line["type"], line["rcode"], line["size"]) == ("fwd.example.net.", "MX", "NXDOMAIN",
                                                                         len(answer.to_wire()))


def test_the_rcode_includes_the_extended_bits_of_the_opt() -> None:
    q = dns.message.make_query("www.skydns.test.", "A", use_edns=1)
    reply = answerer().respond(q.to_wire(), tcp=False)
    assert reply is not None and reply_rcode(reply) == "BADVERS"


def test_unreadable_queries_are_logged_as_question_marks() -> None:
    assert describe_query(b"\x00" * 12 + b"\xc0\x0c") == ("?", "?")
    assert describe_query(b"\x00" * 12 + b"\x00") == (".", "?")


@dataclass
class FlagCase:
    argv: list[str]
    env: dict[str, str]
    log_queries: bool | None  # None: a usage error
    rate: int = 100


FLAG_CASES = [
    FlagCase([], {}, log_queries=False),
    FlagCase(["--log-queries"], {}, log_queries=True),
    FlagCase(["--log-queries", "--log-queries-rate", "1000"], {}, log_queries=True, rate=1000),
    FlagCase([], {"DNSSYNC_RESOLVER_LOG_QUERIES": "yes", "DNSSYNC_RESOLVER_LOG_QUERIES_RATE": "7"},
             log_queries=True, rate=7),
    FlagCase(["--no-log-queries"], {"DNSSYNC_RESOLVER_LOG_QUERIES": "true"}, log_queries=False),
    FlagCase([], {"DNSSYNC_RESOLVER_LOG_QUERIES": "maybe"}, log_queries=None),
    FlagCase(["--log-queries-rate", "0"], {}, log_queries=None),
]


@pytest.mark.parametrize("case", FLAG_CASES, ids=lambda c: " ".join(c.argv) + str(c.env))
def test_log_queries_flags(case: FlagCase) -> None:
    argv = ["--zone", ZONE, *case.argv]
    if case.log_queries is None:
        with pytest.raises(SystemExit):
            parse_config(argv, env=case.env)
        return
    config = parse_config(argv, env=case.env)
    assert (config.log_queries, config.log_queries_rate) == (case.log_queries, case.rate)
