"""The continuous syncer against its five targets: change latency, first sync, memory, no-op runs, throughput.

    .venv/bin/python bench/continuous.py [--quick] [--part 1 --part 2 ...] [--large 0] [--keep DIR]
        [--profile DIR | --tracemalloc DIR | --gc-stats DIR]

Everything runs on this machine: a local etcd (``devtools.localetcd.LocalEtcd``), the tests' fake Kubernetes API
server (``tests.fakekube.FakeKubeServer``, in this process: objects are applied to it directly), ``python -m
syncer`` in continuous mode as a real process (``--kubeconfig`` at the fake), and for part 1 ``python -m
resolver``. The cluster is N realistic LoadBalancer Services (hostname annotation, a status IP, selector, node
port, ``last-applied-configuration``), one EndpointSlice per Service labelled with its service name, and 100
Nodes. Parts:

1. change -> commit -> answer: Service LB-IP changes at a fixed rate (open loop) with N Services cached; each is
   timed from the fake having committed it to (a) a PUT of the new IP seen by this script's etcd watch and (b) the
   resolver answering the new IP over UDP (asked from the moment the commit was seen);
2. first sync: process start -> ``/readyz`` 200, the records in etcd counted, for N and for the large cluster
   (peak RSS from ``VmHWM``);
3. memory: ``VmRSS`` after the first sync at N, and the slope per cached object between N and the large cluster;
4. no-op: a relist after 410 (``compact()`` + ``expire_watches()``), a restart (a second process on the same
   state), a full resync (``--resync-interval 2s``, two moves of ``dnssync_last_full_sync_timestamp_seconds``);
   each must write no key under the prefix (none with a newer mod revision, the same number of keys); the etcd
   revisions are shown too (a restart moves them by the leader election's campaign key);
5. throughput: LB-IP changes at ``--burst-rate`` for ``--burst-seconds``; the backlog is sampled (events the
   syncer's Service watch has not read yet = the fake's resourceVersion minus the watch's; names pending in the
   syncer from ``/healthz``; ``dnssync_pending_names``), and every name must end up in etcd with its last IP;
   idle CPU (utime+stime from ``/proc/PID/stat``) with N Services cached and nothing changing;
fake: what the fake server itself sustains (applies per second, events per second delivered to an
   out-of-process watch reader, the CPU a paged list of N and of the large cluster costs it).

``--profile DIR`` runs every syncer process under cProfile, one profile per phase (``DIR/<label>-<phase>.prof``
plus the top functions in ``.txt``: ``first-sync``, ``idle``, ``relist``, ``changes``, ``burst``, ...; the
``before-*`` windows hold what ran between phases); ``--tracemalloc DIR`` runs them with tracemalloc and writes
the top allocation sites after the first sync (``DIR/<label>-mem.txt``); ``--gc-stats DIR`` times the cyclic
garbage collector's runs in them (``DIR/<label>-gc.json``, and a row for the first sync). Timings taken in the
first two modes are not the real ones (``--gc-stats`` costs next to nothing).

The script prints ``what | result | target | met?`` and exits 1 when a target is missed. Every process it started
is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latency_probe import build_query, percentile  # bench/, next to this script
from propagation import answer_ips, http_ready, rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # devtools/ and tests/ are not installed: run from the checkout

from aetcd import rpc  # noqa: E402
from aetcd.utils import prefix_range_end  # noqa: E402

from devtools.localetcd import LocalEtcd, free_port  # noqa: E402
from resolver.server import free_dns_port  # noqa: E402
from skydns.etcd import EtcdClient, EtcdSettings, read_prefix  # noqa: E402
from tests.fakekube import FakeKubeServer  # noqa: E402
from tests.fakekube import server as fakeserver  # noqa: E402

PREFIX = b"/skydns/"
DOMAIN = "bench.example.org"
NODES = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
STRIDE = 7919  # a prime: k * STRIDE % N visits every Service before repeating one

# --------------------------------------------------------------------------------------------- the objects


def ip_of(serial: int) -> str:
    return f"10.{serial >> 16 & 255}.{serial >> 8 & 255}.{serial & 255}"


def lb_ip(index: int, generation: int) -> str:
    """Service ``index``'s load-balancer IP after ``generation`` changes (distinct for index < 2**20)."""
    return ip_of(((generation % 15) << 20 | index) & 0xFFFFFF)


def hostname(index: int) -> str:
    return f"svc-{index}.{DOMAIN}"


def service(index: int, generation: int = 0) -> dict[str, Any]:
    name, namespace = f"svc-{index}", f"ns-{index % 50}"
    spec = {"type": "LoadBalancer", "selector": {"app": name}, "clusterIP": ip_of(0xA00000 | index),
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP",
                       "nodePort": 30000 + index % 2000}],
            "externalTrafficPolicy": "Cluster", "sessionAffinity": "None"}
    last_applied = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                    "spec": {k: spec[k] for k in ("type", "selector", "ports")}}
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app": name, "team": f"team-{index % 20}", "app.kubernetes.io/managed-by": "bench"},
                     "annotations": {"external-dns.alpha.kubernetes.io/hostname": hostname(index),
                                     "kubectl.kubernetes.io/last-applied-configuration": json.dumps(last_applied)}},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": lb_ip(index, generation), "ipMode": "VIP"}]}},
    }


def endpoint_slice(index: int) -> dict[str, Any]:
    name = f"svc-{index}"
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"{name}-abcde", "namespace": f"ns-{index % 50}",
                     "labels": {"kubernetes.io/service-name": name,
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "endpoints": [{"addresses": [ip_of(0xB00000 | (index * 2 + k) & 0xFFFFF)],
                       "conditions": {"ready": True, "serving": True, "terminating": False},
                       "nodeName": f"node-{(index + k) % NODES}",
                       "targetRef": {"kind": "Pod", "namespace": f"ns-{index % 50}", "name": f"{name}-pod-{k}"}}
                      for k in range(2)],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def node(index: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{index}",
                                                            "labels": {"kubernetes.io/hostname": f"node-{index}"}},
            "spec": {"podCIDR": f"10.244.{index}.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": ip_of(0xC00000 | index)},
                                     {"type": "Hostname", "address": f"node-{index}"}]}}


class Cluster:
    """N Services (+ their slices) and the Nodes in a fake API server; changes Service IPs."""

    def __init__(self, kube: FakeKubeServer, services: int) -> None:
        self.kube = kube
        self.services = services
        self.generation = [0] * services
        self._lock = threading.Lock()

    def populate(self) -> float:
        started = time.perf_counter()
        for j in range(NODES):
            self.kube.apply(node(j))
        for i in range(self.services):
            self.kube.apply(service(i))
            self.kube.apply(endpoint_slice(i))
        return time.perf_counter() - started

    @property
    def objects(self) -> int:
        return 2 * self.services + NODES

    def change_ip(self, index: int) -> tuple[str, str]:
        """Give Service ``index`` a new LB IP in the fake; ``(dns name, new ip)``."""
        with self._lock:
            self.generation[index] += 1
            generation = self.generation[index]
        self.kube.apply(service(index, generation))
        return hostname(index), lb_ip(index, generation)

    def expected(self, index: int) -> str:
        return lb_ip(index, self.generation[index])


# --------------------------------------------------------------------------------------------- processes


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for series, value in metrics.items():
        base, _, rest = series.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


PROFILE_WRAPPER = """
import atexit, cProfile, os, runpy, signal, sys
out = sys.argv.pop(1)
state = {"n": 0, "prof": cProfile.Profile()}
def cut(*_):
    prof = state["prof"]
    prof.disable()
    prof.dump_stats(f"{out}.{state['n']}.tmp")
    os.replace(f"{out}.{state['n']}.tmp", f"{out}.{state['n']}.prof")
    state["n"] += 1
    state["prof"] = cProfile.Profile()
    state["prof"].enable()
def end():
    state["prof"].disable()
    state["prof"].dump_stats(f"{out}.end.prof")
signal.signal(signal.SIGUSR2, cut)
atexit.register(end)
sys.argv[0] = "syncer"
state["prof"].enable()
runpy.run_module("syncer", run_name="__main__", alter_sys=True)
"""

GC_WRAPPER = """
import atexit, gc, json, os, runpy, signal, sys, time
out = sys.argv.pop(1)
gens = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
full = []
began = [0.0]
def timed(phase, info):
    if phase == "start":
        began[0] = time.perf_counter()
        return
    took = time.perf_counter() - began[0]
    gens[info["generation"]][0] += 1
    gens[info["generation"]][1] += took
    if info["generation"] == 2:
        full.append([round(time.perf_counter(), 3), round(took, 3), info["collected"]])
def dump(*_):
    with open(out + ".tmp", "w") as f:
        json.dump({"generations": gens, "full_collections": full, "objects_tracked": len(gc.get_objects())}, f)
    os.replace(out + ".tmp", out)
gc.callbacks.append(timed)
signal.signal(signal.SIGUSR1, dump)
atexit.register(dump)
sys.argv[0] = "syncer"
runpy.run_module("syncer", run_name="__main__", alter_sys=True)
"""

TRACEMALLOC_WRAPPER = """
import runpy, signal, sys, tracemalloc
tracemalloc.start(int(sys.argv.pop(1)))
out = sys.argv.pop(1)
def dump(*_):
    import gc
    gc.collect()
    snap = tracemalloc.take_snapshot()
    now, peak = tracemalloc.get_traced_memory()
    lines = [f"traced now {now / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB"]
    for what in ("lineno", "filename"):
        lines.append(f"--- top by {what}")
        for stat in snap.statistics(what)[:40]:
            lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  {stat.traceback}")
    lines.append("--- top tracebacks")
    for stat in snap.statistics("traceback")[:12]:
        lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks")
        lines.extend("      " + l for l in stat.traceback.format()[-12:])
    open(out + ".tmp", "w").write("\\n".join(lines) + "\\n")
    import os; os.replace(out + ".tmp", out)
signal.signal(signal.SIGUSR1, dump)
sys.argv[0] = "syncer"
runpy.run_module("syncer", run_name="__main__", alter_sys=True)
"""


@dataclass
class Modes:
    profile: Path | None = None
    tracemalloc: Path | None = None
    keep: Path | None = None  # syncer logs and burst samples stay here
    gc_stats: Path | None = None  # time in the cyclic garbage collector, per syncer


class Syncer:
    """``python -m syncer`` in continuous mode against one etcd and one fake API server."""

    def __init__(self, label: str, etcd: str, kubeconfig: Path, work: Path, modes: Modes, *extra: str) -> None:
        self.label = label
        self.http_port = free_port()
        self.modes = modes
        self.log_path = work / f"syncer-{label}.log"
        args = ["--owner-id", "bench", "--policy", "sync", "--kubeconfig", str(kubeconfig),
                "--etcd-endpoints", etcd, "--http-listen", f"127.0.0.1:{self.http_port}", "--log-format", "json",
                *extra]
        if modes.profile is not None:
            self.cmd = [sys.executable, "-c", PROFILE_WRAPPER, str(modes.profile / label), *args]
        elif modes.gc_stats is not None:
            self.cmd = [sys.executable, "-c", GC_WRAPPER, str(modes.gc_stats / f"{label}-gc.json"), *args]
        elif modes.tracemalloc is not None:
            self.cmd = [sys.executable, "-c", TRACEMALLOC_WRAPPER, "1", str(modes.tracemalloc / f"{label}-mem.txt"),
                        *args]
        else:
            self.cmd = [sys.executable, "-m", "syncer", *args]
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self._windows = 0

    def start(self) -> Syncer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNSSYNC_")}
        with open(self.log_path, "w") as log:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                                         stdout=subprocess.DEVNULL, stderr=log)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def wait_ready(self, timeout: float) -> float:
        """Seconds from process start to ``/readyz`` 200 (polled every 20 ms)."""
        assert self.proc is not None
        while not http_ready(self.http_port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"syncer {self.label} exited {self.proc.returncode}:\n{self.log_tail()}")
            if time.perf_counter() - self.started > timeout:
                raise RuntimeError(f"syncer {self.label} not ready after {timeout:.0f} s:\n{self.log_tail()}")
            await asyncio.sleep(0.02)
        return time.perf_counter() - self.started

    def log_tail(self, lines: int = 8) -> str:
        return "\n".join(line[:400] for line in self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        return parse_metrics(get(self.http_port, "/metrics")[1])

    def health(self) -> dict[str, Any]:
        return dict(json.loads(get(self.http_port, "/healthz")[1]))

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss(self) -> tuple[float, float]:
        return rss_mb(self.pid)

    async def dump_memory(self, timeout: float = 60.0) -> Path | None:
        """tracemalloc or gc-stats mode: have the syncer write its report now (SIGUSR1); the file."""
        if self.modes.tracemalloc is not None:
            out = self.modes.tracemalloc / f"{self.label}-mem.txt"
        elif self.modes.gc_stats is not None:
            out = self.modes.gc_stats / f"{self.label}-gc.json"
        else:
            return None
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.perf_counter() + timeout
        while not out.exists() and time.perf_counter() < deadline:
            get(self.http_port, "/healthz")  # runs Python code in the syncer, so the signal handler runs
            await asyncio.sleep(0.2)
        return out if out.exists() else None

    def stop(self) -> float:
        """SIGTERM and wait; the seconds it took to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.perf_counter()
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._write_profile_summary()
        return time.perf_counter() - started

    async def profile_mark(self, window: str, timeout: float = 60.0) -> None:
        """Profile mode: end the current profile window as ``<label>-<window>.prof`` (+ ``.txt``), start the next."""
        if self.modes.profile is None or self.proc is None or self.proc.poll() is not None:
            return
        raw = self.modes.profile / f"{self.label}.{self._windows}.prof"
        os.kill(self.pid, signal.SIGUSR2)
        self._windows += 1
        deadline = time.perf_counter() + timeout
        while not raw.exists() and time.perf_counter() < deadline:
            get(self.http_port, "/healthz")  # runs Python code in the syncer, so the signal handler runs
            await asyncio.sleep(0.05)
        if raw.exists():
            self._summarize(raw, self.modes.profile / f"{self.label}-{window}")

    def _write_profile_summary(self) -> None:
        if self.modes.profile is None:
            return
        raw = self.modes.profile / f"{self.label}.end.prof"
        if raw.exists():
            self._summarize(raw, self.modes.profile / f"{self.label}-end")

    @staticmethod
    def _summarize(raw: Path, out: Path) -> None:
        import io
        import pstats

        raw.replace(out.with_suffix(".prof"))
        buf = io.StringIO()
        stats = pstats.Stats(str(out.with_suffix(".prof")), stream=buf)
        stats.sort_stats("tottime").print_stats(45)
        stats.sort_stats("cumulative").print_stats(70)
        out.with_suffix(".txt").write_text(buf.getvalue())


class Resolver:
    def __init__(self, etcd: str, work: Path) -> None:
        self.dns_port, self.http_port = free_dns_port(), free_port()
        self.log_path = work / "resolver.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.etcd = etcd

    async def start(self) -> float:
        with open(self.log_path, "w") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "resolver", "--zone", "example.org.", "--etcd-endpoints", self.etcd,
                 "--listen", f"127.0.0.1:{self.dns_port}", "--http-listen", f"127.0.0.1:{self.http_port}",
                 "--log-level", "warning"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        while not http_ready(self.http_port):
            if self.proc.poll() is not None or time.perf_counter() - started > 120:
                raise RuntimeError(f"resolver not ready:\n{self.log_path.read_text()}")
            await asyncio.sleep(0.02)
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------------------------- etcd and DNS


async def etcd_count(client: EtcdClient) -> tuple[int, int]:
    """(etcd revision, keys under the prefix)."""
    await client.connect()
    assert client.kvstub is not None
    req = rpc.RangeRequest(key=PREFIX, range_end=prefix_range_end(PREFIX), count_only=True)
    resp = await client.kvstub.Range(req, timeout=10, metadata=client.metadata)
    return int(resp.header.revision), int(resp.count)


@dataclass(frozen=True)
class EtcdMark:
    """The etcd revision and the number of record keys at one instant."""

    revision: int
    records: int


async def etcd_mark(client: EtcdClient) -> EtcdMark:
    revision, records = await etcd_count(client)
    return EtcdMark(revision, records)


async def record_writes(client: EtcdClient, since: EtcdMark) -> tuple[int, int]:
    """(record keys put since ``since`` + the change in their number, all etcd revisions since): the first is 0
    when nothing under the prefix was written (the second also counts other keys, the leader election's)."""
    await client.connect()
    assert client.kvstub is not None
    req = rpc.RangeRequest(key=PREFIX, range_end=prefix_range_end(PREFIX), keys_only=True,
                           min_mod_revision=since.revision + 1)  # (etcd's count ignores this filter)
    resp = await client.kvstub.Range(req, timeout=30, metadata=client.metadata)
    now = await etcd_mark(client)
    return len(resp.kvs) + abs(now.records - since.records), now.revision - since.revision


def no_op_row(report: Report, what: str, writes: tuple[int, int], extra: str = "") -> None:
    records, revisions = writes
    report.add("4", f"{what}: record keys written", f"{records} ({revisions} etcd revisions{extra})", "0",
               records == 0)


def name_of(key: bytes) -> str:
    labels = key.decode().split("/")[2:-1]  # "", "skydns", reversed labels..., leaf
    return ".".join(reversed(labels))


async def etcd_hosts(client: EtcdClient) -> dict[str, set[str]]:
    _, kvs = await read_prefix(client, PREFIX, page=5000)
    out: dict[str, set[str]] = {}
    for kv in kvs:
        out.setdefault(name_of(kv.key), set()).add(json.loads(kv.value)["host"])
    return out


class CommitWatch:
    """Follows the prefix in etcd: resolves a waiter when a PUT of (name, host) arrives; keeps the last host put
    at each name and the moment it was seen."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client
        self.waiting: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.puts = 0
        self.on_put: Callable[[str, str, float], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._started.wait(), 10)

    async def _run(self) -> None:
        watch = await self.client.watch_prefix(PREFIX)
        self._started.set()
        async for event in watch:
            if event.kind != "PUT":
                continue
            seen = time.perf_counter()
            name, host = name_of(event.kv.key), json.loads(event.kv.value)["host"]
            self.puts += 1
            if self.on_put is not None:
                self.on_put(name, host, seen)
            waiter = self.waiting.pop((name, host), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(seen)

    def expect(self, name: str, host: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[(name, host)] = future
        return future

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class Dns(asyncio.DatagramProtocol):
    """A UDP client that matches answers to questions by ID."""

    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future[bytes]] = {}
        self.qid = 0
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def connect(cls, port: int) -> Dns:
        transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
            cls, remote_addr=("127.0.0.1", port))
        proto.transport = transport  # connection_made comes only on the next loop iteration
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # asyncio's selector transport is not a subclass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        waiter = self.waiting.pop(data[:2], None)
        if waiter is not None and not waiter.done():
            waiter.set_result(data)

    async def ask(self, name: str, timeout: float = 0.05) -> set[str]:
        assert self.transport is not None
        self.qid = (self.qid + 1) & 0xFFFF
        wire = build_query(name, self.qid)
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting[wire[:2]] = waiter
        self.transport.sendto(wire)
        try:
            reply = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self.waiting.pop(wire[:2], None)
            return set()
        return answer_ips(reply, len(wire))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# --------------------------------------------------------------------------------------------- the table


@dataclass
class Row:
    part: str
    what: str
    result: str
    target: str = ""
    met: bool | None = None  # None: no target (context)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, part: str, what: str, result: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(part, what, result, target, met))
        mark = "" if met is None else ("  [met]" if met else "  [MISSED]")
        print(f"  [{part}] {what}: {result}{(' (target ' + target + ')') if target else ''}{mark}", flush=True)

    def print(self, parts: set[str]) -> None:
        rows = [r for r in self.rows if r.part in parts]
        headers = ("part", "what", "result", "target", "met?")
        cells = [(r.part, r.what, r.result, r.target, "-" if r.met is None else ("yes" if r.met else "NO"))
                 for r in rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
        print()
        print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        print("-+-".join("-" * w for w in widths))
        for c in cells:
            print(" | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
        for note in self.notes:
            print(f"note: {note}")

    def missed(self, parts: set[str]) -> list[Row]:
        return [r for r in self.rows if r.part in parts and r.met is False]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --------------------------------------------------------------------------------------------- one cluster


def ready_timeout(services: int) -> float:
    """How long a first sync may take before the run is called broken (a syncer that can't list never gets ready)."""
    return 60.0 + services * 0.003


@dataclass
class Env:
    """etcd + the fake with a populated cluster + syncer A, ready."""

    services: int
    work: Path
    etcd: LocalEtcd
    kube: FakeKubeServer
    cluster: Cluster
    client: EtcdClient
    kubeconfig: Path
    syncer: Syncer
    populate_s: float = 0.0
    rss: float = 0.0  # MB, 3 s after the first sync
    cached: int = 0  # objects in the syncer's caches
    started: list[Syncer] = field(default_factory=list)  # every syncer process started on this cluster

    def start_syncer(self, syncer: Syncer) -> Syncer:
        self.syncer = syncer
        self.started.append(syncer)
        return syncer.start()

    def stop_syncers(self) -> None:
        for syncer in self.started:
            syncer.stop()


async def open_env(stack: contextlib.AsyncExitStack, services: int, modes: Modes, report: Report, label: str
                   ) -> Env:
    if modes.keep is not None:
        work = modes.keep / label
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"dnssync-cont-{label}-")))
    etcd = stack.enter_context(LocalEtcd())
    kube = stack.enter_context(FakeKubeServer())
    cluster = Cluster(kube, services)
    populate_s = cluster.populate()
    gc.collect()
    gc.freeze()  # the fake's objects are long-lived: keep this process's full collections from stalling its serving
    kubeconfig = kube.write_kubeconfig(work / "kubeconfig")
    client = EtcdClient(EtcdSettings.from_env(etcd.endpoint, env={}))
    stack.push_async_callback(client.close)
    syncer = Syncer(label, etcd.endpoint, kubeconfig, work, modes)
    env = Env(services, work, etcd, kube, cluster, client, kubeconfig, syncer, populate_s)
    stack.callback(env.stop_syncers)
    await first_sync(env, report, label)
    return env


async def first_sync(env: Env, report: Report, label: str) -> None:
    """Parts 2 and 3 for one cluster size: start -> /readyz, the records, CPU, peak and settled RSS."""
    n = env.services
    bench_cpu0 = self_cpu_seconds()
    rev0, _ = await etcd_count(env.client)
    syncer = env.start_syncer(env.syncer)
    ready_s = await syncer.wait_ready(ready_timeout(n))
    await syncer.profile_mark("first-sync")
    bench_cpu = self_cpu_seconds() - bench_cpu0
    syncer_cpu = syncer.cpu()
    rev1, records = await etcd_count(env.client)
    _, peak = syncer.rss()
    await asyncio.sleep(3.0)  # let the first sync's garbage go
    rss, _ = syncer.rss()
    cached = int(metric_sum(syncer.metrics(), "dnssync_cached_objects"))
    mem = await syncer.dump_memory()
    big = label == "large"
    part2_target = ("≤ 60 s", 60.0) if big else ("≤ 5 s", 5.0)
    what = f"{n:,} Services + {n:,} EndpointSlices + {NODES} Nodes"
    report.add("2", f"first sync ({what}): start -> /readyz 200", f"{ready_s:.2f} s", part2_target[0],
               ready_s <= part2_target[1])
    report.add("2", f"  records in etcd at /readyz ({rev1 - rev0:,} revisions)", f"{records:,} of {n:,}",
               f"{n:,}", records == n)
    report.add("2", "  CPU during it: syncer / bench process (fake + this script)",
               f"{syncer_cpu:.1f} s / {bench_cpu:.1f} s", "")
    if big:
        report.add("2", "  peak RSS (VmHWM)", f"{peak:.0f} MB", "≤ 600 MB", peak <= 600)
    else:
        report.add("2", "  peak RSS (VmHWM)", f"{peak:.0f} MB", "")
    report.add("3", f"RSS with {int(cached):,} cached objects ({n:,} Services), 3 s after /readyz",
               f"{rss:.0f} MB", "≤ 150 MB" if not big else "", None if big else rss <= 150)
    env.rss, env.cached = rss, cached
    if mem is not None and mem.suffix == ".json":
        gc_report = json.loads(mem.read_text())
        gens = gc_report["generations"]
        report.add("2", "  cyclic GC until 3 s after /readyz: seconds (collections) gen0 / gen1 / gen2",
                   " / ".join(f"{gens[g][1]:.1f} ({gens[g][0]})" for g in ("0", "1", "2")), "")
    elif mem is not None:
        report.notes.append(f"tracemalloc after the first sync of {label}: {mem}")


# --------------------------------------------------------------------------------------------- part 1


async def part1(env: Env, report: Report, changes: int, rate: float) -> None:
    resolver = Resolver(env.etcd.endpoint, env.work)
    try:
        dns: Dns | None = None
        try:
            await resolver.start()
        except RuntimeError as exc:  # others edit the resolver too: measure the commits all the same
            last = str(exc).strip().splitlines()[-1]
            report.add("1", "resolver could not be started (answers not measured)", last[:80], "", False)
        else:
            dns = await Dns.connect(resolver.dns_port)
            for i in range(3):  # the resolver has the records the first sync wrote
                name = hostname(i)
                if await dns.ask(name, 1.0) != {env.cluster.expected(i)}:
                    raise RuntimeError(f"resolver does not answer {name} with {env.cluster.expected(i)}")
        watch = CommitWatch(env.client)
        await watch.start()
        commit: list[float] = []
        answer: list[float] = []
        lost: list[str] = []
        cpu0 = env.syncer.cpu()
        started = time.perf_counter()

        async def one(k: int) -> None:
            index = k * STRIDE % env.services
            name, ip = hostname(index), lb_ip(index, env.cluster.generation[index] + 1)
            committed = watch.expect(name, ip)
            env.cluster.change_ip(index)
            t0 = time.perf_counter()
            try:
                t1 = await asyncio.wait_for(committed, 10)
            except TimeoutError:
                lost.append(f"{name} -> {ip}: not in etcd after 10 s")
                return
            commit.append(t1 - t0)
            if dns is None:
                return
            while await dns.ask(name) != {ip}:
                if time.perf_counter() - t0 > 10:
                    lost.append(f"{name} -> {ip}: not answered after 10 s")
                    return
                await asyncio.sleep(0.001)
            answer.append(time.perf_counter() - t0)

        tasks = []
        for k in range(changes):
            delay = started + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(k)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        cpu = env.syncer.cpu() - cpu0
        await watch.stop()
        if dns is not None:
            dns.close()
    finally:
        resolver.stop()
    commit.sort()
    answer.sort()
    what = f"{changes:,} LB-IP changes at {rate:g}/s, {env.services:,} Services cached"
    report.add("1", f"change -> committed in etcd, p50 ({what})", ms(percentile(commit, 50)), "≤ 50 ms",
               percentile(commit, 50) <= 0.050)
    report.add("1", "change -> committed in etcd, p99 (max)",
               f"{ms(percentile(commit, 99))} ({ms(commit[-1]) if commit else '-'})", "≤ 250 ms",
               percentile(commit, 99) <= 0.250)
    if answer:
        report.add("1", "change -> resolver answers it over UDP, p50 / p99",
                   f"{ms(percentile(answer, 50))} / {ms(percentile(answer, 99))}", "p99 ≤ 300 ms",
                   percentile(answer, 99) <= 0.300 and not lost)
    report.add("1", "  changes lost / syncer CPU during the run",
               f"{len(lost)} / {cpu / elapsed * 100:.0f} % of a core", "0 lost", not lost)
    report.notes.extend(lost[:5])


# --------------------------------------------------------------------------------------------- part 4


async def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        await asyncio.sleep(every)
    return time.perf_counter() - started


async def settled(syncer: Syncer, quiet: float = 1.0, timeout: float = 60.0) -> None:
    """Wait until the syncer has nothing pending and its write counters stood still for ``quiet`` seconds."""
    def writes() -> tuple[float, ...]:
        m = syncer.metrics()
        return (metric_sum(m, "dnssync_writes_total"), metric_sum(m, "dnssync_watch_events_total"))

    deadline = time.perf_counter() + timeout
    last, since = writes(), time.perf_counter()
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
        now = writes()
        pending = syncer.health().get("pending_names", 0)
        if now != last or pending:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            return
    raise TimeoutError(f"syncer {syncer.label} did not settle in {timeout:.0f} s")


async def part4_relist(env: Env, report: Report) -> None:
    syncer = env.syncer
    await settled(syncer)
    mark = await etcd_mark(env.client)
    before = metric_sum(syncer.metrics(), "dnssync_relists_total")
    cpu0 = syncer.cpu()
    env.kube.compact()
    expired = env.kube.expire_watches()
    kinds = 5

    def relisted() -> bool:
        m = syncer.metrics()
        return metric_sum(m, "dnssync_relists_total", reason="expired") - before >= kinds

    took = await wait_until(relisted, 120, "every kind to relist after 410")
    await settled(syncer)
    no_op_row(report, f"relist after 410 (compact + {expired} watches expired)", await record_writes(env.client, mark),
              f"; relisted in {took:.1f} s, {syncer.cpu() - cpu0:.1f} s CPU")


async def part4_restart_and_resync(env: Env, report: Report, modes: Modes) -> None:
    await settled(env.syncer)
    stop_s = env.syncer.stop()
    mark = await etcd_mark(env.client)
    second = Syncer("restart", env.etcd.endpoint, env.kubeconfig, env.work, modes, "--resync-interval", "2s")
    env.start_syncer(second)
    ready_s = await second.wait_ready(ready_timeout(env.services))
    await second.profile_mark("first-sync")
    no_op_row(report, f"restart (SIGTERM took {stop_s:.1f} s; a second process ready in {ready_s:.1f} s)",
              await record_writes(env.client, mark))

    def last_full() -> float:
        return metric_sum(second.metrics(), "dnssync_last_full_sync_timestamp_seconds")

    await settled(second)
    mark = await etcd_mark(env.client)
    first = last_full()
    cpu0 = second.cpu()
    await wait_until(lambda: last_full() > first, 60, "a full resync")
    middle = last_full()
    await wait_until(lambda: last_full() > middle, 60, "a second full resync")
    per_resync = (second.cpu() - cpu0) / 2
    no_op_row(report, "2 full resyncs, unchanged cluster (--resync-interval 2s)", await record_writes(env.client, mark),
              f"; {per_resync:.1f} s CPU per resync of {env.services:,}")


# --------------------------------------------------------------------------------------------- part 5


async def part5_idle(env: Env, report: Report, seconds: float) -> None:
    syncer = env.syncer
    await settled(syncer)
    cpu0, t0 = syncer.cpu(), time.perf_counter()
    await asyncio.sleep(seconds)
    share = (syncer.cpu() - cpu0) / (time.perf_counter() - t0)
    report.add("5", f"idle CPU, {env.services:,} Services cached, over {seconds:.0f} s",
               f"{share * 100:.2f} % of a core", "≤ 1 %", share <= 0.01)


@dataclass
class Burst:
    t0: dict[str, float] = field(default_factory=dict)  # name -> when its newest change was applied
    expected: dict[str, str] = field(default_factory=dict)
    behind: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_commit: float = 0.0

    def applied(self, name: str, ip: str, at: float) -> None:
        with self.lock:
            self.t0[name], self.expected[name] = at, ip
            self.behind.add(name)

    def put(self, name: str, host: str, at: float) -> None:
        with self.lock:
            if self.expected.get(name) == host and name in self.behind:
                self.behind.discard(name)
                self.latencies.append(at - self.t0[name])
                self.last_commit = at


def generate(cluster: Cluster, burst: Burst, rate: float, total: int) -> tuple[float, float]:
    """Apply ``total`` IP changes at ``rate`` per second (open loop); (start, end) perf_counter instants."""
    start = time.perf_counter()
    for k in range(total):
        delay = start + k / rate - time.perf_counter()
        if delay > 0.0002:
            time.sleep(delay)
        name, ip = cluster.change_ip(k * STRIDE % cluster.services)
        burst.applied(name, ip, time.perf_counter())
    return start, time.perf_counter()


async def part5_burst(env: Env, report: Report, rate: float, seconds: float) -> None:
    syncer = env.syncer
    await settled(syncer)
    total = int(rate * seconds)
    burst = Burst()
    watch = CommitWatch(env.client)
    watch.on_put = burst.put
    await watch.start()
    samples: list[tuple[float, int, int, float, int, float]] = []
    # (t, events not read by the Service watch, names pending in the syncer, dnssync_pending_names, names committed,
    #  syncer CPU seconds)
    done = asyncio.Event()
    stalls: list[float] = []  # how long /healthz took: the syncer's event loop was busy that long

    async def sample() -> None:
        while not done.is_set():
            asked = time.perf_counter()
            health = await asyncio.to_thread(syncer.health)
            stalls.append(time.perf_counter() - asked)
            gauge = metric_sum(await asyncio.to_thread(syncer.metrics), "dnssync_pending_names")
            svc = next(w for w in health["watches"] if w["kind"] == "Service")
            lag = int(env.kube.resource_version) - int(svc["resource_version"] or 0)
            samples.append((time.perf_counter(), lag, int(health.get("pending_names", 0)), gauge,
                            len(burst.latencies), syncer.cpu()))
            await asyncio.sleep(0.25)

    cpu0 = syncer.cpu()
    etcd_cpu0 = proc_cpu_seconds(env.etcd.proc.pid) if env.etcd.proc else 0.0
    bench_cpu0 = self_cpu_seconds()
    sampler = asyncio.create_task(sample())
    start, end = await asyncio.to_thread(generate, env.cluster, burst, rate, total)
    gen_cpu = self_cpu_seconds() - bench_cpu0
    drained = True
    try:
        await wait_until(lambda: not burst.behind, 120, "every changed name in etcd", every=0.05)
    except TimeoutError:
        drained = False
    done.set()
    await sampler
    finished = burst.last_commit if drained else time.perf_counter()
    cpu = syncer.cpu() - cpu0
    etcd_cpu = (proc_cpu_seconds(env.etcd.proc.pid) if env.etcd.proc else 0.0) - etcd_cpu0
    await watch.stop()
    hosts = await etcd_hosts(env.client)
    wrong = sum(1 for i in range(env.services) if hosts.get(hostname(i)) != {env.cluster.expected(i)})
    applied_rate = total / (end - start)
    sustained = total / (finished - start)
    during = [s for s in samples if s[0] <= end]
    max_lag = max((s[1] for s in samples), default=0)
    max_pending = max((s[2] for s in samples), default=0)
    max_gauge = max((s[3] for s in samples), default=0.0)
    third = max(1, len(during) // 3)
    early = sum(s[1] + s[2] for s in during[:third]) / third
    late = sum(s[1] + s[2] for s in during[-third:]) / third
    lat = sorted(burst.latencies)
    (env.work / "burst-samples.json").write_text(json.dumps(
        {"start": start, "end": end, "finished": finished, "total": total,
         "samples": [[round(x - start, 3) if j == 0 else x for j, x in enumerate(row)] for row in samples]}))
    drain = max(0.0, finished - end)
    fake_bound = applied_rate < 0.98 * rate
    report.add("5", f"the fake applied {total:,} LB-IP changes (asked {rate:,.0f}/s, open loop)",
               f"{applied_rate:,.0f}/s", f"≥ {rate:,.0f}/s (the fake's own limit)", not fake_bound)
    backlog = max((x[1] + x[2] for x in samples), default=0)
    report.add("5", f"  syncer throughput at {rate:,.0f}/s for {seconds:g} s: last change -> every name in etcd",
               f"{drain:.2f} s ({sustained:,.0f}/s end to end)" if drained else "not drained in 120 s",
               "≥ 2,000/s: drained ≤ 1 s", drained and drain <= 1.0 and applied_rate >= 0.98 * 2000)
    report.add("5", "  backlog bounded: max (unread + pending); mean of the first vs last third",
               f"{backlog:,}; {early:,.0f} -> {late:,.0f}", f"≤ 1 s of events ({rate:,.0f})", backlog <= rate)
    report.add("5", "  backlog max: watch events unread / names pending (/healthz) / dnssync_pending_names",
               f"{max_lag:,} / {max_pending:,} / {max_gauge:.0f}", "")
    stalls.sort()
    report.add("5", "  /healthz answer time during burst+drain (event loop busy) p50 / max",
               f"{ms(percentile(stalls, 50))} / {ms(stalls[-1]) if stalls else '-'}", "")
    report.add("5", "  names exact in etcd afterwards / latency of last change per name p50 / p99",
               f"{env.services - wrong:,} of {env.services:,} / {ms(percentile(lat, 50))} / {ms(percentile(lat, 99))}",
               "all", wrong == 0)
    report.add("5", "  CPU during burst+drain: syncer / etcd / bench (fake+generator)",
               f"{cpu / (finished - start) * 100:.0f} % / {etcd_cpu / (finished - start) * 100:.0f} % / "
               f"{gen_cpu / (end - start) * 100:.0f} % of a core", "")


# --------------------------------------------------------------------------------------------- the fake's capacity

WATCH_READER = """
import socket, sys, time
port, path, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\nAccept: application/json\\r\\n\\r\\n".encode())
f = s.makefile("rb")
print("open", flush=True)
seen, first = 0, None
while seen < want:
    line = f.readline()
    if not line:
        break
    if line.startswith(b'{"type"'):
        seen += 1
        if first is None:
            first = time.perf_counter()
print(seen, time.perf_counter() - (first or time.perf_counter()), flush=True)
"""


def fake_capacity(report: Report, small: int, large: int, events: int) -> None:
    kube = FakeKubeServer()
    t = time.perf_counter()
    for i in range(events):
        kube.apply(service(i % small, 1 + i // small))
    report.add("fake", "apply() with no watch open (bench process, one thread)",
               f"{events / (time.perf_counter() - t):,.0f}/s", "")
    with FakeKubeServer() as live:
        for i in range(small):
            live.apply(service(i))
        port = int(live.url.rsplit(":", 1)[1])
        reader = subprocess.Popen([sys.executable, "-c", WATCH_READER, str(port),
                                   f"/api/v1/services?watch=1&resourceVersion={live.resource_version}", str(events)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert reader.stdout is not None
            reader.stdout.readline()
            live.wait_for_watches(1, 10)
            t = time.perf_counter()
            for i in range(events):
                live.apply(service(i % small, 1 + i // small))
            applied = time.perf_counter() - t
            seen, took = reader.stdout.readline().split()
            reader.wait(30)
        finally:
            if reader.poll() is None:
                reader.kill()
        report.add("fake", "apply() with one watch open / events delivered to an out-of-process reader",
                   f"{events / applied:,.0f}/s / {int(seen) / max(float(took), 1e-9):,.0f}/s", "")
    for n in sorted({small, large} - {0}):
        kube = FakeKubeServer()
        for i in range(n):
            kube.apply(service(i))
        seconds, _, _ = list_seconds(kube, fakeserver.list_objects)
        report.add("fake", f"CPU to serve one paged list (limit 500) of {n:,} Services", f"{seconds:.1f} s", "")


def list_seconds(kube: FakeKubeServer, lister: Callable[..., Any]) -> tuple[float, int, int]:
    """CPU seconds ``lister`` (+ the JSON encoding) takes for a whole paged list of Services:
    (seconds, pages, pages measured)."""
    route = fakeserver.parse_route("/api/v1/services")
    assert route is not None
    pages = -(-len(kube.store.objects[fakeserver.BY_KIND["Service"]]) // 500)
    gc.collect()  # not this process's garbage from before
    t = time.process_time()
    token: str | None = None
    measured = 0
    while True:
        doc = lister(kube.store, route, {"limit": "500", **({"continue": token} if token else {})})
        json.dumps(doc)
        measured += 1
        token = doc["metadata"].get("continue")
        if not token:
            return time.process_time() - t, pages, measured


# --------------------------------------------------------------------------------------------- main


@dataclass
class Sizes:
    services: int
    large: int
    changes: int
    rate: float
    burst_rate: float
    burst_seconds: float
    idle_seconds: float


def sizes(args: argparse.Namespace) -> Sizes:
    if args.quick:
        base = Sizes(1_000, 10_000, 200, 20.0, 2000.0, 3.0, 5.0)
    else:
        base = Sizes(10_000, 100_000, 1_000, 20.0, 2000.0, 10.0, 15.0)
    for name in ("services", "large", "changes", "rate", "burst_rate", "burst_seconds", "idle_seconds"):
        if getattr(args, name) is not None:
            setattr(base, name, type(getattr(base, name))(getattr(args, name)))
    return base


async def run(args: argparse.Namespace, report: Report) -> set[str]:
    s = sizes(args)
    parts = set(args.part or ["1", "2", "3", "4", "5", "fake"])
    modes = Modes(*(Path(a).resolve() if a else None
                    for a in (args.profile, args.tracemalloc, args.keep, args.gc_stats)))
    for folder in (modes.profile, modes.tracemalloc, modes.keep, modes.gc_stats):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    shown = set(parts)
    report.notes.append(f"load average at start: {os.getloadavg()[0]:.2f}")
    if modes.profile or modes.tracemalloc or modes.gc_stats:
        report.notes.append("syncers ran under a profiler: the timings are not the real ones")
    small: Env | None = None
    if parts & {"1", "2", "3", "4", "5"}:
        async with contextlib.AsyncExitStack() as stack:
            env = small = await open_env(stack, s.services, modes, report, "small")
            report.notes.append(f"{env.cluster.objects:,} objects applied to the fake in {env.populate_s:.1f} s")
            steps: list[tuple[str, str, Any]] = [
                ("5", "idle", lambda: part5_idle(env, report, s.idle_seconds)),
                ("4", "relist", lambda: part4_relist(env, report)),
                ("1", "changes", lambda: part1(env, report, s.changes, s.rate)),
                ("5", "burst", lambda: part5_burst(env, report, s.burst_rate, s.burst_seconds)),
                ("4", "restart", lambda: part4_restart_and_resync(env, report, modes)),
            ]
            for part, window, step in steps:
                if part in parts:
                    await env.syncer.profile_mark(f"before-{window}")
                    await step()
                    await env.syncer.profile_mark(window)
    if parts & {"2", "3"} and s.large:
        async with contextlib.AsyncExitStack() as stack:
            env = await open_env(stack, s.large, modes, report, "large")
            report.notes.append(f"{env.cluster.objects:,} objects applied to the fake in {env.populate_s:.1f} s")
            if small is not None:
                slope = (env.rss - small.rss) * 1e6 / (env.cached - small.cached)
                report.add("3", f"RSS slope per cached object, {small.cached:,} -> {env.cached:,} objects "
                           f"({env.rss:.0f} MB at {s.large:,} Services)", f"{slope / 1000:.2f} KB", "≤ 2 KB",
                           slope <= 2000)
    if "fake" in parts:
        fake_capacity(report, s.services, s.large, int(s.burst_rate * s.burst_seconds))
    return shown


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", action="append", choices=("1", "2", "3", "4", "5", "fake"),
                    help="run only this part (repeatable; default all)")
    ap.add_argument("--quick", action="store_true", help="1,000 / 10,000 Services, 200 changes, 3 s burst")
    ap.add_argument("--services", type=int, help="N: Services for parts 1, 4, 5 and the small first sync")
    ap.add_argument("--large", type=int, help="Services of the large first sync (parts 2, 3; 0: none)")
    ap.add_argument("--changes", type=int, help="part 1: how many LB-IP changes")
    ap.add_argument("--rate", type=float, help="part 1: changes per second")
    ap.add_argument("--burst-rate", type=float, help="part 5: changes per second")
    ap.add_argument("--burst-seconds", type=float, help="part 5: how long")
    ap.add_argument("--idle-seconds", type=float, help="part 5: idle CPU measured over this long")
    ap.add_argument("--profile", metavar="DIR", help="run the syncers under cProfile, profiles into DIR")
    ap.add_argument("--tracemalloc", metavar="DIR", help="run the syncers with tracemalloc, top sites into DIR")
    ap.add_argument("--gc-stats", metavar="DIR", help="time the syncers' garbage collections, JSON into DIR")
    ap.add_argument("--keep", metavar="DIR", help="keep the syncer logs and the burst samples in DIR")
    args = ap.parse_args()
    random.seed(7)
    report = Report()
    print(f"dnssync continuous-mode bench (python {sys.version.split()[0]}, {os.cpu_count()} cores)", flush=True)
    try:
        shown = asyncio.run(run(args, report))
    finally:
        report.print(set(args.part or ["1", "2", "3", "4", "5", "fake"]))
    missed = report.missed(shown)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
