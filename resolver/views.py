"""Split-horizon views: which records answer a client, chosen by the packet's source address.

``--view NAME=CIDR[,CIDR...]`` (repeatable) names a view and the client networks it serves. Each view is its own
store, answerer (with its own answer cache) and etcd mirror over :func:`skydns.views.view_prefix` (assembled in
:mod:`resolver.cli`); this module holds the pure parts: parsing the flag, picking a view for a client address,
and deciding, per query, whether the view's answer or the main records' answer is sent.

Rules:

* **Who is a view client**: the source address of the packet (UDP) or of the connection (TCP), IPv4 or IPv6.
  Nothing in the packet is trusted (an EDNS Client Subnet option is ignored). When a client is in networks of
  several views, the longest matching network wins; the same network in two views is a usage error. Clients in
  no view's networks are answered from the main records only, at no extra cost beyond one dict lookup.
* **The view holds a name** when the view's answer to the question is NOERROR - it has records for the name (at
  it or, following the answer rules, below it), or a wildcard record in the view covers the name, or the name
  exists in the view with other types (NODATA). Then the view's answer is sent as it is, and nothing of the main
  records is mixed in: a view that gives a name an IPv4 ClusterIP answers AAAA with NODATA, so a client inside
  never gets the outside address. A truncated view answer is sent too (the client retries over TCP, where the
  same rule holds).
* **Fallback**: any other view answer - NXDOMAIN (the view has nothing at or below the name), REFUSED (outside
  every zone; the main responder may forward it), SERVFAIL - is replaced by the main records' answer to the
  same query.
* **Zone apex**: every view answers NODATA at a zone apex (an apex is never NXDOMAIN) and synthesises the zone's
  SOA there, so at the apex the view holds a question only when its answer has records and the type is not SOA.
  The apex's SOA, NS, MX and TXT thus keep coming from the main records unless the view sets them itself.
* A CNAME is chased within the records that answered it (the view's or the main ones); the SOA in a view's
  negative answer carries the view's serial.
* **Counted once**: ``dnssync_resolver_responses_total`` counts the answer that is sent. The view's answerer
  counts every answer it makes, so on a fallback the view's answer is uncounted again (in the same call, before
  any scrape can see it) and the main records' answer is counted by whatever makes it.
"""

from __future__ import annotations

import ipaddress
import struct
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from resolver.metrics import ResponseCounts
from skydns.names import name_labels
from skydns.views import check_view_name

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Respond = Callable[..., Any]

HEADER_LEN = 12
NOERROR = 0
TC = 0x02
SOA = 6
SELECT_CACHE_SIZE = 65536  # client addresses remembered by ViewSelector (cleared when full)


@dataclass(frozen=True)
class ViewSpec:
    """One ``--view``: its name and the client networks it serves."""

    name: str
    networks: tuple[Network, ...]

    def text(self) -> str:
        return f"{self.name}={','.join(str(n) for n in self.networks)}"


def parse_view(text: str) -> ViewSpec:
    """``inside=10.0.0.0/8,fd00::/8`` -> a :class:`ViewSpec`; ``ValueError`` saying what is wrong."""
    name, sep, cidrs = text.partition("=")
    name = name.strip()
    if not sep:
        raise ValueError(f"--view {text!r}: expected NAME=CIDR[,CIDR...]")
    check_view_name(name)
    networks: list[Network] = []
    for part in cidrs.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part))
        except ValueError as exc:
            raise ValueError(f"--view {name}: {exc}") from None
    if not networks:
        raise ValueError(f"--view {name}: no client network given")
    return ViewSpec(name, tuple(dict.fromkeys(networks)))


def check_views(specs: Sequence[ViewSpec]) -> tuple[ViewSpec, ...]:
    """The views as given, or ``ValueError`` for a view named twice or a network given to two views."""
    names: set[str] = set()
    owner: dict[Network, str] = {}
    for spec in specs:
        if spec.name in names:
            raise ValueError(f"--view {spec.name}: given twice (list all its networks in one --view)")
        names.add(spec.name)
        for net in spec.networks:
            if net in owner:
                raise ValueError(f"--view {spec.name}: network {net} is already in view {owner[net]}")
            owner[net] = spec.name
    return tuple(specs)


def client_host(client: Any) -> str | None:
    """The address part of what the server hands over: an address tuple (``recvfrom``, peer name) or a string."""
    if isinstance(client, str):
        return client
    if isinstance(client, tuple) and client and isinstance(client[0], str):
        return client[0]
    return None


class ViewSelector:
    """Client address -> index of its view in ``specs`` (longest matching network), or ``None``."""

    def __init__(self, specs: Sequence[ViewSpec]) -> None:
        pairs = [(net, i) for i, spec in enumerate(specs) for net in spec.networks]
        self._by_length = sorted(pairs, key=lambda p: p[0].prefixlen, reverse=True)
        self._cache: dict[str, int | None] = {}

    def select(self, host: str) -> int | None:
        try:
            return self._cache[host]
        except KeyError:
            pass
        found = self._match(host)
        if len(self._cache) >= SELECT_CACHE_SIZE:
            self._cache.clear()
        self._cache[host] = found
        return found

    def _match(self, host: str) -> int | None:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            elif addr.scope_id is not None:
                addr = ipaddress.IPv6Address(host.split("%", 1)[0])
        for net, index in self._by_length:
            if addr.version == net.version and addr in net:
                return index
        return None


def zone_apexes(zones: Sequence[str]) -> frozenset[bytes]:
    """The lower-case wire forms of the zones' names (``example.org.`` -> ``\\x07example\\x03org\\x00``)."""
    return frozenset(b"".join(bytes((len(label),)) + label.encode() for label in name_labels(zone)) + b"\0"
                     for zone in zones)


def _question(query: bytes) -> tuple[bytes, int] | None:
    """The first question's name (lower-case wire form) and type, or ``None`` when it cannot be read simply."""
    end = HEADER_LEN
    try:
        while query[end]:
            if query[end] & 0xC0:
                return None
            end += query[end] + 1
        end += 1
        (qtype,) = struct.unpack_from("!H", query, end)
    except (IndexError, struct.error):
        return None
    return query[HEADER_LEN:end].lower(), qtype  # a length byte (< 64) is never an ASCII capital


def view_holds(query: bytes, reply: bytes | None, apexes: frozenset[bytes]) -> bool:
    """Whether a view's ``reply`` to ``query`` is the one to send (see the module docstring)."""
    if reply is None or len(reply) < HEADER_LEN or reply[3] & 0x0F != NOERROR:
        return False
    if reply[2] & TC:
        return True
    question = _question(query)
    if question is None or question[0] not in apexes:
        return True
    return question[1] != SOA and (reply[6] or reply[7]) != 0


@dataclass
class ViewStats:
    """Plain-integer counters of one view (read by the collector at scrape time)."""

    view_answers: int = 0
    fallbacks: int = 0


@dataclass(eq=False)
class View:
    """A running view: its spec, the responder over its records and, for metrics and health, its mirror.

    ``responses`` are the response counts of ``respond`` (found on a bound method's object as ``stats``, as on
    :class:`resolver.answers.Answerer`, when not given), uncounted on a fallback (module docstring)."""

    spec: ViewSpec
    respond: Respond
    store: Any = None
    mirror: Any = None
    stats: ViewStats = field(default_factory=ViewStats)
    responses: ResponseCounts | None = None

    def __post_init__(self) -> None:
        if self.responses is None:
            found = getattr(getattr(self.respond, "__self__", None), "stats", None)
            self.responses = found if isinstance(found, ResponseCounts) else None
        _VIEWS.add(self)


class ViewDispatcher:
    """The responder for a server with views: ``respond(query, *, tcp, client)``.

    ``main`` answers clients outside every view and the questions a view does not hold; it is called with
    ``client=`` too when ``main_wants_client`` (e.g. a forwarder with an ACL), and its reply is passed on as it
    is (bytes, ``None`` or whatever the server accepts).
    """

    def __init__(self, main: Respond, views: Sequence[View], zones: Sequence[str], *,
                 main_wants_client: bool = False) -> None:
        self.main = main
        self.views = list(views)
        self.main_wants_client = main_wants_client
        self._selector = ViewSelector([v.spec for v in self.views])
        self._apexes = zone_apexes(zones)

    def _main(self, query: bytes, tcp: bool, client: Any) -> Any:
        if self.main_wants_client:
            return self.main(query, tcp=tcp, client=client)
        return self.main(query, tcp=tcp)

    def respond(self, query: bytes, *, tcp: bool, client: Any = None) -> Any:
        host = client_host(client)
        index = self._selector.select(host) if host is not None else None
        if index is None:
            return self._main(query, tcp, client)
        view = self.views[index]
        reply = view.respond(query, tcp=tcp)
        if view_holds(query, reply, self._apexes):
            view.stats.view_answers += 1
            return reply
        view.stats.fallbacks += 1
        if view.responses is not None and reply is not None and len(reply) >= HEADER_LEN:  # not sent: uncounted
            view.responses.rcodes[reply[3] & 0x0F] -= 1
        return self._main(query, tcp, client)


_VIEWS: weakref.WeakSet[View] = weakref.WeakSet()


class _ViewCollector(Collector):
    """``dnssync_resolver_view_*{view}``: answers by source, readiness, etcd state and records of every view."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        views = sorted(_VIEWS, key=lambda v: v.spec.name)
        answers = CounterMetricFamily("dnssync_resolver_view_answers",
                                      "Queries from a view's clients, by the records that answered (view or main)",
                                      labels=["view", "source"])
        ready = GaugeMetricFamily("dnssync_resolver_view_ready", "1 once the view's first load from etcd is done",
                                  labels=["view"])
        connected = GaugeMetricFamily("dnssync_resolver_view_etcd_connected", "1 while the view's etcd watch is up",
                                      labels=["view"])
        revision = GaugeMetricFamily("dnssync_resolver_view_etcd_revision",
                                     "The last etcd revision applied to the view's records", labels=["view"])
        records = GaugeMetricFamily("dnssync_resolver_view_records", "Keys in the view's in-memory store",
                                    labels=["view"])
        for v in views:
            name = v.spec.name
            answers.add_metric([name, "view"], v.stats.view_answers)
            answers.add_metric([name, "main"], v.stats.fallbacks)
            if v.mirror is not None:
                ready.add_metric([name], 1.0 if v.mirror.is_ready() else 0.0)
                connected.add_metric([name], 1.0 if v.mirror.connected else 0.0)
                revision.add_metric([name], float(v.mirror.revision))
            if v.store is not None:
                records.add_metric([name], float(len(v.store)))
        yield from (answers, ready, connected, revision, records)

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        return iter(())


REGISTRY.register(_ViewCollector())
