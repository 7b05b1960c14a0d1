"""Split-horizon views: the flag, the choice of view by source address, and answers from real etcd over sockets.

The in-memory table runs the real answerers (one per view, one for the main records) behind the dispatcher; the
end-to-end tests run the resolver with a view against the session's etcd and ask the same question from
127.0.0.1 and from 127.0.0.2 (the whole of 127/8 is local, so a client socket can be bound to either).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import urllib.request
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from prometheus_client import REGISTRY

from devtools.localetcd import LocalEtcd
from resolver.answers import Answerer
from resolver.cli import Resolver, parse_config
from resolver.store import Store
from resolver.views import View, ViewDispatcher, ViewSelector, ViewSpec, check_views, parse_view, view_holds
from skydns.changes import KeyChange
from skydns.etcd import EtcdClient
from skydns.views import view_key
from tests.resolver.conftest import eventually, resolver_config
from tests.resolver.harness import load

ZONE = "skydns.test."
MAIN = "/skydns"
INSIDE = "/dnssync/views/inside"


# -- the flag ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagCase:
    text: str
    name: str = ""
    networks: tuple[str, ...] = ()
    error: str | None = None


FLAG_CASES = [
    FlagCase("inside=10.0.0.0/8", "inside", ("10.0.0.0/8",)),
    FlagCase("inside=10.0.0.0/8, fd00::/8", "inside", ("10.0.0.0/8", "fd00::/8")),
    FlagCase("lab=192.0.2.7", "lab", ("192.0.2.7/32",)),
    FlagCase("lab=::1", "lab", ("::1/128",)),
    FlagCase("lab=10.0.0.0/8,10.0.0.0/8", "lab", ("10.0.0.0/8",)),
    FlagCase("inside", error="expected NAME=CIDR"),
    FlagCase("Inside=10.0.0.0/8", error="upper-case"),
    FlagCase("in_side=10.0.0.0/8", error="only a-z"),
    FlagCase("inside=", error="no client network"),
    FlagCase("inside=10.0.0.1/8", error="has host bits set"),
    FlagCase("inside=10.0.0.0/33", error="10.0.0.0/33"),
    FlagCase("inside=somewhere", error="somewhere"),
]


@pytest.mark.parametrize("case", FLAG_CASES, ids=lambda c: c.text)
def test_view_flag(case: FlagCase) -> None:
    if case.error is not None:
        with pytest.raises(ValueError, match=case.error):
            parse_view(case.text)
        return
    spec = parse_view(case.text)
    assert spec.name == case.name and tuple(str(n) for n in spec.networks) == case.networks


def test_a_view_named_twice_or_a_network_in_two_views_is_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        check_views([parse_view("a=10.0.0.0/8"), parse_view("a=10.1.0.0/16")])
    with pytest.raises(ValueError, match="already in view a"):
        check_views([parse_view("a=10.0.0.0/8"), parse_view("b=10.0.0.0/8")])


def test_views_from_flags_and_from_the_environment() -> None:
    env = {"ETCD_URLS": "http://127.0.0.1:2379"}
    config = parse_config(["--zone", ZONE, "--view", "inside=10.0.0.0/8", "--view", "lab=::1"], env=env)
    assert [v.text() for v in config.views] == ["inside=10.0.0.0/8", "lab=::1/128"]
    config = parse_config(["--zone", ZONE], env={**env, "DNSSYNC_RESOLVER_VIEW": "inside=10.0.0.0/8,fd00::/8;lab=::1"})
    assert [v.text() for v in config.views] == ["inside=10.0.0.0/8,fd00::/8", "lab=::1/128"]
    assert parse_config(["--zone", ZONE], env=env).views == ()


# -- choosing a view ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectCase:
    client: str
    view: str | None


SELECT_SPECS = [parse_view("pods=10.0.0.0/8,fd00::/8"), parse_view("nodes=10.1.0.0/16"),
                parse_view("one=10.1.2.3")]
SELECT_CASES = [
    SelectCase("10.9.9.9", "pods"),
    SelectCase("10.1.9.9", "nodes"),  # the longest matching network wins
    SelectCase("10.1.2.3", "one"),
    SelectCase("11.0.0.1", None),
    SelectCase("fd00::5", "pods"),
    SelectCase("fe80::1%lo", None),
    SelectCase("::ffff:10.1.0.1", "nodes"),  # an IPv4-mapped address counts as the IPv4 address
    SelectCase("2001:db8::1", None),
    SelectCase("not an address", None),
]


@pytest.mark.parametrize("case", SELECT_CASES, ids=lambda c: c.client)
def test_the_longest_matching_network_picks_the_view(case: SelectCase) -> None:
    selector = ViewSelector(SELECT_SPECS)
    for _ in range(2):  # the second time from the selector's cache
        index = selector.select(case.client)
        assert (SELECT_SPECS[index].name if index is not None else None) == case.view


# -- answers: the main records and one view, in memory -------------------------------------------------------


def _v(**fields: object) -> str:
    return json.dumps(fields)


MAIN_RECORDS = [
    (f"{MAIN}/test/skydns/shop", _v(host="203.0.113.10")),
    (f"{MAIN}/test/skydns/shop6", _v(host="203.0.113.11")),
    (f"{MAIN}/test/skydns/shop6/x1", _v(host="2001:db8::11")),
    (f"{MAIN}/test/skydns/outside", _v(host="203.0.113.20")),
    (f"{MAIN}/test/skydns/dns/apex/mx1", _v(host="mail.example.net.", mail=True, priority=10)),
    (f"{MAIN}/test/skydns/dns/ns/ns1", _v(host="192.0.2.53")),
]
VIEW_RECORDS = [
    (f"{INSIDE}/test/skydns/shop", _v(host="10.96.0.10")),
    (f"{INSIDE}/test/skydns/shop6", _v(host="10.96.0.11")),  # the view gives shop6 no AAAA
    (f"{INSIDE}/test/skydns/only-inside/x1", _v(host="10.96.0.30", targetstrip=1)),
    (f"{INSIDE}/test/skydns/svc/a/b", _v(host="10.96.0.40")),
]


@dataclass(frozen=True)
class AnswerCase:
    what: str
    client: str | None
    name: str
    rdtype: str
    rcode: str
    answers: frozenset[str]
    source: str  # "view": the view's answer was sent; "main": the main records'


def _case(what: str, client: str | None, name: str, rdtype: str, rcode: str, answers: set[str],
          source: str) -> AnswerCase:
    return AnswerCase(what, client, name, rdtype, rcode, frozenset(answers), source)


INSIDE_CLIENT, OUTSIDE_CLIENT = "127.0.0.2", "127.0.0.1"
ANSWER_CASES = [
    _case("outside client, main records", OUTSIDE_CLIENT, "shop", "A", "NOERROR", {"203.0.113.10"}, "main"),
    _case("no client address: main records", None, "shop", "A", "NOERROR", {"203.0.113.10"}, "main"),
    _case("view client, the view's record", INSIDE_CLIENT, "shop", "A", "NOERROR", {"10.96.0.10"}, "view"),
    _case("IPv6 view client", "::1", "shop", "A", "NOERROR", {"10.96.0.10"}, "view"),
    _case("view holds the name: no outside AAAA mixed in", INSIDE_CLIENT, "shop6", "AAAA", "NOERROR", set(),
          "view"),
    _case("outside client still gets the AAAA", OUTSIDE_CLIENT, "shop6", "AAAA", "NOERROR", {"2001:db8::11"},
          "main"),
    _case("name only in main: fallback", INSIDE_CLIENT, "outside", "A", "NOERROR", {"203.0.113.20"}, "main"),
    _case("name only in the view", INSIDE_CLIENT, "only-inside", "A", "NOERROR", {"10.96.0.30"}, "view"),
    _case("name only in the view, outside client", OUTSIDE_CLIENT, "only-inside", "A", "NXDOMAIN", set(), "main"),
    _case("view NXDOMAIN falls back to main's NXDOMAIN", INSIDE_CLIENT, "nowhere", "A", "NXDOMAIN", set(), "main"),
    _case("empty non-terminal in the view", INSIDE_CLIENT, "a.svc", "AAAA", "NOERROR", set(), "view"),
    _case("apex MX from main", INSIDE_CLIENT, "", "MX", "NOERROR", {"10 mail.example.net."}, "main"),
    _case("apex SOA from main", INSIDE_CLIENT, "", "SOA", "NOERROR", {"soa"}, "main"),
    _case("apex NS from main", INSIDE_CLIENT, "", "NS", "NOERROR", {"ns1.ns.dns.skydns.test."}, "main"),
    _case("outside every zone", INSIDE_CLIENT, "www.example.com.", "A", "REFUSED", set(), "main"),
]


def _qname(name: str) -> str:
    return name if name.endswith(".") else (f"{name}.{ZONE}" if name else ZONE)


def _rdatas(msg: dns.message.Message) -> set[str]:
    out = set()
    for rrset in msg.answer:
        for rd in rrset:
            out.add("soa" if rrset.rdtype == dns.rdatatype.SOA else rd.to_text())
    return out


@pytest.fixture(scope="module")
def dispatcher() -> tuple[ViewDispatcher, Answerer, Answerer]:
    main = Answerer(load(MAIN_RECORDS, MAIN), [ZONE])
    inside = Answerer(load(VIEW_RECORDS, INSIDE), [ZONE])
    view = View(ViewSpec("inside", parse_view("inside=127.0.0.2/32,::1/128").networks), inside.respond)
    return ViewDispatcher(main.respond, [view], [ZONE]), main, inside


@pytest.mark.parametrize("case", ANSWER_CASES, ids=lambda c: c.what)
def test_who_answers(case: AnswerCase, dispatcher: tuple[ViewDispatcher, Answerer, Answerer]) -> None:
    dispatch, main, inside = dispatcher
    query = dns.message.make_query(_qname(case.name), case.rdtype)
    for tcp in (False, True):
        wire = dispatch.respond(query.to_wire(), tcp=tcp, client=(case.client, 5353) if case.client else None)
        reply = dns.message.from_wire(wire)
        assert reply.id == query.id
        assert dns.rcode.to_text(reply.rcode()) == case.rcode
        assert _rdatas(reply) == case.answers
        source = main if case.source == "main" else inside
        assert wire == source.respond(query.to_wire(), tcp=tcp), f"not the {case.source} records' answer"


def test_at_the_apex_a_view_holds_a_question_only_with_records_and_never_for_soa() -> None:
    inside = Answerer(load([(f"{INSIDE}/test/skydns/dns/apex/x1", _v(host="10.96.0.1"))], INSIDE), [ZONE])
    apexes = frozenset({b"\x06skydns\x04test\x00"})
    for rdtype, held in (("A", True), ("AAAA", False), ("SOA", False), ("MX", False)):
        query = dns.message.make_query(ZONE.upper(), rdtype).to_wire()
        assert view_holds(query, inside.respond(query, tcp=False), apexes) is held, rdtype


def test_counters_say_who_answered_a_views_clients(dispatcher: tuple[ViewDispatcher, Answerer, Answerer]) -> None:
    dispatch, _, _ = dispatcher
    stats = dispatch.views[0].stats
    before = (stats.view_answers, stats.fallbacks)
    for name in ("shop", "outside"):
        dispatch.respond(dns.message.make_query(_qname(name), "A").to_wire(), tcp=False, client=(INSIDE_CLIENT, 1))
    dispatch.respond(dns.message.make_query(_qname("shop"), "A").to_wire(), tcp=False, client=(OUTSIDE_CLIENT, 1))
    assert (stats.view_answers, stats.fallbacks) == (before[0] + 1, before[1] + 1)


def responses_sent() -> dict[tuple[str, str], float]:
    """``dnssync_resolver_responses_total`` by (rcode, source)."""
    return {(s.labels["rcode"], s.labels["source"]): s.value for family in REGISTRY.collect()
            if family.name == "dnssync_resolver_responses" for s in family.samples if s.name.endswith("_total")}


@dataclass(frozen=True)
class CountedCase:
    what: str
    client: str
    name: str
    rcode: str  # the rcode counted, once, with source="records"


COUNTED_CASES = [
    CountedCase("the view holds the name", INSIDE_CLIENT, "shop", "NOERROR"),
    CountedCase("fallback: the view's NXDOMAIN replaced by main's answer", INSIDE_CLIENT, "outside", "NOERROR"),
    CountedCase("fallback to main's NXDOMAIN", INSIDE_CLIENT, "nowhere", "NXDOMAIN"),
    CountedCase("fallback: REFUSED outside every zone", INSIDE_CLIENT, "www.example.com.", "REFUSED"),
    CountedCase("a client outside every view", OUTSIDE_CLIENT, "outside", "NOERROR"),
]


@pytest.mark.parametrize("case", COUNTED_CASES, ids=lambda c: c.what)
def test_each_answer_to_a_views_client_is_counted_once(case: CountedCase,
                                                       dispatcher: tuple[ViewDispatcher, Answerer, Answerer]) -> None:
    dispatch, _, _ = dispatcher
    for tcp in (False, True):
        before = responses_sent()
        wire = dispatch.respond(dns.message.make_query(_qname(case.name), "A").to_wire(), tcp=tcp,
                                client=(case.client, 5353))
        assert dns.rcode.to_text(dns.message.from_wire(wire).rcode()) == case.rcode
        after = responses_sent()
        changed = {key: n - before.get(key, 0.0) for key, n in after.items() if n != before.get(key, 0.0)}
        assert changed == {(case.rcode, "records"): 1}, case.what


# -- end to end: real etcd, real sockets ---------------------------------------------------------------------


def value(host: str) -> bytes:
    return json.dumps({"host": host}).encode()


async def ask_from(resolver: Resolver, source: str, name: str, rdtype: str = "A", *,
                   tcp: bool = False) -> dns.message.Message:
    host, port = resolver.dns_address
    msg = dns.message.make_query(_qname(name), rdtype)
    msg.flags &= ~dns.flags.RD
    if tcp:
        return await dns.asyncquery.tcp(msg, host, port=port, source=source, timeout=2)
    return await dns.asyncquery.udp(msg, host, port=port, source=source, timeout=2)


async def addresses_from(resolver: Resolver, source: str, name: str, tcp: bool = False) -> set[str]:
    return _rdatas(await ask_from(resolver, source, name, tcp=tcp))


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


async def wait_ready(resolver: Resolver) -> None:
    async def ready() -> bool:
        assert resolver.http is not None
        return (await asyncio.to_thread(http_get, resolver.http.port, "/readyz"))[0] == 200
    await eventually(ready, 20, "/readyz 200")


@pytest.fixture
async def with_view(etcd: EtcdClient, etcd_server: LocalEtcd) -> AsyncIterator[Resolver]:
    await etcd.put(b"/skydns/test/skydns/shop", value("203.0.113.10"))
    await etcd.put(b"/skydns/test/skydns/outside", value("203.0.113.20"))
    await etcd.put(view_key("inside", "shop.skydns.test.").encode(), value("10.96.0.10"))
    config = resolver_config(etcd_server.endpoint, views=(parse_view("inside=127.0.0.2/32"),))
    resolver = Resolver(config)
    await resolver.start()
    try:
        await wait_ready(resolver)
        yield resolver
    finally:
        await resolver.stop()


async def test_the_same_question_from_two_networks_gets_two_answers_and_both_follow_etcd(
        etcd: EtcdClient, with_view: Resolver) -> None:
    resolver = with_view
    for tcp in (False, True):
        assert await addresses_from(resolver, "127.0.0.1", "shop", tcp) == {"203.0.113.10"}
        assert await addresses_from(resolver, "127.0.0.2", "shop", tcp) == {"10.96.0.10"}
        assert await addresses_from(resolver, "127.0.0.2", "outside", tcp) == {"203.0.113.20"}, "fallback to main"

    await etcd.put(b"/skydns/test/skydns/shop", value("203.0.113.99"))
    await etcd.put(view_key("inside", "shop.skydns.test.").encode(), value("10.96.0.99"))

    async def both_changed() -> bool:
        return (await addresses_from(resolver, "127.0.0.1", "shop") == {"203.0.113.99"}
                and await addresses_from(resolver, "127.0.0.2", "shop") == {"10.96.0.99"})
    await eventually(both_changed, 10, "both answers to change")

    await etcd.put(view_key("inside", "new.skydns.test.").encode(), value("10.96.0.50"))

    async def new_inside() -> bool:
        return await addresses_from(resolver, "127.0.0.2", "new") == {"10.96.0.50"}
    await eventually(new_inside, 10, "a name added to the view")
    assert (await ask_from(resolver, "127.0.0.1", "new")).rcode() == dns.rcode.NXDOMAIN

    await etcd.delete(view_key("inside", "shop.skydns.test.").encode())

    async def falls_back() -> bool:
        return await addresses_from(resolver, "127.0.0.2", "shop") == {"203.0.113.99"}
    await eventually(falls_back, 10, "the view client to fall back to main once the view drops the name")


async def test_views_have_their_own_metrics_and_health(with_view: Resolver) -> None:
    resolver = with_view
    assert await addresses_from(resolver, "127.0.0.2", "shop") == {"10.96.0.10"}
    assert await addresses_from(resolver, "127.0.0.2", "outside") == {"203.0.113.20"}
    assert resolver.http is not None
    status, body = await asyncio.to_thread(http_get, resolver.http.port, "/metrics")
    text = body.decode()
    assert status == 200
    for line in ('dnssync_resolver_view_ready{view="inside"} 1.0',
                 'dnssync_resolver_view_etcd_connected{view="inside"} 1.0',
                 'dnssync_resolver_view_records{view="inside"} 1.0'):
        assert line in text, line
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("dnssync_resolver_view_answers_total")}
    assert samples['dnssync_resolver_view_answers_total{source="view",view="inside"}'] >= 1
    assert samples['dnssync_resolver_view_answers_total{source="main",view="inside"}'] >= 1
    status, body = await asyncio.to_thread(http_get, resolver.http.port, "/healthz")
    health = json.loads(body)
    assert status == 200 and health["views"]["inside"]["etcd"] == "connected"
    assert health["views"]["inside"]["revision"] > 0


class GatedStore(Store):
    """A store whose loads fail until ``opened`` is set (the mirror retries): a view that is slow to load."""

    def __init__(self, prefix: str, opened: asyncio.Event) -> None:
        super().__init__(prefix)
        self.opened = opened

    def replace(self, revision: int, changes: Iterable[KeyChange]) -> None:
        if not self.opened.is_set():
            raise RuntimeError("not yet")
        super().replace(revision, changes)


async def test_not_ready_and_servfail_until_every_view_is_loaded(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    await etcd.put(b"/skydns/test/skydns/shop", value("203.0.113.10"))
    opened = asyncio.Event()
    config = resolver_config(etcd_server.endpoint, views=(parse_view("inside=127.0.0.2/32"),))
    resolver = Resolver(config, store_factory=lambda c: GatedStore(c.prefix, opened) if c.prefix == INSIDE
                        else Store(c.prefix))
    await resolver.start()
    try:
        assert resolver.mirror is not None and resolver.http is not None
        await asyncio.wait_for(resolver.mirror.ready.wait(), 15)  # the main records are loaded ...
        assert (await asyncio.to_thread(http_get, resolver.http.port, "/readyz"))[0] == 503
        for source in ("127.0.0.1", "127.0.0.2"):  # ... but nobody is answered before the view is too
            assert (await ask_from(resolver, source, "shop")).rcode() == dns.rcode.SERVFAIL
        opened.set()
        await wait_ready(resolver)
        assert await addresses_from(resolver, "127.0.0.1", "shop") == {"203.0.113.10"}
        assert await addresses_from(resolver, "127.0.0.2", "shop") == {"203.0.113.10"}
    finally:
        await resolver.stop()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_an_ipv6_client_in_a_view(etcd: EtcdClient, etcd_server: LocalEtcd) -> None:
    await etcd.put(b"/skydns/test/skydns/shop", value("203.0.113.10"))
    await etcd.put(view_key("inside", "shop.skydns.test.").encode(), value("10.96.0.10"))
    config = resolver_config(etcd_server.endpoint, views=(parse_view("inside=::1/128"),))
    config = dataclasses.replace(config, listen=("::1", 0))
    resolver = Resolver(config)
    await resolver.start()
    try:
        await wait_ready(resolver)
        for tcp in (False, True):
            assert await addresses_from(resolver, "::1", "shop", tcp) == {"10.96.0.10"}
    finally:
        await resolver.stop()
