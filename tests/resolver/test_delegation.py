"""Zone cuts (RFC 1034 §4.3.2, RFC 9471) beyond the shared table (:mod:`tests.resolver.cases`):

* the answer cache and the zone content follow a cut that appears, changes and goes (examples, and the two
  property tests' machinery over a universe of delegation keys);
* in-domain glue that does not fit a UDP answer truncates it (an apex NS answer drops its glue instead);
* what a zone transfer holds at and below a cut, in memory and by AXFR with ``dig``;
* referrals over real UDP as ``dig`` shows them (no ``aa``, authority, additional);
* real recursors (Unbound, BIND) following our referral to a second ``dnssync-resolver`` that serves the child
  zone from another etcd prefix, and getting the child's answer, never the parent's stale data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import shutil
import socket
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from devtools.localetcd import LocalEtcd
from resolver.answers import Answerer
from resolver.cli import Resolver
from resolver.lookup import Lookup, Mode
from resolver.primary import Primary
from resolver.server import free_dns_port
from resolver.store import Store
from resolver.zonecontent import ZoneContent
from skydns.changes import KeyChange
from skydns.etcd import EtcdClient
from tests.resolver import test_answers_cache_property as cache_property
from tests.resolver import test_transfer_property as transfer_property
from tests.resolver.conftest import eventually, query, resolver_config
from tests.resolver.harness import ask, load
from tests.resolver.recursors import RECURSORS, Recursor, Trap, Upstreams
from tests.resolver.recursors import ask as ask_recursor
from tests.resolver.test_answers_cache_property import Universe

ZONE = "deleg.test."
LAB = "/skydns/test/deleg/lab"


def _v(**fields: object) -> str:
    return json.dumps(fields)


def rrs(section: list[dns.rrset.RRset]) -> set[str]:
    """A section as ``"owner TYPE rdata"`` lines, lower case, TTLs left out."""
    return {f"{rrset.name.to_text().lower()} {dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text().lower()}"
            for rrset in section for rd in rrset}


def referral(msg: dns.message.Message) -> tuple[bool, set[str], set[str], set[str]]:
    return bool(msg.flags & dns.flags.AA), rrs(msg.answer), rrs(msg.authority), rrs(msg.additional)


class Changes:
    """Puts and deletes applied to a store one etcd revision at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, key: str, value: str) -> None:
        rev = self.store.revision + 1
        self.store.apply(rev, [KeyChange(key, value.encode(), rev)])

    def delete(self, key: str) -> None:
        rev = self.store.revision + 1
        self.store.apply(rev, [KeyChange(key, None, rev)])


# -- the answer cache --------------------------------------------------------------------------------------

def test_cached_answers_follow_a_cut_that_appears_changes_and_goes() -> None:
    store = load([(f"{LAB}/www/1a1a1a1a", _v(host="10.0.32.2", targetstrip=1)),
                  (f"{LAB}/ns1/2b2b2b2b", _v(host="10.0.32.1", targetstrip=1))])
    answerer = Answerer(store, [ZONE])
    change = Changes(store)
    for _ in range(2):  # the second answer is a cache hit
        assert referral(ask(answerer, "www.lab.deleg.test.")) == (True, {"www.lab.deleg.test. A 10.0.32.2"},
                                                                  set(), set())
    change.put(f"{LAB}/dns/ns/3c3c3c3c", _v(host="ns1.lab.deleg.test"))
    ns = {"lab.deleg.test. NS ns1.lab.deleg.test."}
    for _ in range(2):
        assert referral(ask(answerer, "www.lab.deleg.test.")) == (False, set(), ns,
                                                                  {"ns1.lab.deleg.test. A 10.0.32.1"})
    change.put(f"{LAB}/ns1/2b2b2b2b", _v(host="10.0.32.7", targetstrip=1))  # the glue changes
    assert referral(ask(answerer, "www.lab.deleg.test.")) == (False, set(), ns, {"ns1.lab.deleg.test. A 10.0.32.7"})
    change.put(f"{LAB}/dns/ns/3c3c3c3c", _v(host="ns.example.net"))  # the NS set changes: no glue any more
    assert referral(ask(answerer, "www.lab.deleg.test.")) == (False, set(), {"lab.deleg.test. NS ns.example.net."},
                                                              set())
    change.delete(f"{LAB}/dns/ns/3c3c3c3c")
    assert referral(ask(answerer, "www.lab.deleg.test.")) == (True, {"www.lab.deleg.test. A 10.0.32.2"}, set(), set())
    assert answerer.stats.hits >= 2


DELEGATION = Universe(
    keys=["/skydns/test/t/d/dns/ns/n1", "/skydns/test/t/d/dns/ns/n2", "/skydns/test/t/d/n1", "/skydns/test/t/d",
          "/skydns/test/t/d/x/y", "/skydns/test/t/d/x/y/z", "/skydns/test/t/d/*", "/skydns/test/t/d/x/dns/ns/n3",
          "/skydns/test/t/e/dns/ns/n1", "/skydns/test/t/a", "/skydns/test/t/*", "/skydns/test/t/c",
          "/skydns/test/o/a"],
    values=[*map(json.dumps, [
        {"host": "n1.d.t.test"}, {"host": "z.y.x.d.t.test"}, {"host": "a.t.test"}, {"host": "x.example.org"},
        {"host": "10.0.0.1"}, {"host": "2001:db8::1"}, {"host": "n1.e.t.test"}, {"host": "d.t.test"},
        {"host": "y.x.d.t.test"}, {"host": "10.0.0.2", "targetstrip": 1}, {"host": "a.o.test"},
        {"host": "y.x.d.t.test", "port": 80}]), "not json"],
    names=["d.t.test.", "x.d.t.test.", "y.x.d.t.test.", "z.y.x.d.t.test.", "n1.d.t.test.", "n1.ns.dns.d.t.test.",
           "nx.d.t.test.", "a.t.test.", "c.t.test.", "e.t.test.", "n1.e.t.test.", "nx.t.test.", "t.test."],
    types=["A", "AAAA", "NS", "DS", "CNAME", "SRV", "ANY"],
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=True), st.sampled_from(cache_property.MODES))
def test_cached_answers_equal_fresh_answers_across_cuts(rng: random.Random, mode: dict[str, bool]) -> None:
    steps = cache_property.steps_from(rng, DELEGATION, 30)
    note(f"steps: {steps}")
    cache_property.run(DELEGATION, steps, False, mode)


# -- truncation ------------------------------------------------------------------------------------------------

def _many_servers(label: str) -> list[tuple[str, str]]:
    """12 NS records at ``<label>.deleg.test.`` (the apex for ""), each server inside it with an A and an AAAA."""
    base = "/skydns/test/deleg" + (f"/{label}" if label else "")
    suffix = f"{label}.deleg.test" if label else "deleg.test"
    out = []
    for i in range(12):
        out.append((f"{base}/dns/ns/n{i:02d}", _v(host=f"server-{i:02d}.{suffix}")))
        out.append((f"{base}/server-{i:02d}/a", _v(host=f"10.0.40.{i}")))
        out.append((f"{base}/server-{i:02d}/b", _v(host=f"2001:db8::40:{i}")))
    return out


def test_in_domain_glue_that_does_not_fit_truncates_the_referral() -> None:
    answerer = Answerer(load(_many_servers("big") + _many_servers("")), [ZONE])
    small = ask(answerer, "www.big.deleg.test.")  # 512 bytes, no EDNS: the glue does not fit
    assert small.flags & dns.flags.TC and not small.authority and not small.additional
    large = ask(answerer, "www.big.deleg.test.", edns=0, payload=4096)
    assert not large.flags & (dns.flags.TC | dns.flags.AA)
    assert len(rrs(large.authority)) == 12 and len(rrs(large.additional)) == 24
    assert referral(ask(answerer, "www.big.deleg.test.", tcp=True))[2:] == referral(large)[2:]
    apex = ask(answerer, "deleg.test.", "NS")  # an answer, not a referral: the glue is dropped, no TC
    assert not apex.flags & dns.flags.TC and len(rrs(apex.answer)) == 12 and not apex.additional


# -- zone content --------------------------------------------------------------------------------------------

def zone_lines(content: ZoneContent) -> set[str]:
    out: set[str] = set()
    for rr in content.records_now():
        msg = dns.message.from_wire(b"\0\0\x80\0\0\0\0\1\0\0\0\0" + rr)
        out |= rrs(msg.answer)
    return out


def test_a_transfer_holds_the_cut_and_its_glue_and_nothing_below_it() -> None:
    store = load([("/skydns/test/deleg/a/1a1a1a1a", _v(host="10.0.31.1", targetstrip=1)),
                  (f"{LAB}/bbbb1111", _v(host="10.0.32.9", targetstrip=1)),
                  (f"{LAB}/www/1a1a1a1a", _v(host="10.0.32.2", targetstrip=1)),
                  (f"{LAB}/*", _v(host="10.0.32.3")),
                  (f"{LAB}/ns1/2b2b2b2b", _v(host="10.0.32.1", targetstrip=1)),
                  (f"{LAB}/x/y/ns2", _v(host="2001:db8::32"))])
    lookup = Lookup(store, [ZONE])
    content = ZoneContent(lookup, lookup.zones[0])
    content.build_now()
    before = zone_lines(content)
    assert {"a.deleg.test. A 10.0.31.1", "lab.deleg.test. A 10.0.32.9", "www.lab.deleg.test. A 10.0.32.2",
            "*.lab.deleg.test. A 10.0.32.3", "ns1.lab.deleg.test. A 10.0.32.1",
            "ns2.y.x.lab.deleg.test. AAAA 2001:db8::32"} <= before
    outside = {line for line in before if not _at_or_below_lab(line)}
    change = Changes(store)

    def follow(keys: set[str] | None) -> None:
        content.on_change(keys)
        content.build_now()

    store.add_listener(follow)
    change.put(f"{LAB}/dns/ns/3c3c3c3c", _v(host="ns1.lab.deleg.test", ttl=3600))
    change.put(f"{LAB}/dns/ns/4d4d4d4d", _v(host="ns2.y.x.lab.deleg.test", ttl=3600))
    change.put(f"{LAB}/dns/ns/5e5e5e5e", _v(host="a.deleg.test", ttl=3600))
    change.put(f"{LAB}/dns/ns/6f6f6f6f", _v(host="ns.example.net", ttl=3600))
    cut = {"lab.deleg.test. NS ns1.lab.deleg.test.", "lab.deleg.test. NS ns2.y.x.lab.deleg.test.",
           "lab.deleg.test. NS a.deleg.test.", "lab.deleg.test. NS ns.example.net.",
           "ns1.lab.deleg.test. A 10.0.32.1", "ns2.y.x.lab.deleg.test. AAAA 2001:db8::32"}
    assert zone_lines(content) == outside | cut  # no A at the cut, no www, no wildcard below it, no NS key names
    change.put(f"{LAB}/x/y/ns2", _v(host="2001:db8::33"))  # glue four labels below the cut
    assert zone_lines(content) == outside | cut - {"ns2.y.x.lab.deleg.test. AAAA 2001:db8::32"} | {
        "ns2.y.x.lab.deleg.test. AAAA 2001:db8::33"}
    cold = Lookup(store, [ZONE])
    fresh = ZoneContent(cold, cold.zones[0])
    fresh.build_now()
    assert set(fresh.records_now()) == set(content.records_now())
    for leaf in ("3c3c3c3c", "4d4d4d4d", "5e5e5e5e", "6f6f6f6f"):
        change.delete(f"{LAB}/dns/ns/{leaf}")
    after = zone_lines(content)  # the cut gone, the names below it are the parent's again
    assert after == {line.replace("2001:db8::32", "2001:db8::33") for line in before}


def _at_or_below_lab(line: str) -> bool:
    owner = line.split()[0]
    return owner == "lab.deleg.test." or owner.endswith(".lab.deleg.test.")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=True), st.sampled_from(list(Mode)))
def test_ixfr_differences_follow_cuts(rng: random.Random, mode: Mode) -> None:
    steps = cache_property.steps_from(rng, DELEGATION, 30)
    note(f"steps: {steps}")
    transfer_property.run(DELEGATION, steps, mode)


# -- over real sockets -------------------------------------------------------------------------------------------

PARENT_KEYS = {
    f"{LAB}/dns/ns/3c3c3c3c": _v(host="ns1.lab.deleg.test", ttl=3600),
    f"{LAB}/ns1/2b2b2b2b": _v(host="127.0.0.2", targetstrip=1),
    f"{LAB}/www/1a1a1a1a": _v(host="10.0.32.66", targetstrip=1),  # the parent's stale data: never served
    "/skydns/test/deleg/dns/ns/ns1": _v(host="127.0.0.1"),
    "/skydns/test/deleg/a/1a1a1a1a": _v(host="10.0.31.1", targetstrip=1),
    "/skydns/test/deleg/labalias/1a1a1a1a": _v(host="www.lab.deleg.test", targetstrip=1),
}
CHILD_KEYS = {  # the child zone lab.deleg.test. under its own prefix
    "/child/test/deleg/lab/dns/ns/3c3c3c3c": _v(host="ns1.lab.deleg.test"),
    "/child/test/deleg/lab/ns1/2b2b2b2b": _v(host="127.0.0.2", targetstrip=1),
    "/child/test/deleg/lab/www/1a1a1a1a": _v(host="10.9.9.9", targetstrip=1),
}


async def _start(endpoint: str, zones: tuple[str, ...], **kw: object) -> Resolver:
    config = dataclasses.replace(resolver_config(endpoint, zones), **kw)  # type: ignore[arg-type]
    resolver = Resolver(config)
    await resolver.start()
    assert resolver.mirror is not None
    await asyncio.wait_for(resolver.mirror.ready.wait(), 15)
    return resolver


async def _put(etcd: EtcdClient, keys: dict[str, str]) -> None:
    for key, raw in keys.items():
        await etcd.put(key.encode(), raw.encode())


async def dig(*argv: str) -> str:
    path = shutil.which("dig")
    if path is None:
        pytest.skip("dig is not installed")
    proc = await asyncio.create_subprocess_exec(path, *argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def dig_sections(out: str) -> dict[str, set[str]]:
    """``dig``'s output: the header flags (``"flags"``) and each section's records as ``owner TYPE rdata``."""
    sections: dict[str, set[str]] = {"flags": set()}
    current = ""
    for line in out.splitlines():
        if line.startswith(";; flags:"):
            sections["flags"] = set(line.split(":")[1].split(";")[0].split())
        elif line.startswith(";; ") and line.endswith("SECTION:"):
            current = line[3:].split()[0].lower()
            sections[current] = set()
        elif line and not line.startswith(";") and current:
            owner, _ttl, _cls, rtype, rdata = line.split(None, 4)
            sections[current].add(f"{owner.lower()} {rtype} {rdata.lower()}")
    return sections


@pytest.mark.timeout(60)
async def test_dig_over_udp_sees_a_referral_and_an_axfr_holds_the_delegation(etcd: EtcdClient,
                                                                             etcd_server: LocalEtcd) -> None:
    await _put(etcd, PARENT_KEYS)
    resolver = await _start(etcd_server.endpoint, (ZONE,), allow_transfer=("127.0.0.0/8",))
    try:
        host, port = resolver.dns_address

        async def delegated() -> bool:
            return not (await query((host, port), "www.lab.deleg.test.")).answer

        await eventually(delegated, what="the referral")
        base = [f"@{host}", "-p", str(port), "+norec", "+notcp"]
        ns = {"lab.deleg.test. NS ns1.lab.deleg.test."}
        glue = {"ns1.lab.deleg.test. A 127.0.0.2"}
        for name, qtype in (("lab.deleg.test.", "NS"), ("www.lab.deleg.test.", "A"), ("lab.deleg.test.", "A")):
            out = dig_sections(await dig(*base, name, qtype))
            assert "aa" not in out["flags"] and "qr" in out["flags"], out
            assert "answer" not in out and out["authority"] == ns and out["additional"] == glue, out
        out = dig_sections(await dig(*base, "labalias.deleg.test.", "A"))  # our CNAME, then the referral's data
        assert "aa" in out["flags"] and out["answer"] == {"labalias.deleg.test. CNAME www.lab.deleg.test."}, out
        assert out["authority"] == ns and out["additional"] == glue, out
        out = dig_sections(await dig(*base, "lab.deleg.test.", "DS"))  # the parent's: NODATA, authoritative
        assert "aa" in out["flags"] and {line.split()[1] for line in out["authority"]} == {"SOA"}, out
        out = dig_sections(await dig(*base, "deleg.test.", "NS"))  # the apex: an answer, as before
        assert "aa" in out["flags"] and out["answer"] == {"deleg.test. NS ns1.ns.dns.deleg.test."}, out

        assert isinstance(resolver.primary, Primary)
        primary = resolver.primary
        await resolver.serials_exact()

        async def built() -> bool:
            return primary.exact and all(c.ready for c in primary.contents.values())

        await eventually(built, what="the zone built")
        axfr = await dig(f"@{host}", "-p", str(port), ZONE, "AXFR")
        lines = {f"{p[0].lower()} {p[3]} {p[4].lower()}" for p in (line.split(None, 4) for line in axfr.splitlines()
                                                                      if line and not line.startswith(";"))}
        assert {line for line in lines if _at_or_below_lab(line)} == {"lab.deleg.test. NS ns1.lab.deleg.test.",
                                                                   "ns1.lab.deleg.test. A 127.0.0.2"}, axfr
        assert {"deleg.test. NS ns1.ns.dns.deleg.test.", "labalias.deleg.test. CNAME www.lab.deleg.test."} <= lines
    finally:
        await resolver.stop()


def _free(address: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


@pytest.fixture
def trap() -> Iterator[Trap]:
    running = Trap().start()
    try:
        yield running
    finally:
        running.stop()


RECURSOR_ZONE = "example.net."


def _moved(keys: dict[str, str]) -> dict[str, str]:
    """The keys of ``deleg.test.`` as those of ``example.net.`` (recursors keep ``test.`` to themselves)."""
    return {key.replace("/test/deleg", "/net/example"): raw.replace("deleg.test", "example.net")
            for key, raw in keys.items()}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", ["unbound", "bind"])
async def test_a_recursor_follows_our_referral_to_the_child_zone(kind: str, etcd: EtcdClient,
                                                                  etcd_server: LocalEtcd, trap: Trap) -> None:
    """The parent (``example.net.`` from ``/skydns``; the recursors answer ``test.`` themselves) on 127.0.0.1
    refers ``lab.example.net.`` to ns1 with glue 127.0.0.2, where a second resolver serves the child from
    ``/child``. A recursor only told where the parent is must come back with the child's answer, never the
    parent's stale data below the cut. Unbound sends iterative queries to port 53 (the child listens there,
    which takes root); BIND sends them to its global ``port``, so parent and child share one port."""
    cls: type[Recursor] = RECURSORS[kind]
    missing = cls.missing()
    if missing:
        pytest.skip(missing)
    if kind == "unbound":
        if os.geteuid() != 0 or not _free("127.0.0.2", 53):
            pytest.skip("Unbound follows referrals to port 53 only: needs root and a free 127.0.0.2:53")
        parent_port, child_port = free_dns_port(), 53
    else:
        parent_port = child_port = free_dns_port()
        if not _free("127.0.0.2", parent_port):
            pytest.skip(f"127.0.0.2:{parent_port} is taken")
    await _put(etcd, _moved(PARENT_KEYS))
    await _put(etcd, _moved(CHILD_KEYS))
    parent = await _start(etcd_server.endpoint, (RECURSOR_ZONE,), listen=("127.0.0.1", parent_port))
    child = await _start(etcd_server.endpoint, ("lab.example.net.",), prefix="/child",
                         listen=("127.0.0.2", child_port))
    recursor: Recursor | None = None
    try:
        direct = await query(parent.dns_address, "www.lab.example.net.")
        assert not direct.flags & dns.flags.AA and not direct.answer  # the parent refers
        own = await query(child.dns_address, "www.lab.example.net.")  # the child answers
        assert own.flags & dns.flags.AA and rrs(own.answer) == {"www.lab.example.net. A 10.9.9.9"}, own
        recursor = await asyncio.to_thread(cls(Upstreams((RECURSOR_ZONE,), parent_port, trap.port)).start)
        port = recursor.port
        answer = await asyncio.to_thread(ask_recursor, port, "www.lab.example.net.", "A")
        assert answer.rcode() == dns.rcode.NOERROR, f"{answer}\n{recursor.log_tail()}"
        assert rrs(answer.answer) == {"www.lab.example.net. A 10.9.9.9"}, f"{answer}\n{recursor.log_tail()}"
        chased = await asyncio.to_thread(ask_recursor, port, "labalias.example.net.", "A")
        assert rrs(chased.answer) == {"labalias.example.net. CNAME www.lab.example.net.",
                                      "www.lab.example.net. A 10.9.9.9"}, f"{chased}\n{recursor.log_tail()}"
        missing_name = await asyncio.to_thread(ask_recursor, port, "nothing.lab.example.net.", "A")
        assert missing_name.rcode() == dns.rcode.NXDOMAIN  # the child's NXDOMAIN
        assert rrs(missing_name.authority) and all(line.startswith("lab.example.net. SOA")
                                                   for line in rrs(missing_name.authority))
    finally:
        if recursor is not None:
            await asyncio.to_thread(recursor.stop)
        await child.stop()
        await parent.stop()

