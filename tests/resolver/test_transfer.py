"""Zone transfers from the running resolver (real etcd, real sockets), checked on the wire with ``dig``, ``kdig``
and dnspython: AXFR streamed in many messages with the SOA first and last, IXFR differences and their fallbacks,
IXFR over UDP, who is refused (and that nothing leaks to them), TSIG, NOTIFY and signed SOA checks."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import shutil
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest
from aetcd import transactions

from devtools.localetcd import LocalEtcd, free_port
from resolver.cli import Resolver, parse_config
from resolver.primary import Primary
from resolver.server import free_dns_port
from resolver.zonecontent import ZoneContent
from skydns.etcd import EtcdClient
from tests.processes import Process, http_status, wait_until
from tests.resolver.conftest import eventually, resolver_config
from tests.resolver.secondaries import TSIG_FLAG, TSIG_NAME, TSIG_SECRET

ZONE = "xfr.test."
PATH = "/skydns/test/xfr"
KEYRING = dns.tsigkeyring.from_text({TSIG_NAME: ("hmac-sha256", TSIG_SECRET)})
WRONG = dns.tsigkeyring.from_text({TSIG_NAME: ("hmac-sha256", "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC0wMDAwMDA=")})


def value(host: str, **extra: object) -> bytes:
    return json.dumps({"host": host, **extra}).encode()


async def start(endpoint: str, **kw: object) -> Resolver:
    config = dataclasses.replace(resolver_config(endpoint, [ZONE]), **kw)  # type: ignore[arg-type]
    resolver = Resolver(config)
    await resolver.start()
    assert resolver.mirror is not None
    await asyncio.wait_for(resolver.mirror.ready.wait(), 15)
    await resolver.serials_exact()
    if resolver.primary is not None:
        await eventually(lambda: _ready(resolver), what="zone built and serials exact")
    return resolver


async def _ready(resolver: Resolver) -> bool:
    primary = resolver.primary
    return primary is not None and primary.exact and all(c.ready for c in primary.contents.values())


def content(resolver: Resolver) -> ZoneContent:
    assert isinstance(resolver.primary, Primary)
    return resolver.primary.contents[ZONE.rstrip(".")]


async def settled(resolver: Resolver, revision: int) -> None:
    async def caught_up() -> bool:
        return content(resolver).serial >= revision
    await eventually(caught_up, what=f"serial {revision}")


@pytest.fixture
async def primary(etcd: EtcdClient, etcd_server: LocalEtcd) -> AsyncIterator[Resolver]:
    await etcd.put(f"{PATH}/www/1a".encode(), value("10.1.0.1", targetstrip=1))
    await etcd.put(f"{PATH}/www/2b".encode(), value("10.1.0.2", targetstrip=1))
    await etcd.put(f"{PATH}/dns/ns/ns1".encode(), value("10.1.0.53"))
    await etcd.put(f"{PATH}/alias".encode(), value("www.xfr.test"))
    await etcd.put(f"{PATH}/txt".encode(), json.dumps({"text": "hello"}).encode())
    resolver = await start(etcd_server.endpoint, allow_transfer=("127.0.0.1/32",))
    try:
        yield resolver
    finally:
        await resolver.stop()


async def axfr_zone(host: str, port: int, **kw: Any) -> dns.zone.Zone:
    """The zone as dnspython's AXFR client receives it (in a thread: the resolver runs in this loop)."""
    return await asyncio.to_thread(lambda: dns.zone.from_xfr(dns.query.xfr(host, ZONE, port=port, timeout=10, **kw)))


def run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout


def ixfr_deltas(records: list[list[str]]) -> list[tuple[int, int, set[tuple[str, ...]], set[tuple[str, ...]]]]:
    """An incremental IXFR answer as (old serial, new serial, deleted, added) per delta (RFC 1995 §4)."""
    body = records[1:-1]
    deltas: list[tuple[int, int, set[tuple[str, ...]], set[tuple[str, ...]]]] = []
    i = 0
    while i < len(body):
        assert body[i][3] == "SOA"
        old = int(body[i][6])
        j = next(k for k in range(i + 1, len(body)) if body[k][3] == "SOA")
        end = next((k for k in range(j + 1, len(body)) if body[k][3] == "SOA"), len(body))
        deltas.append((old, int(body[j][6]), {(r[0], r[3], " ".join(r[4:])) for r in body[i + 1:j]},
                       {(r[0], r[3], " ".join(r[4:])) for r in body[j + 1:end]}))
        i = end
    return deltas


def dig_records(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.strip() and not line.startswith(";")]


needs_dig = pytest.mark.skipif(shutil.which("dig") is None or shutil.which("kdig") is None,
                               reason="dig/kdig not installed (apt-get install bind9-dnsutils knot-dnsutils)")


@needs_dig
@pytest.mark.timeout(60)
async def test_dig_axfr_is_the_zone_between_two_soas(primary: Resolver) -> None:
    host, port = primary.dns_address
    out = await asyncio.to_thread(run, "dig", f"@{host}", "-p", str(port), "AXFR", ZONE, "+nocookie")
    records = dig_records(out)
    assert records[0][3] == "SOA" and records[-1][3] == "SOA" and records[0] == records[-1], out
    serial = int(records[0][6])
    assert serial == content(primary).serial
    body = {(r[0], r[3], " ".join(r[4:])) for r in records[1:-1]}
    assert ("www.xfr.test.", "A", "10.1.0.1") in body
    assert ("www.xfr.test.", "A", "10.1.0.2") in body
    assert ("alias.xfr.test.", "CNAME", "www.xfr.test.") in body
    assert not any(r[0] == "alias.xfr.test." and r[3] != "CNAME" for r in records), "a CNAME beside other data"
    assert ("xfr.test.", "NS", "ns1.ns.dns.xfr.test.") in body
    assert ("ns1.ns.dns.xfr.test.", "A", "10.1.0.53") in body  # glue
    assert ("txt.xfr.test.", "TXT", '"hello"') in body
    assert not any(r[3] == "SOA" for r in records[1:-1])
    assert primary.http is not None
    _, metrics = await asyncio.to_thread(http_status, primary.http.port, "/metrics")
    assert b'dnssync_resolver_transfers_total{kind="axfr",result="ok"}' in metrics
    assert b'dnssync_resolver_zone_serial{zone="xfr.test"}' in metrics


@needs_dig
@pytest.mark.timeout(60)
async def test_a_big_zone_streams_in_many_messages(etcd: EtcdClient, primary: Resolver) -> None:
    async with etcd_txn_batches(etcd) as put:
        for i in range(3000):
            put(f"{PATH}/big/h{i}/x", value(f"10.2.{i // 256}.{i % 256}", targetstrip=1))
    revision = (await etcd.put(f"{PATH}/done".encode(), value("10.3.0.1"))).header.revision
    await settled(primary, revision)
    host, port = primary.dns_address
    out = await asyncio.to_thread(run, "dig", f"@{host}", "-p", str(port), "AXFR", ZONE, "+stats")
    records = dig_records(out)
    assert len(records) == len(content(primary).records_now()) + 2
    stats = next(line for line in out.splitlines() if "XFR size" in line)
    messages = int(stats.split("messages ")[1].split(",")[0])
    assert messages >= 10, stats  # ~250 KB of records: at most 16 KB each
    zone = await axfr_zone(host, port)
    assert zone.get_rdataset("h2999.big", "A") is not None


class etcd_txn_batches:
    """Many puts in few etcd transactions (fast set-up of a big zone)."""

    def __init__(self, etcd: EtcdClient, size: int = 128) -> None:
        self.etcd, self.size = etcd, size
        self.items: list[tuple[str, bytes]] = []

    async def __aenter__(self) -> Callable[[str, bytes], None]:
        return lambda key, val: self.items.append((key, val))

    async def __aexit__(self, *exc: object) -> None:
        client = self.etcd
        for i in range(0, len(self.items), self.size):
            batch = self.items[i:i + self.size]
            await client.transaction(compare=[], success=[transactions.Put(k.encode(), v) for k, v in batch],
                                     failure=[])


@needs_dig
@pytest.mark.timeout(60)
async def test_kdig_ixfr_sends_the_difference_then_falls_back(etcd: EtcdClient, primary: Resolver) -> None:
    host, port = primary.dns_address
    old = content(primary).serial
    await etcd.put(f"{PATH}/new".encode(), value("10.1.9.9"))
    revision = (await etcd.delete(f"{PATH}/www/2b".encode())).header.revision
    await settled(primary, revision)
    new = content(primary).serial
    out = await asyncio.to_thread(run, "kdig", f"@{host}", "-p", str(port), f"IXFR={old}", ZONE)
    records = dig_records(out)
    deltas = ixfr_deltas(records)
    assert records[0][3] == "SOA" and int(records[0][6]) == new, out
    assert [d[0] for d in deltas][:1] == [old] and deltas[-1][1] == new, out  # a chain from old to new
    assert all(a[1] == b[0] for a, b in itertools.pairwise(deltas)), out
    deleted = set().union(*(d[2] for d in deltas))
    added = set().union(*(d[3] for d in deltas))
    assert ("www.xfr.test.", "A", "10.1.0.2") in deleted, out
    assert ("new.xfr.test.", "A", "10.1.9.9") in added, out
    assert not any(r[0] == "txt.xfr.test." for r in records), "a difference: unchanged records are not sent"
    # up to date: the SOA alone
    out = await asyncio.to_thread(run, "kdig", f"@{host}", "-p", str(port), f"IXFR={new}", ZONE)
    assert [r[3] for r in dig_records(out)] == ["SOA"], out
    # an unknown serial: the whole zone, AXFR style (RFC 1995 §4)
    out = await asyncio.to_thread(run, "kdig", f"@{host}", "-p", str(port), "IXFR=1", ZONE)
    records = dig_records(out)
    assert len(records) == len(content(primary).records_now()) + 2, out


@pytest.mark.timeout(60)
async def test_applying_the_ixfr_to_the_old_zone_gives_the_axfr_of_the_new(etcd: EtcdClient,
                                                                           primary: Resolver) -> None:
    host, port = primary.dns_address
    zone = await axfr_zone(host, port)
    old = content(primary).serial
    await etcd.put(f"{PATH}/www/1a".encode(), value("10.1.0.7", targetstrip=1))
    await etcd.put(f"{PATH}/alias".encode(), value("10.1.0.8"))  # a CNAME becomes an address
    revision = (await etcd.delete(f"{PATH}/txt".encode())).header.revision
    await settled(primary, revision)
    query, _ = dns.xfr.make_query(zone, serial=old)
    await asyncio.to_thread(dns.query.inbound_xfr, host, zone, query, port=port, timeout=10)
    fresh = await axfr_zone(host, port)
    assert set(zone.to_text().splitlines()) == set(fresh.to_text().splitlines())
    assert zone.get_rdataset("alias", "A") is not None and zone.get_rdataset("txt", "TXT") is None


def _ixfr_query(serial: int, *, payload: int | None = None, keyring: Any = None) -> dns.message.Message:
    query = dns.message.make_query(ZONE, "IXFR", use_edns=0 if payload else -1, payload=payload or 512)
    query.authority.append(dns.rrset.from_text(ZONE, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    if keyring is not None:
        query.use_tsig(keyring, keyname=TSIG_NAME)
    return query


@pytest.mark.timeout(60)
async def test_ixfr_over_udp_is_the_difference_when_it_fits_else_the_soa(etcd: EtcdClient,
                                                                           primary: Resolver) -> None:
    host, port = primary.dns_address
    old = content(primary).serial
    revision = (await etcd.put(f"{PATH}/small".encode(), value("10.1.5.5"))).header.revision
    await settled(primary, revision)
    reply = await asyncio.to_thread(dns.query.udp, _ixfr_query(old), host, port=port, timeout=5)
    types = [rrset.rdtype for rrset in reply.answer]
    assert dns.rdatatype.A in types and len(reply.answer) >= 3, reply
    async with etcd_txn_batches(etcd) as put:
        for i in range(200):
            put(f"{PATH}/many/n{i}", value(f"10.4.0.{i}"))
    revision = (await etcd.put(f"{PATH}/end".encode(), value("10.1.5.6"))).header.revision
    await settled(primary, revision)
    reply = await asyncio.to_thread(dns.query.udp, _ixfr_query(old, payload=1232), host, port=port, timeout=5)
    assert [(r.rdtype, len(r)) for r in reply.answer] == [(dns.rdatatype.SOA, 1)], reply
    assert reply.answer[0][0].serial == content(primary).serial


@pytest.mark.timeout(60)
async def test_clients_outside_the_list_or_without_the_key_get_nothing(etcd: EtcdClient,
                                                                        etcd_server: LocalEtcd) -> None:
    await etcd.put(f"{PATH}/secret".encode(), value("10.6.6.6"))
    await etcd.put(f"{PATH}/dns/ns/ns1".encode(), value("10.6.0.53"))  # secondaries want an NS at the apex
    resolver = await start(etcd_server.endpoint, allow_transfer=("127.0.0.1/32",), tsig_key=TSIG_FLAG)
    try:
        host, port = resolver.dns_address
        serial = content(resolver).serial
        cases = [
            ("outside the list, right key", "127.0.0.2", KEYRING, dns.rcode.REFUSED),
            ("inside the list, unsigned", "127.0.0.1", None, dns.rcode.REFUSED),
            ("inside the list, wrong key", "127.0.0.1", WRONG, dns.rcode.NOTAUTH),
        ]
        for what, source, keyring, rcode in cases:
            for rdtype in ("AXFR", "IXFR"):
                query = _ixfr_query(serial - 1) if rdtype == "IXFR" else dns.message.make_query(ZONE, "AXFR")
                if keyring is not None and rdtype == "AXFR":
                    query.use_tsig(keyring, keyname=TSIG_NAME)
                elif keyring is not None:
                    query = _ixfr_query(serial - 1, keyring=keyring)
                wire = await asyncio.to_thread(_raw_tcp, query.to_wire(), host, port, source)
                assert wire, what
                assert len(wire) == 1, f"{what}: one message, not a transfer"
                flags, _, ancount, nscount = struct.unpack_from("!HHHH", wire[0], 2)
                assert flags & 0xF == rcode, (what, rdtype, dns.rcode.to_text(flags & 0xF))
                assert ancount == 0 and nscount == 0, (what, rdtype)
                assert b"10.6.6.6" not in wire[0] and b"\x0a\x06\x06\x06" not in wire[0], what
        # and the right key, from inside: the zone
        zone = await axfr_zone(host, port, keyring=KEYRING, keyname=TSIG_NAME)
        assert zone.get_rdataset("secret", "A") is not None
        # a signed SOA check (what secondaries send) is answered and signed
        soa = dns.message.make_query(ZONE, "SOA")
        soa.use_tsig(KEYRING, keyname=TSIG_NAME)
        # dnspython verifies the reply's TSIG
        reply = await asyncio.to_thread(dns.query.udp, soa, host, port=port, timeout=5)
        assert reply.had_tsig and reply.answer[0][0].serial == serial
    finally:
        await resolver.stop()


def _raw_tcp(query: bytes, host: str, port: int, source: str) -> list[bytes]:
    """Send one query over TCP from ``source`` and read every message until the server closes or goes quiet."""
    return _raw_tcp_bytes(len(query).to_bytes(2, "big") + query, host, port, source)


def _raw_tcp_bytes(wire: bytes, host: str, port: int, source: str = "127.0.0.1") -> list[bytes]:
    """Send ``wire`` (length-framed messages, pipelined) over TCP from ``source`` and read every message until the
    server closes or goes quiet."""
    import socket
    out: list[bytes] = []
    with socket.create_connection((host, port), timeout=3, source_address=(source, 0)) as sock:
        sock.sendall(wire)
        buf = b""
        try:
            while True:
                chunk = sock.recv(65535)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                    size = int.from_bytes(buf[:2], "big")
                    out.append(buf[2:2 + size])
                    buf = buf[2 + size:]
                sock.settimeout(0.5)
        except TimeoutError:
            pass
    return out


@pytest.mark.timeout(60)
async def test_without_allow_transfer_everyone_is_refused(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    resolver = await start(etcd_server.endpoint, notify=(), allow_transfer=())
    try:
        assert resolver.primary is None  # nothing in front of the answerer
        host, port = resolver.dns_address
        wire = await asyncio.to_thread(_raw_tcp, dns.message.make_query(ZONE, "AXFR").to_wire(), host, port,
                                       "127.0.0.1")
        assert dns.message.from_wire(wire[0]).rcode() == dns.rcode.REFUSED
    finally:
        await resolver.stop()


@pytest.mark.timeout(60)
async def test_an_incoming_notify_is_acknowledged_for_our_zones_only(primary: Resolver) -> None:
    host, port = primary.dns_address
    for zone, rcode in ((ZONE, dns.rcode.NOERROR), ("elsewhere.test.", dns.rcode.REFUSED)):
        notify = dns.message.make_query(zone, "SOA")
        notify.set_opcode(dns.opcode.NOTIFY)
        notify.flags = dns.flags.AA | (notify.flags & ~dns.flags.RD)
        reply = await asyncio.to_thread(dns.query.udp, notify, host, port=port, timeout=5)
        assert reply.opcode() == dns.opcode.NOTIFY and reply.rcode() == rcode, zone


def test_the_flags_parse_and_check() -> None:
    config = parse_config(["--zone", ZONE, "--allow-transfer", "10.0.0.0/8,192.0.2.1", "--tsig-key", TSIG_FLAG,
                           "--notify", "192.0.2.7,[2001:db8::1]:5300,ns.example.net:53"], env={})
    assert config.allow_transfer == ("10.0.0.0/8", "192.0.2.1/32")
    assert config.notify == (("192.0.2.7", 53), ("2001:db8::1", 5300), ("ns.example.net", 53))
    bad = [["--allow-transfer", "not-a-cidr"], ["--allow-transfer", "::/0", "--tsig-key", "x:hmac-md4:c2Vj"],
           ["--allow-transfer", "::/0", "--tsig-key", "missing-parts"], ["--notify", "192.0.2.7"],
           ["--tsig-key", TSIG_FLAG]]
    for argv in bad:
        with pytest.raises(SystemExit):
            parse_config(["--zone", ZONE, *argv], env={})
    env = {"DNSSYNC_RESOLVER_ALLOW_TRANSFER": "127.0.0.1", "DNSSYNC_RESOLVER_NOTIFY": "127.0.0.1:5300"}
    config = parse_config(["--zone", ZONE], env=env)
    assert config.allow_transfer == ("127.0.0.1/32",) and config.notify == (("127.0.0.1", 5300),)


@pytest.mark.timeout(120)
def test_every_worker_serves_transfers_and_one_sends_the_notifies(tmp_path: Path) -> None:
    """``--workers 2``: each worker answers AXFRs from its own copy (same serial, same records); only worker 0
    sends NOTIFY (here to a port where nobody answers: it keeps retrying)."""
    with LocalEtcd() as etcd:
        etcdctl = str(Path(sys.executable).parent / "etcdctl")
        subprocess.run([etcdctl, f"--endpoints={etcd.endpoint}", "put", f"{PATH}/dns/ns/ns1", '{"host":"10.7.0.53"}'],
                       check=True, capture_output=True)
        dns_port, http_port, silent = free_dns_port(), free_port(), free_dns_port()
        p = Process(["--zone", ZONE, "--etcd-endpoints", etcd.endpoint, "--listen", f"127.0.0.1:{dns_port}",
                     "--http-listen", f"127.0.0.1:{http_port}", "--workers", "2", "--log-format", "json",
                     "--allow-transfer", "127.0.0.1/32", "--notify", f"127.0.0.1:{silent}"], tmp_path / "err.log")
        try:
            wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 60, "/readyz 200 from both workers")
            zones = set()
            for _ in range(16):  # new connections, new source ports: the kernel spreads them over the workers
                zone = wait_until(lambda: _axfr_text(dns_port), 10, "an AXFR")
                zones.add(zone)
            assert len(zones) == 1, "every worker sends the same zone"
            logged = [json.loads(line) for line in p.log.read_text().splitlines() if line.startswith("{")]
            served_by = {e.get("worker") for e in logged if e.get("event") == "zone_transfer"}
            assert served_by == {0, 1}, served_by
            wait_until(lambda: any(json.loads(line).get("event") == "notify_sent" for line in
                                   p.log.read_text().splitlines() if line.startswith("{")), 20, "a NOTIFY try")
            logged = [json.loads(line) for line in p.log.read_text().splitlines() if line.startswith("{")]
            assert {e.get("worker") for e in logged if e.get("event") == "notify_sent"} == {0}
        finally:
            p.stop()


def _axfr_text(port: int) -> str | None:
    try:
        zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ZONE, port=port, timeout=5))
    except (dns.exception.DNSException, OSError, dns.xfr.TransferError):
        return None
    return "\n".join(sorted(zone.to_text().splitlines()))


@pytest.mark.timeout(60)
async def test_a_client_that_reads_slowly_holds_back_the_stream(etcd: EtcdClient, primary: Resolver) -> None:
    """The messages are made as the connection drains: a client that reads nothing leaves most of the zone
    unmade (the socket's buffers hold a few messages), and reading on gets the rest, complete and in order."""
    import socket
    async with etcd_txn_batches(etcd) as put:
        for i in range(4000):
            put(f"{PATH}/slow/h{i}/x", value(f"10.8.{i // 256}.{i % 256}", targetstrip=1))
    revision = (await etcd.put(f"{PATH}/slow-done".encode(), value("10.8.255.1"))).header.revision
    await settled(primary, revision)
    total = len(content(primary).records_now()) + 2
    host, port = primary.dns_address
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))

    async def accepted() -> bool:
        return bool(primary.dns.connections)

    await eventually(accepted, what="the connection on the server")
    for conn in primary.dns.connections:  # small kernel buffers on the server's side too, so they fill up soon
        assert conn._transport is not None
        conn._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    query = dns.message.make_query(ZONE, "AXFR").to_wire()
    sock.sendall(len(query).to_bytes(2, "big") + query)

    async def paused() -> bool:
        return any(c._paused and c._stream is not None for c in primary.dns.connections)

    await eventually(paused, what="the server to stop writing to a full socket")
    streams = [c._stream for c in primary.dns.connections if c._stream is not None]
    made = streams[0].count  # type: ignore[union-attr]
    messages = sum(len(rr) for rr in content(primary).records_now()) // 16_000
    assert messages > 30 and made < messages // 3, f"{made} of {messages} messages made before the client read"

    def read_all() -> int:
        sock.settimeout(10)
        records, buf = 0, b""
        soas = 0
        while soas < 2:
            buf += sock.recv(65535)
            while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                size = int.from_bytes(buf[:2], "big")
                msg = dns.message.from_wire(buf[2:2 + size], one_rr_per_rrset=True)
                records += sum(len(rrset) for rrset in msg.answer)
                soas += sum(1 for rrset in msg.answer if rrset.rdtype == dns.rdatatype.SOA)
                buf = buf[2 + size:]
        return records

    try:
        assert await asyncio.to_thread(read_all) == total
    finally:
        sock.close()


@pytest.mark.timeout(60)
async def test_a_query_pipelined_behind_a_transfer_is_answered_after_it(primary: Resolver) -> None:
    host, port = primary.dns_address
    axfr = dns.message.make_query(ZONE, "AXFR")
    plain = dns.message.make_query(f"www.{ZONE}", "A")
    wire = b"".join(len(w).to_bytes(2, "big") + w for w in (axfr.to_wire(), plain.to_wire()))
    messages = await asyncio.to_thread(_raw_tcp_bytes, wire, host, port)
    ids = [dns.message.from_wire(m).id for m in messages]
    first_plain = ids.index(plain.id)
    assert set(ids[:first_plain]) == {axfr.id} and ids[first_plain:] == [plain.id], ids
    transfer = [dns.message.from_wire(m, one_rr_per_rrset=True) for m in messages[:first_plain]]
    assert transfer[0].answer[0].rdtype == dns.rdatatype.SOA and transfer[-1].answer[-1].rdtype == dns.rdatatype.SOA


@pytest.mark.timeout(60)
async def test_two_replicas_transfer_the_same_zone_with_the_same_serial(etcd: EtcdClient, etcd_server: LocalEtcd,
                                                                       primary: Resolver) -> None:
    revision = (await etcd.delete(f"{PATH}/txt".encode())).header.revision  # the latest change: a delete
    await settled(primary, revision)
    replica = await start(etcd_server.endpoint, allow_transfer=("127.0.0.1/32",))  # loads after the delete
    try:
        zones = [await axfr_zone(*r.dns_address) for r in (primary, replica)]
        texts = [set(z.to_text().splitlines()) for z in zones]
        assert texts[0] == texts[1]
        serials = [z.get_rdataset("@", "SOA")[0].serial for z in zones]  # type: ignore[index]
        assert serials == [revision, revision]
    finally:
        await replica.stop()


@pytest.mark.timeout(60)
async def test_notify_is_retried_until_acknowledged_and_coalesced() -> None:
    """A secondary that drops the first NOTIFYs gets them again until it answers; changes made meanwhile are
    carried by the next try (the newest SOA), never queued one by one; a refusal ends the tries."""
    import socket

    from resolver.notify import Notifier

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    serial = {"now": 10}

    def soa_of(zone: str) -> tuple[int, bytes]:
        from resolver.zonecontent import rr_wire
        rdata = ((b"ns",), (b"h",), serial["now"], 1, 1, 1, 1)
        return serial["now"], rr_wire((b"xfr", b"test"), 30, 6, rdata)

    notifier = Notifier([sock.getsockname()], soa_of, first_delay=0.05, max_delay=0.1, timeout=0.2)
    loop = asyncio.get_running_loop()
    received: list[int] = []
    try:
        notifier.changed("xfr.test")
        for _ in range(2):  # drop the first two tries; a change arrives meanwhile
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            received.append(dns.message.from_wire(data).answer[0][0].serial)
            serial["now"] = 11
            notifier.changed("xfr.test")
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), 5)
        msg = dns.message.from_wire(data)
        received.append(msg.answer[0][0].serial)
        reply = dns.message.make_response(msg)
        await loop.sock_sendto(sock, reply.to_wire(), addr)
        assert received[0] == 10 and received[-1] == 11 and len(received) == 3, received
        serial["now"] = 12
        notifier.changed("xfr.test")
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), 5)
        msg = dns.message.from_wire(data)
        refused = dns.message.make_response(msg)
        refused.set_rcode(dns.rcode.REFUSED)
        await loop.sock_sendto(sock, refused.to_wire(), addr)
        with pytest.raises(TimeoutError):  # a refusal is an answer: no more tries
            await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.6)
    finally:
        await notifier.close()
        sock.close()
