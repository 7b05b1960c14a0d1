"""Several syncer replicas: handover times, forced failovers under churn with no stale write, an etcd member killed.

    .venv/bin/python bench/failover.py [--quick] [--part 1 --part 2 --part 3] [--ttl 10s] [--churn-ttl 2s]
                                       [--trials 20] [--failovers 100] [--member-kills 5] [--rate 20] [--keep DIR]

Everything runs on loopback: a local etcd (``devtools.localetcd.LocalEtcd``; part 3 a 3-member
``devtools.localetcd.LocalEtcdCluster``), two syncer replicas as real processes (``python -m syncer
--from-manifests DIR``, continuous mode, one ``--owner-id``, so they elect one writer), and this script. It changes
the cluster by rewriting one manifest in DIR (write a hidden temporary file, rename it over): a LoadBalancer
Service ``churn.bench.example.org`` whose status IP encodes a counter (``10.a.b.c`` = the counter in 24 bits), so
the values are ordered. It follows etcd with watches of its own - the name's keys and the election keys - and
stamps each revision with the monotonic time it arrived. Roles are read from each replica's ``/healthz`` JSON
(``role``: ``leader``/``standby``), polled every 10 ms while a handover is timed.

Parts:

1. **handover** (``--election-ttl`` = ``--ttl``, default 10 s, the syncer's default): the leader gets SIGKILL,
   SIGSTOP or SIGTERM, ``--trials`` times each, once it has led for TTL/3 + 0.5 s (one lease refresh done, as a
   leader that has run for a while) plus a random part of TTL/3 (the signal falls anywhere in the refresh
   cycle), and the manifest changes right after the signal. Timed from the
   signal: the standby's ``/healthz`` says leader; the change is committed (and by whom, from the replicas' logs);
   split into signal -> the old leader's election key deleted in etcd (lease revoked or expired), key deleted ->
   the standby leads, leads -> commit. Then the old leader is replaced (SIGKILL, SIGTERM: a new process; SIGSTOP:
   SIGCONT, and it must step down to standby). Targets (issue 9): SIGTERM <= 2 s; SIGKILL <= TTL + 2 s.
2. **forced failovers under churn** (``--election-ttl`` = ``--churn-ttl``, default 2 s, so ``--failovers`` of
   them fit in minutes; the fence does not depend on the TTL): a writer changes the Service's IP ``--rate`` times
   a second for the whole part while the leader gets SIGTERM, SIGKILL and SIGSTOP in turn (a stopped leader is
   continued as soon as its successor has committed, so it wakes up with a stale view of a value that keeps
   moving). Per failover: the signal -> the first commit of a change made after it.
3. **the etcd leader member killed mid-churn** (3 members, ``--etcd-endpoints a,b,c``, ``--election-ttl`` =
   ``--ttl``): ``--member-kills`` times the Raft leader member gets SIGKILL (and is started again afterwards).
   Before each kill the Raft lead is moved (etcd's MoveLeader) so that the member killed is, in turn, the one the
   syncer leader's connections go to (from ``/proc``) and another one. Timed from the kill: a surviving member
   names a new leader; writes resume (the first commit of a change made after the kill). This script's watch is
   moved to a member that is not killed before each kill (resuming from its last revision: nothing is missed).

**What must not happen besides the failovers forced** (parts 1 and 2): a lead lost on its own (a
``lost_the_lead`` line beyond the one each woken SIGSTOP leader logs); a leader key that etcd deletes sooner
after a SIGKILL/SIGSTOP than a lease refreshed every TTL/3 can run out (2/3 TTL, less half a second for etcd's
expiry check) - such a trial is counted and timed apart, and part 1 goes on (up to 3 x ``--trials``) until it has
``--trials`` timed ones; more leader changes in etcd than failovers (part 2). Times are printed as
median / p90 / max (min).

**Stale write** (parts 2 and 3, and part 1's woken leaders): after each etcd revision that touches the name's
keys, the name holds a set of A values, each one a counter. A revision is a *stale write* when the highest
counter it leaves is lower than the highest counter any earlier revision left - the name's value went back in
time, whoever wrote it, across every handover. A revision that leaves other than exactly one value is counted
apart (a torn update). At the end of parts 2 and 3 the churn stops, etcd must hold the last value, and
``dnssync --once --dry-run`` over the same folder must plan ``0 to create, 0 to update, 0 to delete``.

The script prints ``part | what | result | target | met?`` and exits 1 when a target is missed; ``--keep DIR``
keeps the replicas' logs. Every loop has a deadline; every process it started is stopped at the end (only those).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime as dt
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # devtools/ is not installed: run from the checkout

import grpc  # noqa: E402
from aetcd import rpc  # noqa: E402
from aetcd.utils import prefix_range_end  # noqa: E402

from devtools.localetcd import ClusterMember, LocalEtcd, LocalEtcdCluster, free_port  # noqa: E402
from skydns.etcd import EtcdClient, EtcdSettings, read_prefix  # noqa: E402
from skydns.settings import parse_duration  # noqa: E402
from syncer.keys import name_key  # noqa: E402

OWNER = "bench"
NAME = "churn.bench.example.org"
NAME_PREFIX = (name_key("/skydns", NAME) + "/").encode()
ELECTION_PREFIX = f"/dnssync/election/{OWNER}/".encode()
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGSTOP": signal.SIGSTOP, "SIGTERM": signal.SIGTERM}
ROTATION = ("SIGTERM", "SIGKILL", "SIGSTOP")
POLL = 0.01  # the /healthz poll while a handover is timed
START_TIMEOUT = 60.0  # a replica process until ready (2 busy cores)
T = TypeVar("T")

# ------------------------------------------------------------------------------------------------ the cluster


def ip_of(counter: int) -> str:
    return f"10.{counter >> 16 & 255}.{counter >> 8 & 255}.{counter & 255}"


def counter_of(ip: str) -> int:
    """``10.a.b.c`` -> the counter; -1 for anything else."""
    parts = ip.split(".")
    if len(parts) != 4 or parts[0] != "10" or not all(p.isdigit() for p in parts):
        return -1
    return int(parts[1]) << 16 | int(parts[2]) << 8 | int(parts[3])


def service(counter: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "churn", "namespace": "bench",
                         "annotations": {"external-dns.alpha.kubernetes.io/hostname": NAME}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip_of(counter)}]}}}


class Manifest:
    """The one manifest in the watched folder; :meth:`bump` writes the next counter (atomic rename)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "churn.json"
        self.counter = 0
        self.bump()

    def bump(self) -> int:
        self.counter += 1
        temporary = self.folder / ".churn.json.tmp"  # hidden: the syncer skips it
        temporary.write_text(json.dumps(service(self.counter)))
        os.replace(temporary, self.path)
        return self.counter


class Churn:
    """``async with Churn(manifest, rate)``: the manifest changes ``rate`` times a second until the block ends."""

    def __init__(self, manifest: Manifest, rate: float) -> None:
        self.manifest, self.period = manifest, 1.0 / rate
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        due = time.monotonic()
        while True:
            self.manifest.bump()
            due = max(due + self.period, time.monotonic())  # never a burst to catch up
            await asyncio.sleep(due - time.monotonic())

    async def __aenter__(self) -> Churn:
        self._task = asyncio.create_task(self._run(), name="churn")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# ------------------------------------------------------------------------------------------------ the replicas


async def get_json(port: int, path: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """GET over loopback without blocking the loop (the probe server closes each connection); None if no answer."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        return None
    try:
        body: dict[str, Any] = json.loads(data.partition(b"\r\n\r\n")[2])
    except ValueError:
        return None
    return body


class Replica:
    """One ``python -m syncer`` process, continuous, over the manifest folder."""

    serial = 0

    def __init__(self, folder: Path, endpoints: str, ttl: float, logs: Path) -> None:
        Replica.serial += 1
        self.name = f"r{Replica.serial}"
        self.port = free_port()
        self.log = logs / f"{self.name}.log"
        command = [sys.executable, "-m", "syncer", "--owner-id", OWNER, "--policy", "sync",
                   "--from-manifests", str(folder), "--etcd-endpoints", endpoints,
                   "--http-listen", f"127.0.0.1:{self.port}", "--election-ttl", f"{ttl:g}s",
                   "--log-format", "json"]
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)
        self.stopped = False  # SIGSTOP sent and not continued

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, name: str) -> None:
        self.proc.send_signal(signal.Signals[name])
        self.stopped = name == "SIGSTOP"

    async def health(self) -> dict[str, Any] | None:
        return await get_json(self.port, "/healthz")

    async def role(self) -> str | None:
        health = await self.health()
        return None if health is None else str(health.get("role"))

    async def wait_exit(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not exit within {timeout} s")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    def stop(self) -> None:
        """SIGCONT + SIGTERM, SIGKILL if it does not exit within 15 s (blocking: for the way out)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def wrote(self, counter: int) -> bool:
        """Whether this replica's log has a committed change to the name with that value."""
        ip = ip_of(counter)
        return any(e.get("event", "").startswith("record_") and e.get("name") == NAME
                   and ip in str(e.get("targets", "")).split(",") for e in self.events())

    async def logged_write(self, counter: int, timeout: float = 5.0) -> bool:
        """Whether this replica logs the commit of that value within ``timeout`` (its log line follows the commit
        this script saw by a moment, longer on a busy machine)."""
        deadline = time.monotonic() + timeout
        while not self.wrote(counter):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Replicas:
    """Two replicas of one owner id; a replaced one is a new process (its log is kept)."""

    def __init__(self, folder: Path, endpoints: str, ttl: float, logs: Path) -> None:
        self.folder, self.endpoints, self.ttl, self.logs = folder, endpoints, ttl, logs
        self.running = [Replica(folder, endpoints, ttl, logs) for _ in range(2)]
        self.retired: list[Replica] = []

    def replace(self, old: Replica) -> Replica:
        self.running.remove(old)
        self.retired.append(old)
        new = Replica(self.folder, self.endpoints, self.ttl, self.logs)
        self.running.append(new)
        return new

    async def steady(self, timeout: float = START_TIMEOUT) -> tuple[Replica, Replica]:
        """Wait until one replica leads with its first sync written and the other stands by, ready."""
        deadline = time.monotonic() + timeout
        while True:
            for replica in self.running:
                if not replica.alive():
                    raise RuntimeError(f"{replica.name} exited with {replica.proc.returncode}:\n{replica.tail()}")
            healths = [await r.health() for r in self.running]
            leaders = [r for r, h in zip(self.running, healths, strict=True)
                       if h and h.get("role") == "leader" and h.get("synced")]
            standbys = [r for r, h in zip(self.running, healths, strict=True)
                        if h and h.get("role") == "standby" and h.get("ready")]
            if len(leaders) == 1 and len(standbys) == 1:
                return leaders[0], standbys[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no steady leader + standby within {timeout} s: {healths}")
            await asyncio.sleep(0.02)

    def every(self) -> list[Replica]:
        return [*self.retired, *self.running]

    def close(self) -> None:
        for replica in self.running:
            replica.stop()


async def poll_role(replica: Replica, role: str, timeout: float) -> float:
    """Poll ``/healthz`` every ``POLL`` until ``role``; the monotonic instant it was first seen."""
    deadline = time.monotonic() + timeout
    while True:
        if await replica.role() == role:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{replica.name} not {role} within {timeout} s:\n{replica.tail()}")
        if not replica.alive():
            raise RuntimeError(f"{replica.name} exited:\n{replica.tail()}")
        await asyncio.sleep(POLL)


def etcd_ports(pid: int) -> set[int]:
    """The remote loopback ports of the process's established TCP connections (from /proc)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):  # gRPC dials IPv4 on IPv6 sockets (v4-mapped addresses)
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes and fields[3] == "01":  # ESTABLISHED
                    ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


async def dry_run_summary(folder: Path, endpoints: str) -> str:
    """The last line ``dnssync --once --dry-run`` prints over the folder (its plan summary)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncer", "--once", "--dry-run", "--owner-id", OWNER, "--policy", "sync",
        "--from-manifests", str(folder), "--etcd-endpoints", endpoints, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    lines = out.decode().strip().splitlines()
    return lines[-1] if lines else f"(no output, exit {proc.returncode})"


# ------------------------------------------------------------------------------------------------ etcd, watched


@dataclass(frozen=True)
class Commit:
    """The name after one revision: the counters its A values encode, and when this script saw it."""

    revision: int
    at: float
    counters: tuple[int, ...]

    @property
    def newest(self) -> int:
        return max(self.counters, default=-1)


@dataclass(frozen=True)
class KeyEvent:
    """An election key created or deleted, and the key that leads after it (the lowest create revision)."""

    revision: int
    at: float
    key: str
    created: bool
    leader: str | None


@dataclass
class StaleReport:
    stale: list[tuple[Commit, int]] = field(default_factory=list)  # (the commit, the newest counter before it)
    torn: list[Commit] = field(default_factory=list)  # the name holding other than exactly one value
    commits: int = 0


def stale_writes(commits: Sequence[Commit]) -> StaleReport:
    """Every commit whose newest counter is lower than the newest counter of any earlier commit."""
    report = StaleReport(commits=len(commits))
    newest = -1
    for commit in commits:
        if len(commit.counters) != 1:
            report.torn.append(commit)
        if commit.counters and commit.newest < newest:
            report.stale.append((commit, newest))
        newest = max(newest, commit.newest)
    return report


def _counter(value: bytes) -> int:
    try:
        return counter_of(str(json.loads(value).get("host", "")))
    except (ValueError, AttributeError):
        return -1


class Recorder:
    """Watches the name's keys and the election keys from one etcd endpoint; :meth:`switch` moves to another."""

    def __init__(self) -> None:
        self.commits: list[Commit] = []
        self.elections: list[KeyEvent] = []
        self._values: dict[bytes, int] = {}
        self._candidates: dict[str, int] = {}  # election key -> its create revision
        self._seen: dict[bytes, int] = {}  # per watched prefix: the last revision applied
        self._changed = asyncio.Event()
        self._client: EtcdClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None

    async def start(self, endpoint: str) -> None:
        self._client = EtcdClient(EtcdSettings.from_env(endpoint, env={}))
        if not self._seen:
            revision, kvs = await read_prefix(self._client, NAME_PREFIX)
            self._values = {kv.key: _counter(kv.value) for kv in kvs}
            _, kvs = await read_prefix(self._client, ELECTION_PREFIX, revision)
            self._candidates = {kv.key.decode(): kv.create_revision for kv in kvs}
            self._seen = {NAME_PREFIX: revision, ELECTION_PREFIX: revision}
        await self._client.connect()
        self._tasks = [asyncio.create_task(self._watch(NAME_PREFIX, self._on_name)),
                       asyncio.create_task(self._watch(ELECTION_PREFIX, self._on_election))]

    async def switch(self, endpoint: str) -> None:
        await self.close()
        await self.start(endpoint)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None

    async def _watch(self, prefix: bytes, handle: Callable[[list[Any], float], None]) -> None:
        assert self._client is not None and self._client.channel is not None
        call = rpc.WatchStub(self._client.channel).Watch(metadata=self._client.metadata)
        try:
            create = rpc.WatchCreateRequest(key=prefix, range_end=prefix_range_end(prefix),
                                            start_revision=self._seen[prefix] + 1)
            await call.write(rpc.WatchRequest(create_request=create))
            while True:
                response = await call.read()
                if response is grpc.aio.EOF or response.canceled or response.compact_revision:
                    raise ConnectionError(f"the watch of {prefix.decode()} ended: {response!r}")
                if response.events:
                    handle(list(response.events), time.monotonic())
                    self._seen[prefix] = max(self._seen[prefix], response.events[-1].kv.mod_revision)
                    self._changed.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.failure = exc
            self._changed.set()
            raise
        finally:
            call.cancel()

    def _on_name(self, events: list[Any], at: float) -> None:
        revision = None
        for event in events:
            if revision is not None and event.kv.mod_revision != revision:
                self._commit(revision, at)
            revision = event.kv.mod_revision
            if event.type == rpc.Event.DELETE:
                self._values.pop(event.kv.key, None)
            else:
                self._values[event.kv.key] = _counter(event.kv.value)
        if revision is not None:
            self._commit(revision, at)

    def _commit(self, revision: int, at: float) -> None:
        self.commits.append(Commit(revision, at, tuple(sorted(self._values.values()))))

    def _on_election(self, events: list[Any], at: float) -> None:
        for event in events:
            key = event.kv.key.decode()
            created = event.type == rpc.Event.PUT and event.kv.create_revision == event.kv.mod_revision
            if created:
                self._candidates[key] = event.kv.create_revision
            elif event.type == rpc.Event.DELETE:
                self._candidates.pop(key, None)
            else:
                continue
            self.elections.append(KeyEvent(event.kv.mod_revision, at, key, created, self.leader))

    @property
    def leader(self) -> str | None:
        return min(self._candidates, key=self._candidates.__getitem__) if self._candidates else None

    async def until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Wait (woken by each revision seen) until ``check()`` returns something; TimeoutError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()
            found = check()
            if found is not None:
                return found
            if self.failure is not None:
                raise RuntimeError(f"the bench's etcd watch failed: {self.failure!r}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    # -- questions ------------------------------------------------------------------------------------------

    def first_commit(self, counter: int, after: float) -> Commit | None:
        """The first commit seen at or after the instant ``after`` that leaves ``counter`` or a newer value."""
        start = bisect.bisect_left(self.commits, after, key=lambda c: c.at)
        return next((c for c in self.commits[start:] if c.newest >= counter), None)

    def holds(self, counter: int) -> bool:
        """The name holds exactly that value now (as far as this script has seen)."""
        return sorted(self._values.values()) == [counter]

    def leader_changes(self, after: float) -> int:
        """How often the leading election key changed since the instant ``after`` (a gap with none counts too)."""
        before = [e.leader for e in self.elections if e.at < after]
        previous = before[-1] if before else None
        changes = 0
        for event in self.elections:
            if event.at >= after and event.leader != previous:
                changes += event.leader is not None
                previous = event.leader
        return changes

    def campaigns(self, after: float) -> int:
        """Election keys created since the instant ``after``."""
        return sum(e.created and e.at >= after for e in self.elections)

    def deleted(self, key: str) -> KeyEvent | None:
        return next((e for e in self.elections if e.key == key and not e.created), None)


# ------------------------------------------------------------------------------------------------ numbers


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def spread(values: Sequence[float]) -> str:
    """``median / p90 / max (min)`` in seconds."""
    if not values:
        return "-"
    return (f"{statistics.median(values):.2f} / {percentile(values, 90):.2f} / {max(values):.2f} s "
            f"(min {min(values):.2f})")


def early(sig: str, released: float, ttl: float) -> bool:
    """Whether the old leader's key went sooner after a SIGKILL/SIGSTOP than a lease refreshed every TTL/3 can
    run out (2/3 TTL, less half a second of etcd's expiry check): it was not being refreshed as it should."""
    return sig in ("SIGKILL", "SIGSTOP") and released < 2 * ttl / 3 - 0.5


def leader_key(replica: Replica) -> str:
    """The election key of the replica's latest lead (its log's last ``leading`` line)."""
    keys = [str(e.get("key")) for e in replica.events() if e.get("event") == "leading"]
    return keys[-1] if keys else ""


@dataclass
class Report:
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    missed: int = 0

    def add(self, part: str, what: str, result: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append((part, what, result, target, "" if met is None else ("yes" if met else "NO")))
        if met is False:
            self.missed += 1

    def print(self) -> None:
        widths = [max(len(r[i]) for r in [("part", "what", "result", "target", "met?"), *self.rows])
                  for i in range(5)]
        for row in [("part", "what", "result", "target", "met?"), *self.rows]:
            print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
                  flush=True)


def add_stale_rows(report: Report, part: str, commits: Sequence[Commit]) -> None:
    result = stale_writes(commits)
    report.add(part, f"stale writes (of {result.commits} revisions of the name)", str(len(result.stale)), "0",
               not result.stale)
    for commit, newest in result.stale[:5]:
        report.add(part, f"  stale: revision {commit.revision} holds {commit.newest}", f"after {newest}")
    report.add(part, "revisions leaving the name other than exactly one value", str(len(result.torn)), "0",
               not result.torn)


def lead_rows(report: Report, part: str, replicas: Replicas, trials: Sequence[tuple[str, float]],
              ttl: float) -> None:
    """What should not happen besides the failovers forced: leases that ran out early, leads lost on their own."""
    reasons, fenced = log_counts(replicas.every())
    report.add(part, "lost_the_lead reasons / write_fenced lines (all logs)", f"{dict(reasons)} / {fenced}")
    stops = sum(sig == "SIGSTOP" for sig, _ in trials)  # each woken leader steps down once
    report.add(part, "leads lost on their own (lost_the_lead lines beyond one per SIGSTOP)",
               str(sum(reasons.values()) - stops), "0", sum(reasons.values()) == stops)
    soon = sum(early(sig, released, ttl) for sig, released in trials)
    report.add(part, "SIGKILL/SIGSTOP: old key gone < 2/3 TTL after the signal (lease not kept alive)",
               f"{soon} of {sum(sig != 'SIGTERM' for sig, _ in trials)}", "0", soon == 0)


def log_counts(replicas: Sequence[Replica]) -> tuple[Counter[str], int]:
    """``lost_the_lead`` reasons and ``write_fenced`` lines over every replica's log."""
    reasons: Counter[str] = Counter()
    fenced = 0
    for replica in replicas:
        for event in replica.events():
            if event.get("event") == "lost_the_lead":
                reasons[str(event.get("reason"))] += 1
            fenced += event.get("event") == "write_fenced"
    return reasons, fenced


async def final_state(report: Report, part: str, recorder: Recorder, manifest: Manifest, folder: Path,
                      endpoints: str) -> None:
    """The churn has stopped: etcd holds the last value and the plan over the folder is empty."""
    last = manifest.counter
    try:
        await recorder.until(lambda: True if recorder.holds(last) else None, 30, f"the last value {last}")
        holds = True
    except TimeoutError:
        holds = False
    report.add(part, f"etcd holds the last value ({ip_of(last)}) after the churn", "yes" if holds else "no",
               "yes", holds)
    summary = await dry_run_summary(folder, endpoints)
    empty = summary == "0 to create, 0 to update, 0 to delete"
    report.add(part, "dnssync --once --dry-run over the folder", summary, "0 / 0 / 0", empty)


# ------------------------------------------------------------------------------------------------ part 1


@dataclass
class Handover:
    lead: float  # signal -> the standby's /healthz says leader
    write: float  # signal -> the change made after the signal committed (seen by this script)
    released: float  # signal -> the old leader's election key deleted (seen by this script)
    by_successor: bool  # the new leader's log has that commit
    early: bool  # the old key went sooner than a lease kept alive can run out (see early())
    stepped_down: str | None = None  # SIGSTOP: how the woken leader stepped down


async def settled(replicas: Replicas) -> tuple[Replica, Replica]:
    """A leader that has led for TTL/3 + 0.5 s (its lease refreshed at least once since it took the lead, as any
    leader that has run for a while) plus a random part of TTL/3 (so the signal falls anywhere in its refresh
    cycle), and a ready standby."""
    seconds = replicas.ttl / 3 + 0.5 + random.uniform(0, replicas.ttl / 3)
    deadline = time.monotonic() + START_TIMEOUT + 3 * seconds
    while True:
        leader, standby = await replicas.steady()
        wait = seconds - leading_for(leader)
        if wait <= 0:
            return leader, standby
        if time.monotonic() + wait > deadline:
            raise TimeoutError(f"no leader kept the lead for {seconds:g} s")
        await asyncio.sleep(wait)  # pacing the trial, not waiting for a condition


def leading_for(replica: Replica) -> float:
    """Seconds since the replica's log says it took the lead (its clock and ours are the same)."""
    stamps = [str(e.get("timestamp")) for e in replica.events() if e.get("event") == "leading"]
    if not stamps:
        return 0.0
    since = dt.datetime.fromisoformat(stamps[-1].replace("Z", "+00:00"))
    return (dt.datetime.now(dt.UTC) - since).total_seconds()


async def handover(replicas: Replicas, recorder: Recorder, manifest: Manifest, sig: str) -> Handover:
    leader, standby = await settled(replicas)
    before = manifest.counter
    await recorder.until(lambda: True if recorder.holds(before) else None, 30, f"value {before} committed")
    old_key = leader_key(leader)
    limit = 3 * replicas.ttl + 20
    started = time.monotonic()
    leader.signal(sig)
    counter = manifest.bump()
    led = await poll_role(standby, "leader", limit)
    commit = await recorder.until(lambda: recorder.first_commit(counter, started), limit, f"value {counter}")
    gone = await recorder.until(lambda: recorder.deleted(old_key), 10, f"the delete of {old_key}")
    result = Handover(led - started, commit.at - started, gone.at - started, False,
                      early(sig, gone.at - started, replicas.ttl))
    await retire(replicas, leader, sig, limit, result)
    result.by_successor = await standby.logged_write(counter)
    return result


async def retire(replicas: Replicas, old: Replica, sig: str, limit: float, result: Handover | None = None) -> None:
    """After a handover: a killed or terminated leader is replaced, a stopped one continued (it must stand by)."""
    if sig == "SIGSTOP":
        old.signal("SIGCONT")
        await poll_role(old, "standby", limit)
        if result is not None:
            reasons = [e.get("reason") for e in old.events() if e.get("event") == "lost_the_lead"]
            result.stepped_down = str(reasons[-1]) if reasons else "no lost_the_lead line"
        return
    code = await old.wait_exit()
    if sig == "SIGTERM" and code != 0:
        raise RuntimeError(f"{old.name} exited {code} after SIGTERM:\n{old.tail()}")
    replicas.replace(old)


async def part_handover(args: argparse.Namespace, report: Report, work: Path) -> None:
    folder = work / "handover"
    folder.mkdir()
    manifest = Manifest(folder)
    with LocalEtcd() as etcd:
        recorder = Recorder()
        await recorder.start(etcd.endpoint)
        replicas = Replicas(folder, etcd.endpoint, args.ttl, work)
        try:
            results: dict[str, list[Handover]] = {}
            for sig in SIGNALS:
                results[sig] = []
                for _ in range(3 * args.trials):  # until `trials` timed ones (early expiries are not timed)
                    results[sig].append(await handover(replicas, recorder, manifest, sig))
                    if sum(not t.early for t in results[sig]) >= args.trials:
                        break
                print(f"part 1: {sig} x {len(results[sig])} done", file=sys.stderr, flush=True)
            handover_rows(report, args, results)
            trials = [(sig, t.released) for sig, done in results.items() for t in done]
            lead_rows(report, "1", replicas, trials, args.ttl)
            add_stale_rows(report, "1", recorder.commits)
        finally:
            replicas.close()
            await recorder.close()


def handover_rows(report: Report, args: argparse.Namespace, results: dict[str, list[Handover]]) -> None:
    """Times over the trials whose old lease ran its course (an early expiry is counted apart, not timed)."""
    ttl = args.ttl
    targets = {"SIGTERM": 2.0, "SIGKILL": ttl + 2.0, "SIGSTOP": ttl + 2.0}
    for sig, every in results.items():
        trials = [t for t in every if not t.early]
        lead = [t.lead for t in trials]
        median = statistics.median(lead) if lead else float("inf")
        left_out = f", {len(every) - len(trials)} early expiries left out" if len(trials) < len(every) else ""
        label = f"{sig} x {len(trials)}{left_out}, ttl {ttl:g} s"
        report.add("1", f"{label}: signal -> standby leads (median / p90 / max)", spread(lead),
                   f"<= {targets[sig]:g} s", median <= targets[sig])
        report.add("1", f"{sig}: signal -> change made after it committed", spread([t.write for t in trials]))
        report.add("1", "  of which signal -> old key deleted in etcd", spread([t.released for t in trials]))
        report.add("1", "  old key deleted -> standby's /healthz leader (10 ms poll)",
                   spread([t.lead - t.released for t in trials]))
        report.add("1", "  leader -> commit (first full sync; 10 ms poll)",
                   spread([max(0.0, t.write - t.lead) for t in trials]))
        by_new = sum(t.by_successor for t in every)
        report.add("1", "  committed by the new leader", f"{by_new} of {len(every)}", "all", by_new == len(every))
        if len(trials) < len(every):
            report.add("1", f"  the {len(every) - len(trials)} early expiries: signal -> standby leads",
                       spread([t.lead for t in every if t.early]))
        if sig == "SIGSTOP":
            report.add("1", "  the woken leader stepped down by", str(dict(Counter(t.stepped_down for t in every))))


# ------------------------------------------------------------------------------------------------ part 2


@dataclass
class Failover:
    sig: str
    lead: float  # signal -> the standby leads
    resume: float  # signal -> the first commit of a change made after it
    released: float  # signal -> the old leader's election key deleted


async def forced_failover(replicas: Replicas, recorder: Recorder, manifest: Manifest, sig: str) -> Failover:
    leader, standby = await replicas.steady()
    mark = manifest.counter  # writes are flowing: the leader has committed a value at least this new
    await recorder.until(lambda: recorder.first_commit(mark, 0.0), 30, f"a commit of value {mark} or newer")
    old_key = leader_key(leader)
    limit = 3 * replicas.ttl + 20
    started = time.monotonic()
    leader.signal(sig)
    after = manifest.counter + 1
    led = await poll_role(standby, "leader", limit)
    commit = await recorder.until(lambda: recorder.first_commit(after, started), limit, f"a value >= {after}")
    gone = await recorder.until(lambda: recorder.deleted(old_key), 10, f"the delete of {old_key}")
    await retire(replicas, leader, sig, limit)
    return Failover(sig, led - started, commit.at - started, gone.at - started)


async def part_churn(args: argparse.Namespace, report: Report, work: Path) -> None:
    folder = work / "churn"
    folder.mkdir()
    manifest = Manifest(folder)
    with LocalEtcd() as etcd:
        recorder = Recorder()
        await recorder.start(etcd.endpoint)
        replicas = Replicas(folder, etcd.endpoint, args.churn_ttl, work)
        try:
            await replicas.steady()
            first, began = len(recorder.commits), time.monotonic()
            results: list[Failover] = []
            async with Churn(manifest, args.rate):
                for i in range(args.failovers):
                    results.append(await forced_failover(replicas, recorder, manifest, ROTATION[i % len(ROTATION)]))
                    if (i + 1) % 10 == 0:
                        print(f"part 2: {i + 1} failovers", file=sys.stderr, flush=True)
                await replicas.steady()
            churn_rows(report, args, results, recorder, first, began, manifest)
            lead_rows(report, "2", replicas, [(r.sig, r.released) for r in results], args.churn_ttl)
            await final_state(report, "2", recorder, manifest, folder, etcd.endpoint)
        finally:
            replicas.close()
            await recorder.close()


def churn_rows(report: Report, args: argparse.Namespace, results: list[Failover], recorder: Recorder, first: int,
               began: float, manifest: Manifest) -> None:
    report.add("2", f"forced failovers ({'/'.join(ROTATION)} in turn), churn {args.rate:g} changes/s, "
               f"ttl {args.churn_ttl:g} s", f"{len(results)}; {manifest.counter} changes")
    changes = recorder.leader_changes(began)
    report.add("2", "  leader changes seen in etcd (one per failover) / election keys created",
               f"{changes} / {recorder.campaigns(began)}", f"{len(results)}", changes == len(results))
    for sig in ROTATION:
        done = [r for r in results if r.sig == sig]
        report.add("2", f"{sig} x {len(done)}: signal -> standby leads", spread([r.lead for r in done]))
        report.add("2", f"{sig} x {len(done)}: signal -> writes resume", spread([r.resume for r in done]))
    add_stale_rows(report, "2", recorder.commits[first:])


# ------------------------------------------------------------------------------------------------ part 3


@dataclass
class MemberKill:
    elected: float  # kill -> a surviving member names a new Raft leader
    resume: float  # kill -> the first commit of a change made after it
    connected: bool  # the syncer leader had a connection to the killed member
    moved: bool  # the syncer's lead moved during the outage
    campaigns: int  # election keys created during the outage


async def kill_leader_member(cluster: LocalEtcdCluster, replicas: Replicas, recorder: Recorder, manifest: Manifest,
                             on_syncers_member: bool) -> MemberKill:
    """Make the etcd leader the member the syncer leader is connected to (or another one), then SIGKILL it."""
    leader, _ = await replicas.steady()
    mark = manifest.counter
    await recorder.until(lambda: recorder.first_commit(mark, 0.0), 30, f"a commit of value {mark} or newer")
    ports = etcd_ports(leader.pid)
    wanted = [m for m in cluster.answering() if (m.client_port in ports) == on_syncers_member]
    member = await asyncio.to_thread(move_leader, cluster, wanted)
    survivor = next(m for m in cluster.answering() if m is not member)
    await recorder.switch(survivor.endpoint)
    connected = member.client_port in etcd_ports(leader.pid)
    limit = 3 * replicas.ttl + 30
    started = time.monotonic()
    await asyncio.to_thread(member.kill)
    after = manifest.counter + 1
    elected = asyncio.create_task(asyncio.to_thread(_timed, cluster.leader, limit))
    commit = await recorder.until(lambda: recorder.first_commit(after, started), limit, f"a value >= {after}")
    elected_at = await elected
    moved, campaigns = recorder.leader_changes(started) > 0, recorder.campaigns(started)
    await asyncio.to_thread(member.start)
    await asyncio.to_thread(cluster.wait_healthy, 30)
    return MemberKill(elected_at - started, commit.at - started, connected, moved, campaigns)


def move_leader(cluster: LocalEtcdCluster, wanted: Sequence[ClusterMember], timeout: float = 15.0) -> ClusterMember:
    """Make one of ``wanted`` the Raft leader (etcd's MoveLeader through the JSON gateway, sent to the leader); the
    current leader if it is one of them or ``wanted`` is empty."""
    leader = cluster.leader(timeout)
    if leader in wanted or not wanted:
        return leader
    target = wanted[0]
    target.status()  # learns its member id
    request = urllib.request.Request(leader.endpoint + "/v3/maintenance/transfer-leadership", method="POST",
                                     data=json.dumps({"targetID": target.member_id}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
    deadline = time.monotonic() + timeout
    while cluster.current_leader() is not target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"etcd leadership did not move to {target.name} within {timeout} s")
        time.sleep(0.05)
    return target


def _timed(call: Callable[[float], object], timeout: float) -> float:
    """Run ``call(timeout)`` (blocking); the monotonic instant it returned."""
    call(timeout)
    return time.monotonic()


async def part_etcd_member(args: argparse.Namespace, report: Report, work: Path) -> None:
    folder = work / "cluster"
    folder.mkdir()
    manifest = Manifest(folder)
    with LocalEtcdCluster(3) as cluster:
        recorder = Recorder()
        await recorder.start(cluster.members[0].endpoint)
        replicas = Replicas(folder, cluster.endpoints, args.ttl, work)
        try:
            await replicas.steady()
            first = len(recorder.commits)
            results: list[MemberKill] = []
            async with Churn(manifest, args.rate):
                for i in range(args.member_kills):  # alternately the syncer leader's etcd member and another
                    results.append(await kill_leader_member(cluster, replicas, recorder, manifest, i % 2 == 0))
                await replicas.steady()
            member_rows(report, args, results)
            reasons, fenced = log_counts(replicas.every())
            report.add("3", "lost_the_lead reasons / write_fenced lines (all logs)", f"{dict(reasons)} / {fenced}")
            add_stale_rows(report, "3", recorder.commits[first:])
            await final_state(report, "3", recorder, manifest, folder, cluster.endpoints)
        finally:
            replicas.close()
            await recorder.close()


def member_rows(report: Report, args: argparse.Namespace, results: list[MemberKill]) -> None:
    label = f"etcd leader member SIGKILLed x {len(results)}, 3 members, churn {args.rate:g}/s, ttl {args.ttl:g} s"
    report.add("3", f"{label}: kill -> a new etcd leader", spread([r.elected for r in results]))
    report.add("3", "  kill -> writes resume (first commit of a later change)", spread([r.resume for r in results]))
    for connected, what in ((True, "the syncer leader's own etcd member killed"), (False, "another member killed")):
        runs = [r for r in results if r.connected == connected]
        report.add("3", f"    {what} x {len(runs)}: writes resume", spread([r.resume for r in runs]))
    report.add("3", "  runs where the syncer's lead moved / election keys created",
               f"{sum(r.moved for r in results)} of {len(results)} / {sum(r.campaigns for r in results)}")


# ------------------------------------------------------------------------------------------------ main


PARTS: dict[int, Callable[[argparse.Namespace, Report, Path], Awaitable[None]]] = {
    1: part_handover, 2: part_churn, 3: part_etcd_member}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 trials per signal, 10 failovers, 2 member kills")
    ap.add_argument("--part", type=int, action="append", choices=sorted(PARTS), help="run only these parts")
    ap.add_argument("--ttl", type=parse_duration, default=10.0, help="--election-ttl of parts 1 and 3 (10s)")
    ap.add_argument("--churn-ttl", type=parse_duration, default=2.0, help="--election-ttl of part 2 (2s)")
    ap.add_argument("--trials", type=int, help="handovers per signal (20; --quick 3)")
    ap.add_argument("--failovers", type=int, help="forced failovers under churn (100; --quick 10)")
    ap.add_argument("--member-kills", type=int, help="etcd leader member kills (5; --quick 2)")
    ap.add_argument("--rate", type=float, default=20.0, help="churn: changes per second (20)")
    ap.add_argument("--keep", type=Path, help="write the replicas' logs here (kept) instead of a temporary folder")
    args = ap.parse_args(argv)
    args.trials = args.trials or (3 if args.quick else 20)
    args.failovers = args.failovers or (10 if args.quick else 100)
    args.member_kills = args.member_kills or (2 if args.quick else 5)
    return args


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="dnssync-failover-", dir=args.keep))
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dnssync-failover-")))
        for part in args.part or sorted(PARTS):
            try:
                await PARTS[part](args, report, work)
            except (TimeoutError, RuntimeError) as exc:
                report.add(str(part), "aborted", str(exc).splitlines()[0], "", False)
                print(f"part {part} aborted: {exc}", file=sys.stderr, flush=True)
    print(f"\nsyncer failover on loopback, {os.cpu_count()} CPUs, {time.monotonic() - started:.0f} s")
    report.print()
    return 1 if report.missed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
