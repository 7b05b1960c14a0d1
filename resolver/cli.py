"""``dnssync-resolver``: the command line, and the assembly of store, answerer, DNS server, etcd mirror and probes.

Every flag can also come from the environment (the flag wins): ``DNSSYNC_RESOLVER_ZONE`` (comma-separated),
``DNSSYNC_RESOLVER_PREFIX``, ``DNSSYNC_RESOLVER_LISTEN``, ``DNSSYNC_RESOLVER_HTTP_LISTEN``,
``DNSSYNC_RESOLVER_LOG_FORMAT``, ``DNSSYNC_RESOLVER_LOG_LEVEL``, ``DNSSYNC_RESOLVER_OWN_RECORDS_ONLY`` and
``DNSSYNC_RESOLVER_SUBTREE_ANSWERS`` (true/false), ``DNSSYNC_RESOLVER_SOA_MNAME``, ``..._SOA_RNAME``,
``..._SOA_REFRESH``, ``..._SOA_RETRY``, ``..._SOA_EXPIRE``, ``..._SOA_MINIMUM``,
``DNSSYNC_RESOLVER_MIN_LEASE_TTL``, ``DNSSYNC_RESOLVER_MAX_LEASE_TTL``, ``DNSSYNC_RESOLVER_FORWARD``
and ``DNSSYNC_RESOLVER_ALLOW_RECURSION`` (comma-separated), ``DNSSYNC_RESOLVER_FORWARD_POLICY``, ``..._TIMEOUT``,
``..._HEALTH_CHECK``, ``..._MAX_FAILS``, ``DNSSYNC_RESOLVER_LOG_QUERIES`` (true/false),
``DNSSYNC_RESOLVER_LOG_QUERIES_RATE``, ``DNSSYNC_RESOLVER_ALLOW_TRANSFER`` and ``DNSSYNC_RESOLVER_NOTIFY``
(comma-separated), ``DNSSYNC_RESOLVER_TSIG_KEY``; ``--etcd-endpoints`` falls back to ``ETCD_URLS``, TLS and
auth come from ``ETCD_*`` (see :mod:`skydns.etcd`).

The responder chain, outermost first: the hidden primary (``--allow-transfer``/``--notify``: zone transfers, NOTIFY
and TSIG, :mod:`resolver.primary`; it transfers the main records, never a view's), the query log (``--log-queries``),
the views (``--view``), forwarding (``--forward``), the main records' answerer. Each wrapper is
installed only when its flag is given, and any of them makes the DNS server hand the client address over
(``with_client``).

Start-up order: the DNS and HTTP sockets are bound first, so a bad address fails at once (one line on stderr,
exit code 2). Then the first load from etcd starts, retried with backoff for as long as it takes: until it is
done ``/readyz`` answers 503 and DNS queries get SERVFAIL. SIGTERM and SIGINT stop the process cleanly (exit 0).

``--view NAME=CIDR[,CIDR...]`` (env ``DNSSYNC_RESOLVER_VIEW``, views separated by ``;``) adds a view: its own
store, answerer and mirror over the view's prefix, behind a :class:`resolver.views.ViewDispatcher`; "loaded"
then means every mirror. ``--workers N`` (env ``DNSSYNC_RESOLVER_WORKERS``) with N > 1 hands the process over
to :mod:`resolver.workers` (a supervisor of N processes each running this :class:`Resolver`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import structlog

from resolver import serials
from resolver.forward import POLICIES, Forwarder, ForwardSettings
from resolver.lookup import Lookup, Mode, SoaFields, soa_name
from resolver.notify import Notifier, parse_targets
from resolver.primary import Primary
from resolver.querylog import QueryLog, parse_rate
from resolver.server import DnsServer, Respond, servfail
from resolver.transfer import parse_acl, parse_tsig_key
from resolver.views import View, ViewDispatcher, ViewSpec, check_views, parse_view
from resolver.workers import parse_workers
from skydns import logs
from skydns.etcd import EtcdClient, EtcdConfigError, EtcdSettings
from skydns.http import HealthServer
from skydns.mirror import EtcdMirror, MirrorMetrics, MirrorStore, within
from skydns.names import InvalidNameError, normalize_name, normalize_prefix
from skydns.settings import FALSE_WORDS, TRUE_WORDS, parse_bool, parse_duration, parse_hostport
from skydns.views import view_prefix

log = structlog.get_logger("resolver.cli")

PROG = "dnssync-resolver"
ENV = "DNSSYNC_RESOLVER_"
EXIT_USAGE = 2
class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _duration_arg(text: str) -> int:
    try:
        return int(parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    def default(name: str, fallback: str) -> str:
        return env.get(ENV + name) or fallback

    p = _OneLineParser(prog=PROG, description="Authoritative DNS server answering SkyDNS records from etcd.")
    p.add_argument("--zone", action="append", metavar="ZONE",
                   help="a zone to serve (repeat for several); env DNSSYNC_RESOLVER_ZONE, comma-separated")
    p.add_argument("--etcd-endpoints", default=None, metavar="URLS",
                   help="comma-separated etcd URLs; env ETCD_URLS; TLS/auth from ETCD_*")
    p.add_argument("--prefix", default=default("PREFIX", "/skydns"), help="etcd key prefix (default /skydns)")
    p.add_argument("--listen", default=default("LISTEN", "127.0.0.1:5353"), metavar="HOST:PORT",
                   help="UDP and TCP DNS address, host:port or [v6]:port (default 127.0.0.1:5353)")
    p.add_argument("--http-listen", default=default("HTTP_LISTEN", "127.0.0.1:8080"), metavar="HOST:PORT",
                   help="/healthz, /readyz and /metrics address (default 127.0.0.1:8080)")
    p.add_argument("--log-format", default=default("LOG_FORMAT", "text"), choices=["json", "text"])
    p.add_argument("--log-level", default=default("LOG_LEVEL", "info"), choices=list(logs.LEVELS))
    p.add_argument("--own-records-only", action=argparse.BooleanOptionalAction,
                   default=env.get(ENV + "OWN_RECORDS_ONLY", "").strip().lower() in TRUE_WORDS,
                   help="a name answers only its own records, not its subtree's (CoreDNS issue #3803)")
    p.add_argument("--min-lease-ttl", type=_duration_arg, default=default("MIN_LEASE_TTL", "30"),
                   metavar="DURATION", help="lower bound of a leased key's TTL (default 30s)")
    p.add_argument("--max-lease-ttl", type=_duration_arg, default=default("MAX_LEASE_TTL", "24h"),
                   metavar="DURATION", help="upper bound of a leased key's TTL (default 24h)")
    p.add_argument("--subtree-answers", action=argparse.BooleanOptionalAction,
                   default=env.get(ENV + "SUBTREE_ANSWERS", "").strip().lower() in TRUE_WORDS,
                   help="CoreDNS compatibility: a name answers every record below it and the query labels * and "
                        "any are wildcards (still never a CNAME beside other data)")
    p.add_argument("--soa-mname", default=default("SOA_MNAME", ""), metavar="NAME",
                   help="the SOA's primary server name (default ns.dns.<zone>)")
    p.add_argument("--soa-rname", default=default("SOA_RNAME", ""), metavar="MAILBOX",
                   help="the SOA's responsible mailbox, a name or user@domain (default hostmaster.<zone>)")
    for timer, fallback in (("refresh", "7200"), ("retry", "1800"), ("expire", "86400"), ("minimum", "30")):
        p.add_argument(f"--soa-{timer}", type=_duration_arg, default=default(f"SOA_{timer.upper()}", fallback),
                       metavar="DURATION", help=f"the SOA's {timer.upper()} (default {fallback}s"
                       + ("; also the SOA's TTL, so how long negative answers are cached)" if timer == "minimum"
                          else ")"))
    p.add_argument("--view", action="append", metavar="NAME=CIDR[,CIDR...]",
                   help="answer clients in these networks from the view NAME's records first (repeatable); "
                        "env DNSSYNC_RESOLVER_VIEW, views separated by ';'")
    p.add_argument("--workers", default=default("WORKERS", "1"), metavar="N|auto",
                   help="DNS worker processes on SO_REUSEPORT sockets (default 1; auto: the CPUs usable)")
    p.add_argument("--forward", action="append", metavar="UPSTREAM[,...]",
                   help="forward RD queries from --allow-recursion clients for names outside every zone to these "
                        "resolvers: IP[:port], [IPv6]:port or a resolv.conf path (repeatable)")
    p.add_argument("--allow-recursion", action="append", metavar="CIDR[,...]",
                   help="clients whose queries may be forwarded (default none: names outside the zones REFUSED)")
    p.add_argument("--forward-policy", default=default("FORWARD_POLICY", "random"), choices=list(POLICIES),
                   help="order in which upstreams are tried (default random, as CoreDNS)")
    p.add_argument("--forward-timeout", default=default("FORWARD_TIMEOUT", "2s"), metavar="DURATION",
                   help="timeout of one try at one upstream (default 2s)")
    p.add_argument("--forward-health-check", default=default("FORWARD_HEALTH_CHECK", "500ms"), metavar="DURATION",
                   help="interval of an upstream's health checks after it failed (default 500ms)")
    p.add_argument("--forward-max-fails", default=default("FORWARD_MAX_FAILS", "2"), metavar="N",
                   help="failed health checks in a row before an upstream is down (default 2; 0: never down)")
    p.add_argument("--log-queries", action=argparse.BooleanOptionalAction, default=None,
                   help="log one line per query (client, name, type, rcode, size, duration); env "
                        "DNSSYNC_RESOLVER_LOG_QUERIES")
    p.add_argument("--log-queries-rate", default=default("LOG_QUERIES_RATE", "100"), metavar="N",
                   help="at most N query lines per second, the rest counted (default 100)")
    p.add_argument("--allow-transfer", action="append", metavar="CIDR[,...]",
                   help="clients that may transfer the zones (AXFR/IXFR over TCP; default nobody); env "
                        "DNSSYNC_RESOLVER_ALLOW_TRANSFER")
    p.add_argument("--tsig-key", default=default("TSIG_KEY", ""), metavar="NAME:ALGORITHM:BASE64",
                   help="require transfers to be signed with this TSIG key (hmac-sha256, -sha384, -sha512, ...); "
                        "NOTIFYs are signed with it")
    p.add_argument("--notify", action="append", metavar="HOST[:PORT][,...]",
                   help="secondaries to send NOTIFY to when a zone's serial moves (needs --allow-transfer)")
    return p


@dataclass(frozen=True)
class ResolverConfig:
    zones: tuple[str, ...]
    etcd: EtcdSettings
    prefix: str = "/skydns"
    listen: tuple[str, int] = ("127.0.0.1", 5353)
    http_listen: tuple[str, int] = ("127.0.0.1", 8080)
    log_format: str = "text"
    log_level: str = "info"
    own_records_only: bool = False
    subtree_answers: bool = False
    soa: SoaFields | None = None  # None: CoreDNS's values
    min_lease_ttl: int = 30
    max_lease_ttl: int = 86400
    views: tuple[ViewSpec, ...] = ()
    workers: int = 1
    reuse_port: bool = False  # set in worker processes (resolver.workers)
    forward: ForwardSettings | None = None
    log_queries: bool = False
    log_queries_rate: int = 100
    allow_transfer: tuple[str, ...] = ()  # CIDRs (resolver.transfer.parse_acl)
    tsig_key: str = ""  # NAME:ALGORITHM:BASE64, or empty
    notify: tuple[tuple[str, int], ...] = ()


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> ResolverConfig:
    """Flags + environment -> a checked config; any problem exits 2 with one line on stderr."""
    env = os.environ if env is None else env
    parser = build_parser(env)
    args = parser.parse_args(argv)
    zones_raw = args.zone or [z for z in env.get(ENV + "ZONE", "").split(",") if z.strip()]
    if not zones_raw:
        parser.error("at least one --zone is required (or DNSSYNC_RESOLVER_ZONE)")
    for flag in ("OWN_RECORDS_ONLY", "SUBTREE_ANSWERS"):
        word = env.get(ENV + flag, "").strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            parser.error(f"DNSSYNC_RESOLVER_{flag} must be true or false, not {word!r}")
    if args.own_records_only and args.subtree_answers:
        parser.error("--own-records-only and --subtree-answers exclude each other")
    try:
        zones = tuple(dict.fromkeys(normalize_name(z.strip()) for z in zones_raw))
        prefix = normalize_prefix(args.prefix)
        listen = parse_hostport(args.listen, "--listen")
        http_listen = parse_hostport(args.http_listen, "--http-listen")
        etcd = EtcdSettings.from_env(args.etcd_endpoints, env=env)
        views_raw = args.view or [v for v in env.get(ENV + "VIEW", "").split(";") if v.strip()]
        views = check_views([parse_view(v) for v in views_raw])
        workers = parse_workers(args.workers)
        forward = ForwardSettings.parse(args.forward or [env.get(ENV + "FORWARD", "")],
                                        args.allow_recursion or [env.get(ENV + "ALLOW_RECURSION", "")],
                                        policy=args.forward_policy, timeout=args.forward_timeout,
                                        health_check=args.forward_health_check, max_fails=args.forward_max_fails,
                                        listen=listen)
        log_queries = parse_bool(env.get(ENV + "LOG_QUERIES", "")) if args.log_queries is None else args.log_queries
        log_queries_rate = parse_rate(args.log_queries_rate)
        allow_transfer = tuple(str(n) for n in parse_acl(
            args.allow_transfer or [env.get(ENV + "ALLOW_TRANSFER", "")]))
        if args.tsig_key:
            parse_tsig_key(args.tsig_key)
        notify = parse_targets(args.notify or [env.get(ENV + "NOTIFY", "")])
    except (InvalidNameError, ValueError, EtcdConfigError) as exc:
        parser.error(str(exc))
    min_ttl, max_ttl = args.min_lease_ttl, args.max_lease_ttl  # argparse converts string defaults with type=, too
    if min_ttl > max_ttl:
        parser.error(f"--min-lease-ttl ({min_ttl}s) is above --max-lease-ttl ({max_ttl}s)")
    soa = _soa_fields(parser, args)
    if notify and not allow_transfer:
        parser.error("--notify needs --allow-transfer: the secondaries it notifies must be allowed to transfer")
    if args.tsig_key and not allow_transfer:
        parser.error("--tsig-key needs --allow-transfer (it signs zone transfers)")
    return ResolverConfig(zones=zones, etcd=etcd, prefix=prefix, listen=listen, http_listen=http_listen,
                          log_format=args.log_format, log_level=args.log_level,
                          own_records_only=args.own_records_only, subtree_answers=args.subtree_answers, soa=soa,
                          min_lease_ttl=min_ttl, max_lease_ttl=max_ttl,
                          views=views, workers=workers, forward=forward, log_queries=log_queries,
                          log_queries_rate=log_queries_rate, allow_transfer=allow_transfer,
                          tsig_key=args.tsig_key, notify=notify)


def _soa_fields(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SoaFields:
    """The --soa-* flags, checked: names valid, timers within RFC 2181's 31 bits."""
    timers = {t: getattr(args, f"soa_{t}") for t in ("refresh", "retry", "expire", "minimum")}
    for timer, value in timers.items():
        if not 0 <= value <= 0x7FFFFFFF:
            parser.error(f"--soa-{timer} must be between 0 and 2147483647 seconds, not {value}")
    try:
        mname = soa_name(args.soa_mname) if args.soa_mname else None
        rname = soa_name(args.soa_rname, mailbox=True) if args.soa_rname else None
    except ValueError as exc:
        parser.error(f"--soa-mname/--soa-rname: {exc}")
    return SoaFields(mname=mname, rname=rname, **timers)


StoreFactory = Callable[[ResolverConfig], MirrorStore]
AnswererFactory = Callable[[ResolverConfig, Any], Respond]


def _real_store(config: ResolverConfig) -> MirrorStore:
    from resolver.store import Store
    return Store(config.prefix)


def _real_answerer(config: ResolverConfig, store: Any) -> Respond:
    from resolver.answers import Answerer
    answerer = Answerer(store, config.zones, own_records_only=config.own_records_only,
                        subtree_answers=config.subtree_answers, soa=config.soa,
                        min_lease_ttl=config.min_lease_ttl, max_lease_ttl=config.max_lease_ttl)
    return answerer.respond


class Resolver:
    """The running resolver: ``bind()`` (raises ``OSError``), ``await start()``, ``await stop()``.

    Used by :func:`main` and, in-process, by the tests and benchmarks (ports 0 pick free ones).
    """

    def __init__(self, config: ResolverConfig, *, store_factory: StoreFactory = _real_store,
                 answerer_factory: AnswererFactory = _real_answerer, idle_timeout: float = 10.0,
                 max_connections: int = 1000) -> None:
        self.config = config
        self.store = store_factory(config)
        self._respond = answerer_factory(config, self.store)
        self.dns = DnsServer(servfail, idle_timeout=idle_timeout, max_connections=max_connections)
        self.client: EtcdClient | None = None
        self.mirror: EtcdMirror | None = None
        self.http: HealthServer | None = None
        self._mirror_task: asyncio.Task[None] | None = None
        self._serials: dict[int, asyncio.Task[dict[str, int | None]]] = {}  # store id -> its history read
        # Forwarding (resolver.forward): in front of the main records' answerer, behind the views.
        self.forwarder: Forwarder | None = None
        if config.forward is not None:
            self.forwarder = config.forward.forwarder(self._respond, config.zones,
                                                      inner_with_client=self.dns.with_client)
            self._respond = self.forwarder.respond
            self.dns.with_client = True
        # Views (resolver.views): each its own store, answerer and mirror over the view's prefix.
        self.views = [self._view(spec, store_factory, answerer_factory) for spec in config.views]
        self._view_mirrors: list[tuple[EtcdClient, asyncio.Task[None]]] = []
        if self.views:
            self._respond = ViewDispatcher(self._respond, self.views, config.zones,
                                           main_wants_client=self.dns.with_client).respond
            self.dns.with_client = True
        if config.log_queries:  # outermost, so each line has the rcode and size actually sent
            self._respond = QueryLog(self._respond, rate=config.log_queries_rate,
                                     inner_with_client=self.dns.with_client).respond
            self.dns.with_client = True
        self.primary: Primary | None = None
        self._exact_task: asyncio.Task[None] | None = None
        if config.allow_transfer or config.notify:
            self._respond = self._primary(config)
            self.dns.with_client = True

    def _primary(self, config: ResolverConfig) -> Respond:
        """The hidden primary (resolver.primary) over the main records, outermost in the chain."""
        mode = Mode.SUBTREE if config.subtree_answers else Mode.OWN if config.own_records_only else Mode.DEFAULT
        lookup = Lookup(self.store, config.zones, mode=mode, soa=config.soa,  # type: ignore[arg-type]
                        min_lease_ttl=config.min_lease_ttl, max_lease_ttl=config.max_lease_ttl)
        key = parse_tsig_key(config.tsig_key) if config.tsig_key else None
        notifier = Notifier(config.notify, self._soa_now, key=key) if config.notify else None
        self.primary = Primary(self._respond, lookup, acl=parse_acl(config.allow_transfer), key=key,
                               inner_with_client=self.dns.with_client, notifier=notifier)
        return self.primary.respond

    def _soa_now(self, zone: str) -> tuple[int, bytes] | None:
        return self.primary.soa_now(zone) if self.primary is not None else None

    def _view(self, spec: ViewSpec, store_factory: StoreFactory, answerer_factory: AnswererFactory) -> View:
        view_config = dataclasses.replace(self.config, prefix=view_prefix(spec.name))
        store = store_factory(view_config)
        return View(spec, answerer_factory(view_config, store), store)

    def bind(self) -> tuple[str, int]:
        return self.dns.bind(*self.config.listen, reuse_port=self.config.reuse_port)

    @property
    def dns_address(self) -> tuple[str, int]:
        return self.dns.address

    def _ready(self) -> bool:
        """Every mirror (the main records' and each view's) has done its first load."""
        return (self.mirror is not None and self.mirror.is_ready()
                and all(v.mirror is not None and v.mirror.is_ready() for v in self.views))

    def _loaded(self) -> None:
        self._catch_up_serials()
        if self.primary is not None and self._exact_task is None and self.mirror is not None \
                and self.mirror.is_ready():
            self._exact_task = asyncio.create_task(self._serials_then_transfers(), name="serials-exact")
        if self._ready():
            self.dns.set_responder(self._respond)

    def _catch_up_serials(self) -> None:
        """Once per store, right after its first load: SOA serials that count the deletes the load could not
        see, from etcd's history (resolver.serials); :meth:`serials_exact` waits for them."""
        for store in (self.store, *(v.store for v in self.views)):
            anchors = getattr(store, "serial_anchors", None)
            if anchors is not None and anchors() and id(store) not in self._serials and self.client is not None:
                self._serials[id(store)] = asyncio.create_task(serials.catch_up(self.client, store))

    async def _serials_then_transfers(self) -> None:
        """Transfers and NOTIFYs start once the main store's serials include etcd's history."""
        task = self._serials.get(id(self.store))
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        assert self.primary is not None
        self.primary.set_exact()

    async def serials_exact(self) -> None:
        """Wait until the serials of every store loaded so far include etcd's history."""
        await asyncio.gather(*self._serials.values())

    def _health(self) -> tuple[bool, dict[str, Any]]:
        if self.mirror is None:
            return True, {"etcd": "not started", "ready": False}
        details = self.mirror.health()
        if self.views:
            details["views"] = {v.spec.name: v.mirror.health() if v.mirror is not None else {"etcd": "not started"}
                                for v in self.views}
        return True, details

    async def start(self, *, serve_dns: bool = True) -> None:
        """Serve probes, DNS (unless ``serve_dns`` is false: then call :meth:`start_dns` later) and the mirrors."""
        if serve_dns and self.dns._tcp_sock is None:
            self.bind()
        self.http = HealthServer(*self.config.http_listen, ready=self._ready, health=self._health)
        await self.http.start()
        if serve_dns:
            await self.dns.start()
        self.client = EtcdClient(self.config.etcd)
        self.mirror = EtcdMirror(self.client, self.store, self.config.prefix,
                                 metrics=MirrorMetrics.of("dnssync_resolver"), on_first_load=self._loaded)
        for view in self.views:
            client = EtcdClient(self.config.etcd)
            view.mirror = EtcdMirror(client, view.store, view_prefix(view.spec.name), on_first_load=self._loaded,
                                     metrics=MirrorMetrics("dnssync_resolver_view"))  # exported by resolver.views
            task = asyncio.create_task(view.mirror.run(), name=f"etcd-mirror-view-{view.spec.name}")
            self._view_mirrors.append((client, task))
        self._mirror_task = asyncio.create_task(self.mirror.run(), name="etcd-mirror")

    async def start_dns(self) -> None:
        """Bind (unless bound) and serve DNS, after ``start(serve_dns=False)``."""
        if self.dns._tcp_sock is None:
            self.bind()
        await self.dns.start()

    async def stop(self) -> None:
        tasks: list[asyncio.Task[Any]] = [t for t in [self._mirror_task] + [t for _, t in self._view_mirrors]
                                          if t is not None]
        tasks += self._serials.values()
        if self._exact_task is not None:
            tasks.append(self._exact_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._mirror_task = None
        if self.http is not None:
            await self.http.close()
        await self.dns.close()
        if self.primary is not None:
            await self.primary.close()
        if self.forwarder is not None:
            await self.forwarder.close()
        for client in [self.client] + [c for c, _ in self._view_mirrors]:
            if client is None:
                continue
            try:
                await within(5, client.close())
            except Exception as exc:  # closing a channel to a dead etcd must not block the exit
                log.debug("etcd_close_failed", error=repr(exc))
        self._view_mirrors = []

    @property
    def mirror_task(self) -> asyncio.Task[None] | None:
        return self._mirror_task

    @property
    def mirror_tasks(self) -> list[asyncio.Task[None]]:
        """The main mirror's task and every view's."""
        main = [self._mirror_task] if self._mirror_task is not None else []
        return main + [t for _, t in self._view_mirrors]


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


async def serve(config: ResolverConfig) -> int:
    resolver = Resolver(config)
    try:
        resolver.bind()
    except OSError as exc:
        return _fail(f"cannot listen on {config.listen[0]}:{config.listen[1]}: {exc.strerror or exc}")
    try:
        await resolver.start()
    except OSError as exc:
        await resolver.stop()
        return _fail(f"cannot listen on {config.http_listen[0]}:{config.http_listen[1]} (--http-listen): "
                     f"{exc.strerror or exc}")
    log.info("resolver_started", zones=",".join(config.zones), prefix=config.prefix,
             etcd=",".join(config.etcd.endpoints), own_records_only=config.own_records_only)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await run_until_stopped(resolver, stop)


async def run_until_stopped(resolver: Resolver, stop: asyncio.Event) -> int:
    """Serve until ``stop`` is set (exit code 0) or a mirror dies (1), then stop ``resolver``."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *resolver.mirror_tasks], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if stopper not in done:
        task = next(iter(done))
        error = task.exception() if not task.cancelled() else None
        log.error("etcd_mirror_died", mirror=task.get_name(), error=repr(error))
        code = 1
    stopper.cancel()
    log.info("resolver_stopping")
    await resolver.stop()
    log.info("resolver_stopped")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    if config.workers > 1:
        from resolver.workers import supervise
        logs.configure(config.log_format, config.log_level)
        import uvloop
        return uvloop.run(supervise(config))
    logs.configure(config.log_format, config.log_level)
    import uvloop
    return uvloop.run(serve(config))
