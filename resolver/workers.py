"""``--workers N``: N resolver processes on one DNS address, one supervisor, one probe and metrics endpoint.

``--workers 1`` (the default) is the single-process resolver of :mod:`resolver.cli`, untouched: nothing here
runs. With N > 1 the process started by the user becomes the **supervisor**; it answers no DNS itself:

* It binds the DNS address first (``SO_REUSEPORT``, UDP and TCP), so a bad or taken address fails at once (one
  line on stderr, exit code 2), and a port 0 is resolved to one port for all; then it binds ``--http-listen``
  (exit 2 likewise). It holds that first socket pair until every worker has bound its own, so the port cannot
  be lost while the workers start (queries that reach it meanwhile go unanswered; the workers answer SERVFAIL
  until loaded anyway).
* Each **worker** is a fresh interpreter (``python -m resolver.workers``) running the ordinary resolver
  (:class:`resolver.cli.Resolver`): its own store, answer cache and etcd watch(es) (one per view too), its own
  ``SO_REUSEPORT`` UDP and TCP sockets on the DNS address - the kernel spreads clients over the workers by
  their address and port - and probes and metrics on a private loopback port. Its configuration comes pickled
  on its stdin, which then stays open as a lifeline: when the supervisor is gone (even killed), the worker
  stops. Its stdout carries status lines to the supervisor (``{"http": port}``, ``{"dns": "bound"}``); its logs
  go to the shared stderr with ``worker=<index>``.
* A worker that exits (crash, kill, a mirror that died) is logged (``worker_exited``) and restarted with backoff
  (0.5 s doubling to 10 s; reset after 30 s of running). A restarted worker binds its DNS sockets only once its
  records are loaded, so the kernel sends it no client before it can answer; until then its share goes to the
  others. A worker exiting with code 2 (a usage error it cannot recover from) stops everything with exit 2.
* SIGTERM/SIGINT stop the workers (SIGTERM, SIGKILL after 10 s) and the supervisor exits 0. Workers run in a
  session of their own, so a terminal's Ctrl-C reaches only the supervisor, which stops them in order.

Zone transfers (``--allow-transfer``): every worker serves them from its own copy of the zones over its own
TCP socket (a secondary reaches whichever worker the kernel picks); the serial is the etcd revision, so every
worker gives the same one for the same state, and each keeps its own IXFR journal from its start (a worker
restarted since the secondary's serial answers an IXFR with the full zone). Only worker 0 sends the NOTIFYs.

One HTTP endpoint for all: the supervisor serves ``--http-listen`` and asks every worker's private endpoint at
request time (in parallel, 1 s timeout each): ``/readyz`` is 200 when every worker runs, has bound DNS and is
ready (all its mirrors loaded); ``/healthz`` is 200 while the supervisor runs, with each worker's health JSON
under ``workers``; ``/metrics`` merges the workers' metrics, each sample with a ``worker="<index>"`` label (sum
them over ``worker`` for totals), plus ``dnssync_resolver_workers`` (configured), ``dnssync_resolver_workers_up``
and ``dnssync_resolver_worker_restarts_total{worker}``. Scraping over HTTP rather than prometheus_client's
multiprocess mode keeps the workers' hot-path counters (plain integers summed by collectors at scrape time,
:mod:`resolver.metrics`) and their gauges exactly as in one process, and a worker's numbers vanish when it does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import pickle
import signal
import struct
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from resolver.cli import Resolver, ResolverConfig

log = structlog.get_logger("resolver.workers")

EXIT_USAGE = 2
MAX_WORKERS = 256
SCRAPE_TIMEOUT = 1.0
STOP_GRACE = 10.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0  # a worker that ran this long has its restart backoff reset
PRIVATE_HOST = "127.0.0.1"
_LENGTH = struct.Struct("!Q")


def parse_workers(text: str) -> int:
    """``--workers``: a number from 1 to 256, or ``auto`` (the CPUs this process may run on)."""
    text = str(text).strip().lower()
    if text == "auto":
        return max(len(os.sched_getaffinity(0)), 1)
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"--workers: expected a number of processes or 'auto', not {text!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"--workers: {count} is not between 1 and {MAX_WORKERS}")
    return count


def label_samples(texts: dict[int, str]) -> list[Metric]:
    """Prometheus text expositions, one per worker -> merged families, every sample labelled ``worker``."""
    families: dict[str, Metric] = {}
    for index in sorted(texts):
        for family in text_string_to_metric_families(texts[index]):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type,
                                                        family.unit)
            merged.samples.extend(s._replace(labels={**s.labels, "worker": str(index)}) for s in family.samples)
    return list(families.values())


def backoff_delay(failures_in_a_row: int) -> float:
    """Seconds to wait before restarting a worker that failed this many times in a row (1 or more)."""
    return float(min(BACKOFF_INITIAL * 2 ** max(failures_in_a_row - 1, 0), BACKOFF_MAX))


# -- the supervisor -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Slot:
    """One worker position: the process now running there (if any) and what it reported."""

    index: int
    proc: asyncio.subprocess.Process | None = None
    http_port: int | None = None
    dns_bound: bool = False
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    """Runs ``config.workers`` workers and the shared HTTP endpoint (see the module docstring)."""

    def __init__(self, config: ResolverConfig) -> None:
        self.config = config
        self.slots = [Slot(i) for i in range(config.workers)]
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self._probe: Any = None  # the first DNS socket pair, held until every worker has bound its own
        self._worker_config: ResolverConfig | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(config.workers, 2),
                                                           thread_name_prefix="worker-scrape")
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_WorkersCollector(self))
        self.http: Any = None

    # -- start-up ---------------------------------------------------------------------------------------

    def bind(self) -> tuple[str, int]:
        """Bind the DNS address for the workers (``OSError`` when it cannot be); returns the bound address."""
        from resolver.server import bind_sockets
        host, port = self.config.listen
        self._probe = bind_sockets(host, port, reuse_port=True)
        bound = self._probe[1].getsockname()
        self._worker_config = dataclasses.replace(self.config, workers=1, reuse_port=True, listen=(host, bound[1]),
                                                  http_listen=(PRIVATE_HOST, 0))
        return host, int(bound[1])

    async def start_http(self) -> None:
        from skydns.http import HealthServer
        self.http = HealthServer(*self.config.http_listen, ready=self.ready, health=self.health,
                                 registry=self.registry)
        await self.http.start()

    def _release_probe(self) -> None:
        if self._probe is not None and all(s.dns_bound for s in self.slots):
            for sock in self._probe:
                sock.close()
            self._probe = None

    # -- the workers ------------------------------------------------------------------------------------

    async def _spawn(self, slot: Slot, late_bind: bool) -> asyncio.subprocess.Process:
        args = [sys.executable, "-m", "resolver.workers", str(slot.index)] + (["--late-bind"] if late_bind else [])
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, start_new_session=True)
        assert proc.stdin is not None
        payload = pickle.dumps(self._worker_config)
        proc.stdin.write(_LENGTH.pack(len(payload)) + payload)  # then held open: the worker's lifeline
        slot.proc, slot.http_port, slot.dns_bound, slot.started_at = proc, None, False, time.monotonic()
        log.info("worker_started", worker=slot.index, pid=proc.pid, late_bind=late_bind)
        return proc

    async def _read_status(self, slot: Slot, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            try:
                status = json.loads(line)
            except ValueError:
                continue  # not ours (a library printing to stdout): ignore
            if slot.proc is not proc or not isinstance(status, dict):
                continue
            if "http" in status:
                slot.http_port = int(status["http"])
            if status.get("dns") == "bound":
                slot.dns_bound = True
                self._release_probe()

    async def _run_slot(self, slot: Slot) -> None:
        late_bind = False
        while not self.stopping.is_set():
            try:
                proc = await self._spawn(slot, late_bind)
            except OSError as exc:  # cannot fork or exec now: count it as a failed start and retry
                log.error("worker_start_failed", worker=slot.index, error=repr(exc))
                code: int | None = None
                ran = 0.0
            else:
                reader = asyncio.create_task(self._read_status(slot, proc))
                code = await proc.wait()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(reader, 1.0)
                if proc.stdin is not None:
                    proc.stdin.close()
                slot.dns_bound = False
                if self.stopping.is_set():
                    return
                ran = time.monotonic() - slot.started_at
                log.error("worker_exited", worker=slot.index, pid=proc.pid, exit_code=code, seconds=round(ran, 3))
            if code == EXIT_USAGE:
                self.exit_code = EXIT_USAGE
                self.stopping.set()
                return
            slot.failures_in_a_row = 1 if ran >= STABLE_AFTER else slot.failures_in_a_row + 1
            delay = backoff_delay(slot.failures_in_a_row)
            log.warning("worker_restarting", worker=slot.index, in_seconds=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            slot.restarts += 1
            late_bind = True

    async def run(self) -> int:
        """Run the workers until SIGTERM/SIGINT (0) or a worker's usage error (2); then stop them all."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        tasks = [asyncio.create_task(self._run_slot(s), name=f"worker-{s.index}") for s in self.slots]
        await self.stopping.wait()
        log.info("resolver_stopping", workers=len(self.slots))
        await asyncio.gather(*(self._stop_worker(s) for s in self.slots))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.close()
        log.info("resolver_stopped")
        return self.exit_code

    async def _stop_worker(self, slot: Slot) -> None:
        proc = slot.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            log.warning("worker_killed", worker=slot.index, pid=proc.pid, after_seconds=STOP_GRACE)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self._probe is not None:
            for sock in self._probe:
                sock.close()
            self._probe = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the shared endpoint ----------------------------------------------------------------------------

    def scrape(self, path: str) -> dict[int, tuple[int, bytes] | None]:
        """``path`` from every running worker's private endpoint, in parallel: index -> (status, body) or None."""
        wanted = [(s.index, s.http_port) for s in self.slots if s.alive() and s.http_port is not None]
        futures = {i: self._pool.submit(_http_get, port, path) for i, port in wanted}
        out: dict[int, tuple[int, bytes] | None] = {s.index: None for s in self.slots}
        for i, future in futures.items():
            try:
                out[i] = future.result(SCRAPE_TIMEOUT + 1)
            except Exception:  # a worker that does not answer in time counts as not there
                out[i] = None
        return out

    def ready(self) -> bool:
        if self.stopping.is_set() or not all(s.alive() and s.dns_bound for s in self.slots):
            return False
        return all(r is not None and r[0] == 200 for r in self.scrape("/readyz").values())

    def health(self) -> tuple[bool, dict[str, Any]]:
        answers = self.scrape("/healthz")
        workers: dict[str, Any] = {}
        for slot in self.slots:
            got = answers.get(slot.index)
            entry: dict[str, Any] = {"pid": slot.proc.pid if slot.proc is not None else None,
                                     "running": slot.alive(), "dns_bound": slot.dns_bound,
                                     "restarts": slot.restarts}
            if got is not None:
                with contextlib.suppress(ValueError):
                    entry["health"] = json.loads(got[1])
            workers[str(slot.index)] = entry
        etcd = {w.get("health", {}).get("etcd") for w in workers.values()}
        return True, {"workers": workers, "etcd": etcd.pop() if len(etcd) == 1 else "mixed"}


def _http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{PRIVATE_HOST}:{port}{path}", timeout=SCRAPE_TIMEOUT) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


class _WorkersCollector(Collector):
    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor

    def collect(self) -> Iterator[Metric]:
        sup = self._sup
        texts = {i: got[1].decode("utf-8", "replace") for i, got in sup.scrape("/metrics").items()
                 if got is not None and got[0] == 200}
        yield from label_samples(texts)
        yield GaugeMetricFamily("dnssync_resolver_workers", "Worker processes configured (--workers)",
                                value=len(sup.slots))
        yield GaugeMetricFamily("dnssync_resolver_workers_up", "Worker processes running with DNS bound",
                                value=sum(1 for s in sup.slots if s.alive() and s.dns_bound))
        restarts = CounterMetricFamily("dnssync_resolver_worker_restarts", "Workers restarted after they exited",
                                       labels=["worker"])
        for slot in sup.slots:
            restarts.add_metric([str(slot.index)], slot.restarts)
        yield restarts

    def describe(self) -> Iterator[Metric]:
        return iter(())


async def supervise(config: ResolverConfig) -> int:
    """The ``--workers N`` (N > 1) entry point: bind, serve the shared endpoint, run the workers."""
    supervisor = Supervisor(config)
    try:
        supervisor.bind()
    except OSError as exc:
        await supervisor.close()
        return _fail(f"cannot listen on {config.listen[0]}:{config.listen[1]}: {exc.strerror or exc}")
    try:
        await supervisor.start_http()
    except OSError as exc:
        await supervisor.close()
        return _fail(f"cannot listen on {config.http_listen[0]}:{config.http_listen[1]} (--http-listen): "
                     f"{exc.strerror or exc}")
    log.info("resolver_started", zones=",".join(config.zones), prefix=config.prefix, workers=config.workers,
             etcd=",".join(config.etcd.endpoints))
    return await supervisor.run()


# -- a worker -----------------------------------------------------------------------------------------------


def read_config(stream: BinaryIO) -> ResolverConfig:
    """The configuration the supervisor wrote on the worker's stdin (length-prefixed pickle)."""
    head = stream.read(_LENGTH.size)
    if len(head) != _LENGTH.size:
        raise EOFError("no configuration on stdin")
    (size,) = _LENGTH.unpack(head)
    config: ResolverConfig = pickle.loads(stream.read(size))
    return config


def _fail(message: str) -> int:
    print(f"dnssync-resolver: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _report(status: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(status) + "\n")
    sys.stdout.flush()


async def _until_loaded(resolver: Resolver, stop: asyncio.Event) -> bool:
    """Wait for every mirror's first load; False when stopped or a mirror died first."""
    mirrors = [m for m in [resolver.mirror, *(v.mirror for v in resolver.views)] if m is not None]
    loaded = asyncio.ensure_future(asyncio.gather(*(m.ready.wait() for m in mirrors)))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([loaded, stopper, *resolver.mirror_tasks], return_when=asyncio.FIRST_COMPLETED)
    done = loaded.done()
    loaded.cancel()
    stopper.cancel()
    return done and not stop.is_set()


def _watch_lifeline(loop: asyncio.AbstractEventLoop, fd: int, stop: asyncio.Event) -> None:
    """Set ``stop`` when the supervisor's end of ``fd`` closes (the supervisor stopped or died)."""
    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            log.info("supervisor_gone")
            stop.set()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)


async def serve_worker(config: ResolverConfig, index: int, late_bind: bool) -> int:
    """One worker: the ordinary resolver, reporting to the supervisor, stopping with it."""
    from resolver.cli import Resolver, run_until_stopped
    if index != 0:  # one NOTIFY per change, not one per worker: worker 0 sends them (all of them serve transfers)
        config = dataclasses.replace(config, notify=())
    resolver = Resolver(config)
    try:
        if not late_bind:
            resolver.bind()
    except OSError as exc:
        return _fail(f"cannot listen on {config.listen[0]}:{config.listen[1]}: {exc.strerror or exc}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _watch_lifeline(loop, sys.stdin.fileno(), stop)
    await resolver.start(serve_dns=not late_bind)
    assert resolver.http is not None
    _report({"http": resolver.http.port})
    if late_bind and await _until_loaded(resolver, stop):
        try:
            await resolver.start_dns()
        except OSError as exc:
            await resolver.stop()
            return _fail(f"cannot listen on {config.listen[0]}:{config.listen[1]}: {exc.strerror or exc}")
    if resolver.dns._tcp_sock is not None:
        _report({"dns": "bound"})
    log.info("worker_serving", worker=index, pid=os.getpid())
    return await run_until_stopped(resolver, stop)


def worker_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    index, late_bind = int(argv[0]), "--late-bind" in argv[1:]
    config = read_config(sys.stdin.buffer)
    from skydns import logs
    logs.configure(config.log_format, config.log_level)
    structlog.contextvars.bind_contextvars(worker=index)
    import uvloop
    return uvloop.run(serve_worker(config, index, late_bind))


if __name__ == "__main__":
    sys.exit(worker_main())
