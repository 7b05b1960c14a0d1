"""``dnssync-resolver``: the command line, and the assembly of store, answerer, DNS server, etcd mirror and probes.

Every flag can also come from the environment (the flag wins): ``DNSSYNC_RESOLVER_ZONE`` (comma-separated),
``DNSSYNC_RESOLVER_PREFIX``, ``DNSSYNC_RESOLVER_LISTEN``, ``DNSSYNC_RESOLVER_HTTP_LISTEN``,
``DNSSYNC_RESOLVER_LOG_FORMAT``, ``DNSSYNC_RESOLVER_LOG_LEVEL``, ``DNSSYNC_RESOLVER_OWN_RECORDS_ONLY``
(true/false), ``DNSSYNC_RESOLVER_MIN_LEASE_TTL``, ``DNSSYNC_RESOLVER_MAX_LEASE_TTL``; ``--etcd-endpoints`` falls
back to ``ETCD_URLS``, TLS and auth come from ``ETCD_*`` (see :mod:`skydns.etcd`).

Start-up order: the DNS and HTTP sockets are bound first, so a bad address fails at once (one line on stderr,
exit code 2). Then the first load from etcd starts, retried with backoff for as long as it takes: until it is
done ``/readyz`` answers 503 and DNS queries get SERVFAIL. SIGTERM and SIGINT stop the process cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import structlog

from resolver.server import DnsServer, Respond, servfail
from skydns import logs
from skydns.etcd import EtcdClient, EtcdConfigError, EtcdSettings
from skydns.http import HealthServer
from skydns.mirror import EtcdMirror, MirrorMetrics, MirrorStore, within
from skydns.names import InvalidNameError, normalize_name, normalize_prefix
from skydns.settings import FALSE_WORDS, TRUE_WORDS, parse_duration, parse_hostport

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
    min_lease_ttl: int = 30
    max_lease_ttl: int = 86400


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> ResolverConfig:
    """Flags + environment -> a checked config; any problem exits 2 with one line on stderr."""
    env = os.environ if env is None else env
    parser = build_parser(env)
    args = parser.parse_args(argv)
    zones_raw = args.zone or [z for z in env.get(ENV + "ZONE", "").split(",") if z.strip()]
    if not zones_raw:
        parser.error("at least one --zone is required (or DNSSYNC_RESOLVER_ZONE)")
    own_env = env.get(ENV + "OWN_RECORDS_ONLY", "").strip().lower()
    if own_env not in TRUE_WORDS | FALSE_WORDS:
        parser.error(f"DNSSYNC_RESOLVER_OWN_RECORDS_ONLY must be true or false, not {own_env!r}")
    try:
        zones = tuple(dict.fromkeys(normalize_name(z.strip()) for z in zones_raw))
        prefix = normalize_prefix(args.prefix)
        listen = parse_hostport(args.listen, "--listen")
        http_listen = parse_hostport(args.http_listen, "--http-listen")
        etcd = EtcdSettings.from_env(args.etcd_endpoints, env=env)
    except (InvalidNameError, ValueError, EtcdConfigError) as exc:
        parser.error(str(exc))
    min_ttl, max_ttl = args.min_lease_ttl, args.max_lease_ttl  # argparse converts string defaults with type=, too
    if min_ttl > max_ttl:
        parser.error(f"--min-lease-ttl ({min_ttl}s) is above --max-lease-ttl ({max_ttl}s)")
    return ResolverConfig(zones=zones, etcd=etcd, prefix=prefix, listen=listen, http_listen=http_listen,
                          log_format=args.log_format, log_level=args.log_level,
                          own_records_only=args.own_records_only, min_lease_ttl=min_ttl, max_lease_ttl=max_ttl)


StoreFactory = Callable[[ResolverConfig], MirrorStore]
AnswererFactory = Callable[[ResolverConfig, Any], Respond]


def _real_store(config: ResolverConfig) -> MirrorStore:
    from resolver.store import Store
    return Store(config.prefix)


def _real_answerer(config: ResolverConfig, store: Any) -> Respond:
    from resolver.answers import Answerer
    answerer = Answerer(store, config.zones, own_records_only=config.own_records_only,
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

    def bind(self) -> tuple[str, int]:
        return self.dns.bind(*self.config.listen)

    @property
    def dns_address(self) -> tuple[str, int]:
        return self.dns.address

    def _ready(self) -> bool:
        return self.mirror is not None and self.mirror.is_ready()

    def _health(self) -> tuple[bool, dict[str, Any]]:
        if self.mirror is None:
            return True, {"etcd": "not started", "ready": False}
        return True, self.mirror.health()

    async def start(self) -> None:
        if self.dns._tcp_sock is None:
            self.bind()
        self.http = HealthServer(*self.config.http_listen, ready=self._ready, health=self._health)
        await self.http.start()
        await self.dns.start()
        self.client = EtcdClient(self.config.etcd)
        self.mirror = EtcdMirror(self.client, self.store, self.config.prefix,
                                 metrics=MirrorMetrics.of("dnssync_resolver"),
                                 on_first_load=lambda: self.dns.set_responder(self._respond))
        self._mirror_task = asyncio.create_task(self.mirror.run(), name="etcd-mirror")

    async def stop(self) -> None:
        if self._mirror_task is not None:
            self._mirror_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._mirror_task
            self._mirror_task = None
        if self.http is not None:
            await self.http.close()
        await self.dns.close()
        if self.client is not None:
            try:
                await within(5, self.client.close())
            except Exception as exc:  # closing a channel to a dead etcd must not block the exit
                log.debug("etcd_close_failed", error=repr(exc))

    @property
    def mirror_task(self) -> asyncio.Task[None] | None:
        return self._mirror_task


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
    stopper = asyncio.create_task(stop.wait())
    watched = [stopper] + ([resolver.mirror_task] if resolver.mirror_task else [])
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if stopper not in done:
        task = resolver.mirror_task
        error = task.exception() if task is not None and not task.cancelled() else None
        log.error("etcd_mirror_died", error=repr(error))
        code = 1
    stopper.cancel()
    log.info("resolver_stopping")
    await resolver.stop()
    log.info("resolver_stopped")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    logs.configure(config.log_format, config.log_level)
    import uvloop
    return uvloop.run(serve(config))
