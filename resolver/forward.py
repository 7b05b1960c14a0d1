"""Forwarding queries for names outside our zones to upstream resolvers, as CoreDNS's ``forward`` plugin does.

Who is forwarded: a QUERY with RD set, from a client whose address - the packet's source, which the server hands
over (:mod:`resolver.server`, ``with_client``) - is inside ``--allow-recursion``, for a name outside every served
zone. Everything else goes to the authoritative answerer unchanged, and that REFUSES names outside our zones: with
no ACL nothing is forwarded (RFC 5358: never an open resolver), and names in our zones are never forwarded.

Upstreams (``--forward``): ``IP``, ``IP:port``, ``[IPv6]:port`` or the path of a resolv.conf file, whose
``nameserver`` lines are read once at start. A query goes to an upstream over UDP with EDNS (payload 1232, the
client's DO, CD and AD bits), and again over TCP when that answer is truncated; each try is bounded by the
per-upstream timeout, the whole question by :data:`DEADLINE` seconds.

Failover and health, as CoreDNS: upstreams are tried in policy order - ``random`` (the default), ``round_robin``
or ``sequential`` - skipping those that are down. When one fails (timeout, network error, an answer that does
not match the question) the next is tried and a health check starts for the failed one: a ``. IN NS`` query
every health-check interval until any answer comes back (any rcode counts as healthy). An upstream is down after
``max_fails`` failed checks in a row (0: never down, no checks). When every upstream is down, one at random is
tried anyway: health checking itself may be what is broken.

Answers go through :class:`resolver.forward_cache.ForwardCache` (TTLs honoured, RFC 2308 negative caching, RA set).
A miss is fetched once per question at a time - identical questions arriving meanwhile wait for the same upstream
answer - and at most ``max_pending`` distinct questions are outstanding (beyond that: SERVFAIL at once). When no
upstream answers, the client gets SERVFAIL (not cached). A reply to a miss is an ``asyncio.Future`` that the
server sends when it resolves.

The fast path for cached forwarded answers matches :class:`resolver.answers.Answerer`'s: the exact query bytes
after the ID map to the reply bytes last sent for them (per transport), valid while their cache entry is cached,
unexpired and of the same age in whole seconds; the ACL verdict is cached per client address. A hit is a few
dict lookups, a clock read and the ID patch.

Metrics: ``dnssync_resolver_forward_requests_total{upstream}`` (questions sent upstream),
``..._forward_failures_total{upstream}``, ``..._forward_tcp_retries_total{upstream}`` (truncated UDP answers),
``..._forward_healthcheck_failures_total{upstream}``, ``..._forward_upstream_down{upstream}`` (1 while down),
``..._forward_cache_hits_total`` / ``..._forward_cache_misses_total`` / ``..._forward_cache_entries``; and every
reply the forwarder makes itself (from the cache, from upstream, the SERVFAIL when none answers or too many are
pending) once in ``dnssync_resolver_responses_total{rcode,source="forward"}`` (:mod:`resolver.metrics`); what it
passes to the inner responder is counted there.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import random
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import structlog
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from resolver import metrics
from resolver.forward_cache import (
    ADVERTISED_PAYLOAD,
    BIT_AD,
    BIT_CD,
    BIT_DO,
    Entry,
    ForwardCache,
    Question,
    compose,
    entry_from_response,
    in_zones,
    parse_question,
    servfail_entry,
)
from resolver.server import Reply, Respond
from skydns.settings import parse_duration, parse_networks

log = structlog.get_logger("resolver.forward")

POLICIES = ("random", "round_robin", "sequential")
DEADLINE = 5.0  # seconds for one question, over all upstreams (CoreDNS's default)
DEFAULT_TIMEOUT = 2.0
DEFAULT_HEALTH_CHECK = 0.5
DEFAULT_MAX_FAILS = 2
DEFAULT_MAX_PENDING = 1000
ACL_CACHE_SIZE = 10_000
LANE_SIZE = 10_000

FORWARD_REQUESTS = Counter("dnssync_resolver_forward_requests", "Questions sent to an upstream", ["upstream"])
FORWARD_FAILURES = Counter("dnssync_resolver_forward_failures", "Upstream tries that failed (timeout, network "
                           "error, bad answer)", ["upstream"])
FORWARD_TCP_RETRIES = Counter("dnssync_resolver_forward_tcp_retries", "Truncated UDP answers asked again over TCP",
                              ["upstream"])
HEALTHCHECK_FAILURES = Counter("dnssync_resolver_forward_healthcheck_failures", "Failed upstream health checks",
                               ["upstream"])
UPSTREAM_DOWN = Gauge("dnssync_resolver_forward_upstream_down", "1 while the upstream is considered down",
                      ["upstream"])

_FAILURES = (dns.exception.DNSException, OSError, EOFError, ValueError)


class NoUpstreamAnswered(Exception):
    """Every upstream tried for a question failed, or the deadline passed."""


# -- configuration: upstream addresses and the recursion ACL (pure, apart from reading resolv.conf) ----------

def parse_upstream(text: str) -> tuple[str, int]:
    """``IP``, ``IP:port`` or ``[IPv6]:port`` -> ``(ip, port)``; raises ``ValueError`` with a one-line message."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"--forward: expected IP, IP:port or [IPv6]:port, got {text!r}")
        if rest:
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--forward: an upstream must be an IP address (or a resolv.conf path), got {text!r}") \
            from None
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise ValueError(f"--forward: bad port in {whole!r}")
    return int(text)


def read_resolv_conf(path: str) -> list[tuple[str, int]]:
    """The ``nameserver`` addresses of a resolv.conf file (port 53); raises ``ValueError`` when there are none."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"--forward: cannot read {path}: {exc.strerror or exc}") from None
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            out.append(parse_upstream(words[1]))
    if not out:
        raise ValueError(f"--forward: no nameserver lines in {path}")
    return out


def parse_upstreams(items: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """Comma-separated ``--forward`` values (repeatable) -> unique upstream addresses, in order.

    An item containing ``/`` is a resolv.conf path."""
    out: list[tuple[str, int]] = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if part:
                out.extend(read_resolv_conf(part) if "/" in part else [parse_upstream(part)])
    return tuple(dict.fromkeys(out))


def parse_recursion_networks(items: Sequence[str]) -> tuple[str, ...]:
    """Comma-separated ``--allow-recursion`` CIDRs (repeatable) -> normalised network strings."""
    return tuple(str(n) for n in parse_networks(items, "--allow-recursion"))


@dataclass(frozen=True)
class ForwardSettings:
    """The checked ``--forward*`` and ``--allow-recursion`` flags."""

    upstreams: tuple[tuple[str, int], ...]
    allow: tuple[str, ...] = ()
    policy: str = "random"
    timeout: float = DEFAULT_TIMEOUT
    health_check: float = DEFAULT_HEALTH_CHECK
    max_fails: int = DEFAULT_MAX_FAILS

    @classmethod
    def parse(cls, forward: Sequence[str], allow: Sequence[str], *, policy: str = "random", timeout: str = "2s",
              health_check: str = "500ms", max_fails: str = "2",
              listen: tuple[str, int] | None = None) -> ForwardSettings | None:
        """The settings, or None without ``--forward``; raises ``ValueError`` with a one-line message."""
        upstreams = parse_upstreams(forward)
        networks = parse_recursion_networks(allow)
        if not upstreams:
            if networks:
                raise ValueError("--allow-recursion needs --forward (the upstreams to forward to)")
            return None
        if listen is not None and listen in upstreams:
            raise ValueError(f"--forward: {listen[0]}:{listen[1]} is our own --listen address (a forwarding loop)")
        if policy not in POLICIES:
            raise ValueError(f"--forward-policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if not max_fails.strip().isdigit():
            raise ValueError(f"--forward-max-fails: expected a whole number, got {max_fails!r}")
        seconds = parse_duration(timeout)
        interval = parse_duration(health_check)
        if seconds <= 0 or interval <= 0:
            raise ValueError("--forward-timeout and --forward-health-check must be above 0")
        return cls(upstreams, networks, policy, seconds, interval, int(max_fails))

    def forwarder(self, inner: Respond, zones: Sequence[str], *, inner_with_client: bool = False) -> Forwarder:
        """The responder forwarding for ``zones``' server, in front of ``inner``."""
        upstreams = Upstreams(self.upstreams, policy=self.policy, timeout=self.timeout,
                              health_check=self.health_check, max_fails=self.max_fails)
        names = ",".join(u.name for u in upstreams.upstreams)
        if self.allow:
            log.info("forwarding", upstreams=names, allow_recursion=",".join(self.allow), policy=self.policy)
        else:
            log.warning("forwarding_allows_nobody", upstreams=names,
                        hint="--allow-recursion CIDR[,...] names the clients whose queries may be forwarded")
        return Forwarder(inner, upstreams, zones, self.allow, inner_with_client=inner_with_client)


class RecursionAcl:
    """Which client addresses may have their queries forwarded (``--allow-recursion``), cached per address."""

    def __init__(self, networks: Sequence[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self.verdicts: dict[str, bool] = {}  # client host -> allowed (read directly by the fast path)

    def allows(self, client: Any) -> bool:
        """``client`` is a socket address (``(host, port, ...)``) or None."""
        if not client:
            return False
        host = client[0]
        verdict = self.verdicts.get(host)
        if verdict is None:
            verdict = self._decide(host)
            if len(self.verdicts) >= ACL_CACHE_SIZE:
                self.verdicts.clear()
            self.verdicts[host] = verdict
        return verdict

    def _decide(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)


# -- the upstreams: I/O, health, failover ----------------------------------------------------------------------

class Upstream:
    """One upstream resolver: queries with a timeout, and the health check that runs after a failure."""

    def __init__(self, host: str, port: int, *, timeout: float, health_check: float, max_fails: int) -> None:
        self.host = host
        self.port = port
        self.name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.timeout = timeout
        self.health_check = health_check
        self.max_fails = max_fails
        self.fails = 0  # failed health checks in a row
        self._probe: asyncio.Task[None] | None = None
        self._last_failure_log = 0.0
        UPSTREAM_DOWN.labels(self.name).set(0)

    @property
    def down(self) -> bool:
        return self.max_fails > 0 and self.fails >= self.max_fails

    async def exchange(self, query: dns.message.Message, deadline: float) -> dns.message.Message:
        """The upstream's answer (over UDP, then TCP when truncated); raises on timeout or error."""
        loop = asyncio.get_running_loop()
        FORWARD_REQUESTS.labels(self.name).inc()
        response = await dns.asyncquery.udp(query, self.host, timeout=self._timeout(loop, deadline),
                                            port=self.port, ignore_unexpected=True)
        if response.flags & dns.flags.TC:
            FORWARD_TCP_RETRIES.labels(self.name).inc()
            response = await dns.asyncquery.tcp(query, self.host, timeout=self._timeout(loop, deadline),
                                                port=self.port)
        return response

    def _timeout(self, loop: asyncio.AbstractEventLoop, deadline: float) -> float:
        left = deadline - loop.time()
        if left <= 0:
            raise dns.exception.Timeout(timeout=0)
        return min(self.timeout, left)

    def failed(self, exc: BaseException) -> None:
        """A query to this upstream failed: count it, log it (at most once a second), start health checks."""
        FORWARD_FAILURES.labels(self.name).inc()
        now = time.monotonic()
        if now - self._last_failure_log >= 1.0:
            self._last_failure_log = now
            log.warning("forward_upstream_failed", upstream=self.name, error=repr(exc), fails=self.fails)
        if self.max_fails > 0 and (self._probe is None or self._probe.done()):
            self._probe = asyncio.get_running_loop().create_task(self._check_until_healthy(),
                                                                 name=f"forward-health-{self.name}")

    async def _check_until_healthy(self) -> None:
        while True:
            probe = dns.message.make_query(".", "NS")
            try:
                await dns.asyncquery.udp(probe, self.host, timeout=self.timeout, port=self.port,
                                         ignore_unexpected=True)
            except _FAILURES:
                HEALTHCHECK_FAILURES.labels(self.name).inc()
                self.fails += 1
                if self.fails == self.max_fails:
                    UPSTREAM_DOWN.labels(self.name).set(1)
                    log.warning("forward_upstream_down", upstream=self.name, failed_checks=self.fails)
                await asyncio.sleep(self.health_check)
                continue
            if self.down:
                log.info("forward_upstream_up", upstream=self.name)
            self.fails = 0
            UPSTREAM_DOWN.labels(self.name).set(0)
            return

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
            self._probe = None


class Upstreams:
    """The upstream set: policy order, failover, and the deadline of one question."""

    def __init__(self, addresses: Sequence[tuple[str, int]], *, policy: str = "random",
                 timeout: float = DEFAULT_TIMEOUT, health_check: float = DEFAULT_HEALTH_CHECK,
                 max_fails: int = DEFAULT_MAX_FAILS, deadline: float = DEADLINE,
                 rng: random.Random | None = None) -> None:
        if not addresses:
            raise ValueError("no upstreams")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.upstreams = [Upstream(h, p, timeout=timeout, health_check=health_check, max_fails=max_fails)
                          for h, p in addresses]
        self.policy = policy
        self.deadline = deadline
        self._rng = rng or random.Random()
        self._next = 0

    def order(self) -> list[Upstream]:
        """The upstreams to try for one question, in order: the policy's order, those down left out - or, when
        every one is down, one at random."""
        ups = self.upstreams
        if self.policy == "random":
            ups = self._rng.sample(ups, len(ups))
        elif self.policy == "round_robin":
            start = self._next % len(ups)
            self._next += 1
            ups = ups[start:] + ups[:start]
        healthy = [u for u in ups if not u.down]
        return healthy or [self._rng.choice(ups)]

    async def exchange(self, query: dns.message.Message) -> dns.message.Message:
        deadline = asyncio.get_running_loop().time() + self.deadline
        last: BaseException | None = None
        for upstream in self.order():
            try:
                return await upstream.exchange(query, deadline)
            except _FAILURES as exc:
                upstream.failed(exc)
                last = exc
        raise NoUpstreamAnswered(repr(last))

    async def close(self) -> None:
        for upstream in self.upstreams:
            await upstream.close()


# -- the responder -----------------------------------------------------------------------------------------------

class ForwardStats:
    """Plain-integer counters (the fast path cannot afford a locked counter), exported at scrape time."""

    __slots__ = ("__weakref__", "cache", "hits", "misses", "responses")

    def __init__(self, cache: ForwardCache) -> None:
        self.hits = 0
        self.misses = 0
        self.cache = cache
        self.responses = metrics.ResponseCounts("forward")
        _STATS.add(self)


_STATS: weakref.WeakSet[ForwardStats] = weakref.WeakSet()


class _ForwardCollector(Collector):
    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = list(_STATS)
        yield CounterMetricFamily("dnssync_resolver_forward_cache_hits", "Forwarded questions answered from the "
                                  "cache", value=sum(s.hits for s in stats))
        yield CounterMetricFamily("dnssync_resolver_forward_cache_misses", "Forwarded questions not in the cache",
                                  value=sum(s.misses for s in stats))
        yield GaugeMetricFamily("dnssync_resolver_forward_cache_entries", "Forwarded answers cached now",
                                value=sum(len(s.cache) for s in stats))

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        return iter(())


REGISTRY.register(_ForwardCollector())


def zone_wires(zones: Sequence[str]) -> tuple[bytes, ...]:
    """Zone names (``example.org.``) in lower-cased wire form."""
    out = []
    for zone in zones:
        wire = dns.name.from_text(zone).canonicalize().to_wire()
        assert wire is not None
        out.append(wire)
    return tuple(out)


class Forwarder:
    """The responder in front of the authoritative one: forwards what the module docstring says, passes the rest
    to ``inner`` (called with ``client=`` only when ``inner_with_client``). ``respond`` never raises."""

    def __init__(self, inner: Respond, upstreams: Upstreams, zones: Sequence[str], allow: Sequence[str], *,
                 cache: ForwardCache | None = None, inner_with_client: bool = False,
                 max_pending: int = DEFAULT_MAX_PENDING, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.inner_with_client = inner_with_client
        self.upstreams = upstreams
        self.zones = zone_wires(zones)
        self.acl = RecursionAcl(allow)
        self.cache = cache or ForwardCache()
        self.max_pending = max_pending
        self.stats = ForwardStats(self.cache)
        self._rcodes = self.stats.responses.rcodes  # the lane counts here directly
        self._clock = clock
        self._pending: dict[bytes, asyncio.Task[Entry]] = {}
        # Exact query bytes after the ID -> (entry, reply after the ID, valid until: expiry or the next TTL
        # second), per transport.
        self._lane_udp: dict[bytes, tuple[Entry, bytes, float]] = {}
        self._lane_tcp: dict[bytes, tuple[Entry, bytes, float]] = {}
        self._verdicts = self.acl.verdicts

    def respond(self, query: bytes, *, tcp: bool, client: Any = None) -> Reply:
        try:
            # RD set and the question name (up to its first zero byte) not ending in one of our zones: maybe a
            # name to forward (_forward checks label by label; a false "in our zones" here is only a weird name
            # that is not forwarded).
            if len(query) > 12 and query[2] & 0x01 \
                    and not query[12:query.find(b"\0", 12) + 1].lower().endswith(self.zones):
                seen = (self._lane_tcp if tcp else self._lane_udp).get(query[2:])
                if seen is not None and (entry := seen[0]).valid and self._clock() < seen[2] and client is not None \
                        and self._verdicts.get(client[0]):
                    self.stats.hits += 1
                    self._rcodes[entry.rcode] += 1
                    return query[:2] + seen[1]
                forwarded = self._forward(query, tcp, client)
                if forwarded is not None:
                    return forwarded
        except Exception:
            log.exception("forward_failed", size=len(query))
        if self.inner_with_client:
            return self.inner(query, tcp=tcp, client=client)
        return self.inner(query, tcp=tcp)

    def _forward(self, query: bytes, tcp: bool, client: Any) -> Reply:
        """The reply to a query that may be forwarded, or None when it is not (the inner responder answers)."""
        question = parse_question(query)
        if question is None or not self.acl.allows(client):
            return None
        key = question.key
        if in_zones(key[:len(question.qname)], self.zones):
            return None
        now = self._clock()
        entry = self.cache.get(key, now)
        if entry is not None:
            self.stats.hits += 1
            age = int(now - entry.fetched)
            reply = compose(entry, age, query[:4], question, tcp)
            lane = self._lane_tcp if tcp else self._lane_udp
            lane_key = query[2:]
            if len(lane) >= LANE_SIZE and lane_key not in lane:
                lane.clear()
            lane[lane_key] = (entry, reply[2:], min(entry.expires, entry.fetched + age + 1))
            self.stats.responses.count(reply)
            return reply
        self.stats.misses += 1
        task = self._pending.get(key)
        if task is None:
            if len(self._pending) >= self.max_pending:
                busy = compose(servfail_entry(key[:len(question.qname)], question.type_class, now), 0, query[:4],
                               question, tcp)
                self.stats.responses.count(busy)
                return busy
            task = asyncio.get_running_loop().create_task(self._fetch(key, question))
            self._pending[key] = task
        out: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        task.add_done_callback(functools.partial(self._deliver, out, query[:4], question, tcp))
        return out

    async def _fetch(self, key: bytes, question: Question) -> Entry:
        qname_lower = key[:len(question.qname)]
        try:
            msg = dns.message.make_query(dns.name.from_wire(qname_lower, 0)[0],
                                         dns.rdatatype.RdataType.make(int.from_bytes(question.type_class[:2], "big")),
                                         dns.rdataclass.RdataClass.make(int.from_bytes(question.type_class[2:], "big")),
                                         use_edns=0, payload=ADVERTISED_PAYLOAD,
                                         want_dnssec=bool(question.bits & BIT_DO))
            msg.flags = (dns.flags.RD | (dns.flags.CD if question.bits & BIT_CD else 0)
                         | (dns.flags.AD if question.bits & BIT_AD else 0))
            response = await self.upstreams.exchange(msg)
            entry, seconds = entry_from_response(response, qname_lower, self._clock())
            if seconds > 0:
                self.cache.put(key, entry)
            return entry
        except (NoUpstreamAnswered, ValueError) as exc:
            log.debug("forward_no_answer", name=dns.name.from_wire(qname_lower, 0)[0].to_text(), error=str(exc))
            return servfail_entry(qname_lower, question.type_class, self._clock())
        finally:
            self._pending.pop(key, None)

    def _deliver(self, out: asyncio.Future[bytes | None], head4: bytes, question: Question, tcp: bool,
                 task: asyncio.Task[Entry]) -> None:
        if out.done():
            return
        if task.cancelled():
            out.cancel()
            return
        exc = task.exception()
        if exc is not None:
            out.set_exception(exc)
            return
        entry = task.result()
        reply = compose(entry, max(int(self._clock() - entry.fetched), 0), head4, question, tcp)
        self.stats.responses.count(reply)
        out.set_result(reply)

    async def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
        await self.upstreams.close()
