"""The DNS transport on real sockets: answers over UDP and TCP, and no input stops it answering others.

The server runs the real store and answerer (loaded directly, no etcd needed here) on uvloop in a thread of its
own, so these tests talk to it with plain blocking sockets, the way a client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from resolver.answers import Answerer
from resolver.server import DnsServer, servfail
from resolver.store import Store
from skydns.changes import KeyChange
from skydns.settings import parse_hostport
from tests.resolver.test_forward import FakeUpstream, ask, serving

ZONE = "skydns.test."


@dataclass
class Running:
    address: tuple[str, int]
    server: DnsServer


@contextlib.contextmanager
def threaded_server(**kw: float) -> Iterator[Running]:
    """A DnsServer (real answerer over a loaded store) on uvloop in a background thread."""
    store = Store("/skydns")
    store.replace(5, [KeyChange("/skydns/test/skydns/www", b'{"host":"10.0.0.1"}', 5),
                      KeyChange("/skydns/test/skydns/big/" + "x" * 3, b'{"text":"' + b"t" * 200 + b'"}', 5)]
                  + [KeyChange(f"/skydns/test/skydns/many/n{i}", f'{{"host":"10.0.1.{i}"}}'.encode(), 5)
                     for i in range(60)])
    answerer = Answerer(store, [ZONE])
    server = DnsServer(answerer.respond, **kw)  # type: ignore[arg-type]
    server.bind("127.0.0.1", 0)
    started, stop = threading.Event(), threading.Event()
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    async def main() -> None:
        holder["loop"] = asyncio.get_running_loop()
        await server.start()
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
        await server.close()

    thread = threading.Thread(target=uvloop.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield Running(server.address, server)
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture(scope="module")
def dns_server() -> Iterator[Running]:
    with threaded_server(idle_timeout=0.5, max_connections=20) as running:
        yield running


def make_query(name: str = "www.skydns.test.", rdtype: str = "A", **kw: object) -> dns.message.QueryMessage:
    return dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]


def udp_ask(address: tuple[str, int], wire: bytes, timeout: float = 2.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, address)
        return s.recv(65535)


def recv_exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def tcp_read(s: socket.socket) -> bytes:
    (size,) = struct.unpack("!H", recv_exact(s, 2))
    return recv_exact(s, size)


def framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def assert_answers(address: tuple[str, int]) -> None:
    """The server still answers a good query, over UDP and over TCP."""
    q = make_query()
    r = dns.message.from_wire(udp_ask(address, q.to_wire()))
    assert r.id == q.id and [rd.to_text() for rd in r.answer[0]] == ["10.0.0.1"]
    with socket.create_connection(address, timeout=2) as s:
        s.sendall(framed(q.to_wire()))
        r = dns.message.from_wire(tcp_read(s))
        assert r.id == q.id and [rd.to_text() for rd in r.answer[0]] == ["10.0.0.1"]


def closed_by_server(s: socket.socket, timeout: float) -> bool:
    """True when the server closes ``s`` within ``timeout`` (EOF or reset), False when it stays open."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_udp_and_tcp_answer(dns_server: Running) -> None:
    assert_answers(dns_server.address)


def test_tcp_pipelined_queries_answered_in_order_on_one_connection(dns_server: Running) -> None:
    queries = [make_query(n) for n in ("www.skydns.test.", "nothing.skydns.test.", "www.skydns.test.")]
    with socket.create_connection(dns_server.address, timeout=2) as s:
        s.sendall(b"".join(framed(q.to_wire()) for q in queries))
        replies = [dns.message.from_wire(tcp_read(s)) for _ in queries]
        # the connection stays usable after a pipeline, and a query split over several writes is reassembled
        wire = framed(make_query().to_wire())
        for i in range(0, len(wire), 7):
            s.sendall(wire[i:i + 7])
        assert dns.message.from_wire(tcp_read(s)).answer
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [r.rcode() for r in replies] == [dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.NOERROR]


def test_udp_answer_too_big_is_truncated_and_complete_over_tcp(dns_server: Running) -> None:
    q = make_query("many.skydns.test.")
    r = dns.message.from_wire(udp_ask(dns_server.address, q.to_wire()))
    assert r.flags & dns.flags.TC
    with socket.create_connection(dns_server.address, timeout=2) as s:
        s.sendall(framed(q.to_wire()))
        full = dns.message.from_wire(tcp_read(s))
    assert not full.flags & dns.flags.TC and len(full.answer[0]) == 60


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(packet=st.binary(max_size=600))
def test_random_udp_packets_never_stop_the_server(dns_server: Running, packet: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(packet, dns_server.address)
    q = make_query()
    assert dns.message.from_wire(udp_ask(dns_server.address, q.to_wire())).id == q.id


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.binary(min_size=1, max_size=400))
def test_random_tcp_streams_never_stop_the_server(dns_server: Running, stream: bytes) -> None:
    with socket.create_connection(dns_server.address, timeout=2) as s:
        s.sendall(stream)
        s.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while s.recv(4096):  # whatever the server makes of it, it ends the connection
                pass
    assert_answers(dns_server.address)


def test_mutated_queries_get_an_answer_or_silence_never_a_crash(dns_server: Running) -> None:
    rng = random.Random(1234)
    base = make_query("www.skydns.test.", "A", use_edns=0).to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(500):
            wire = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                wire[rng.randrange(len(wire))] = rng.randrange(256)
            s.sendto(bytes(wire[: rng.randint(0, len(wire))] if rng.random() < 0.2 else wire), dns_server.address)
    assert_answers(dns_server.address)


@pytest.mark.timeout(30)
def test_half_open_and_silent_connections_are_closed_at_the_idle_timeout(dns_server: Running) -> None:
    conns = [socket.create_connection(dns_server.address, timeout=2) for _ in range(5)]
    try:
        conns[0].sendall(b"\x00\x40abc")  # a length prefix and part of a message, then nothing
        conns[1].sendall(framed(make_query().to_wire()))
        assert tcp_read(conns[1])
        conns[2].shutdown(socket.SHUT_WR)  # half-closed with nothing sent
        assert_answers(dns_server.address)  # others are served meanwhile
        started = time.monotonic()
        assert all(closed_by_server(c, 5) for c in conns)
        assert time.monotonic() - started < 3
    finally:
        for c in conns:
            c.close()


@pytest.mark.timeout(30)
def test_a_slowloris_is_closed_although_it_keeps_sending(dns_server: Running) -> None:
    wire = framed(make_query().to_wire())
    with socket.create_connection(dns_server.address, timeout=2) as s:
        s.settimeout(0.1)
        started = time.monotonic()
        closed = False
        for byte in wire * 20:  # one byte every 100 ms: a query never completes within the 0.5 s idle timeout
            try:
                s.sendall(bytes([byte]))
                if s.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
        assert closed and time.monotonic() - started < 5
    assert_answers(dns_server.address)


@pytest.mark.timeout(30)
def test_connections_over_the_cap_are_closed_at_once() -> None:
    with threaded_server(idle_timeout=30, max_connections=4) as running:
        conns = [socket.create_connection(running.address, timeout=2) for _ in range(4)]
        try:
            for c in conns:  # make sure each is accepted and counted before going over the cap
                c.sendall(framed(make_query().to_wire()))
                assert tcp_read(c)
            with socket.create_connection(running.address, timeout=2) as extra:
                assert closed_by_server(extra, 2)
            # UDP is not affected, and a slot freed is usable again
            q = make_query()
            assert dns.message.from_wire(udp_ask(running.address, q.to_wire())).id == q.id
            conns.pop().close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                with socket.create_connection(running.address, timeout=2) as again:
                    again.sendall(framed(q.to_wire()))
                    try:
                        assert dns.message.from_wire(tcp_read(again)).id == q.id
                        break
                    except ConnectionError:
                        continue  # the server had not yet seen the close of the freed connection
            else:
                raise AssertionError("a freed connection slot was never reusable")
        finally:
            for c in conns:
                c.close()


def test_bad_frame_lengths_close_only_that_connection(dns_server: Running) -> None:
    with socket.create_connection(dns_server.address, timeout=2) as s:
        s.sendall(b"\x00\x05hello")  # shorter than a DNS header: cannot be a message
        assert closed_by_server(s, 2)
    assert_answers(dns_server.address)


def test_servfail_before_the_first_load_keeps_id_question_and_rd() -> None:
    q = make_query("www.skydns.test.", "AAAA")
    r = dns.message.from_wire(servfail(q.to_wire()))  # type: ignore[arg-type]
    assert r.id == q.id and r.rcode() == dns.rcode.SERVFAIL and r.question == q.question
    assert r.flags & dns.flags.QR and r.flags & dns.flags.RD and not r.flags & dns.flags.RA
    assert servfail(b"\x00" * 5) is None
    assert servfail(dns.message.make_response(q).to_wire()) is None  # never answer a response


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5353", ("127.0.0.1", 5353)), ("[::1]:53", ("::1", 53)), ("localhost:0", ("localhost", 0)),
])
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "::1:53", "[::1]53", ":53", "host:99999", "host:x"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="--listen"):
        parse_hostport(text)


def test_ipv6_listen_serves_udp_and_tcp() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = DnsServer(lambda q, tcp: servfail(q))
    host, port = server.bind("::1", 0)
    assert host == "::1" and port > 0

    async def serve_once() -> bytes:
        await server.start()
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            await loop.sock_sendto(s, make_query().to_wire(), ("::1", port))
            data = await asyncio.wait_for(loop.sock_recv(s, 512), 2)
        await server.close()
        return data

    assert dns.message.from_wire(asyncio.run(serve_once())).rcode() == dns.rcode.SERVFAIL


# -- metrics: answer durations and responses counted once ---------------------------------------------------------


def exported(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def answers_timed(transport: str, answered: str = "at_once") -> tuple[float, float, float]:
    """(answers, answers in the +Inf bucket, seconds in total) of ``transport`` as /metrics exports them."""
    name = "dnssync_resolver_answer_duration_seconds"
    labels = {"transport": transport, "answered": answered}
    return (exported(f"{name}_count", labels), exported(f"{name}_bucket", {**labels, "le": "+Inf"}),
            exported(f"{name}_sum", labels))


def responses_sent() -> dict[tuple[str, str], float]:
    """``dnssync_resolver_responses_total`` by (rcode, source)."""
    return {(s.labels["rcode"], s.labels["source"]): s.value for family in REGISTRY.collect()
            if family.name == "dnssync_resolver_responses" for s in family.samples if s.name.endswith("_total")}


def sent_since(before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    after = responses_sent()
    return {key: n - before.get(key, 0.0) for key, n in after.items() if n != before.get(key, 0.0)}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """The server thread counts right after handing the answer to the socket: poll for it, with a deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_a_udp_and_a_tcp_answer_are_each_timed_under_their_transport(dns_server: Running) -> None:
    udp0, tcp0 = answers_timed("udp"), answers_timed("tcp")
    assert dns.message.from_wire(udp_ask(dns_server.address, make_query().to_wire())).rcode() == dns.rcode.NOERROR
    wait_for(lambda: answers_timed("udp")[0] == udp0[0] + 1, "the UDP answer timed")
    udp1 = answers_timed("udp")
    assert udp1[1] == udp0[1] + 1 and udp1[2] > udp0[2]
    assert answers_timed("tcp") == tcp0
    with socket.create_connection(dns_server.address, timeout=2) as s:
        s.sendall(framed(make_query().to_wire()))
        assert dns.message.from_wire(tcp_read(s)).rcode() == dns.rcode.NOERROR
    wait_for(lambda: answers_timed("tcp")[0] == tcp0[0] + 1, "the TCP answer timed")
    tcp1 = answers_timed("tcp")
    assert tcp1[1] == tcp0[1] + 1 and tcp1[2] > tcp0[2]
    assert answers_timed("udp") == udp1


async def test_a_servfail_before_the_first_load_is_counted_once_and_timed() -> None:
    server = DnsServer(servfail)
    _, port = server.bind("127.0.0.1", 0)
    await server.start()
    try:
        before, timed = responses_sent(), answers_timed("udp")[0]
        reply = await dns.asyncquery.udp(make_query(), "127.0.0.1", port=port, timeout=2)
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert sent_since(before) == {("SERVFAIL", "loading"): 1}
        assert answers_timed("udp")[0] == timed + 1
    finally:
        await server.close()


@dataclass(frozen=True)
class CountCase:
    what: str
    name: str
    tcp: bool
    counted: tuple[str, str]  # (rcode, source) counted once for the answer
    answered: str  # the histogram's answered label: "later" when it waited for the upstream


COUNT_CASES = [
    CountCase("forwarded, fetched upstream", "first.example.net.", False, ("NOERROR", "forward"), "later"),
    CountCase("forwarded, from the forward cache", "first.example.net.", False, ("NOERROR", "forward"), "at_once"),
    CountCase("forwarded over TCP, cached", "first.example.net.", True, ("NOERROR", "forward"), "at_once"),
    CountCase("forwarded NXDOMAIN", "nx.example.net.", False, ("NXDOMAIN", "forward"), "later"),
    CountCase("upstream SERVFAIL over TCP", "servfail.example.net.", True, ("SERVFAIL", "forward"), "later"),
    CountCase("our records: not forwarded", "www.skydns.test.", False, ("NOERROR", "records"), "at_once"),
]


async def test_every_forwarded_answer_is_counted_once_as_forward_and_timed() -> None:
    upstream = await FakeUpstream().start()
    try:
        async with serving([upstream.address]) as served:
            for case in COUNT_CASES:
                transport = "tcp" if case.tcp else "udp"
                before = responses_sent()
                timed = {answered: answers_timed(transport, answered)[0] for answered in ("at_once", "later")}
                await ask(served, case.name, tcp=case.tcp)
                assert sent_since(before) == {case.counted: 1}, case.what
                now = {answered: answers_timed(transport, answered)[0] for answered in ("at_once", "later")}
                assert now == {**timed, case.answered: timed[case.answered] + 1}, case.what
    finally:
        await upstream.close()
