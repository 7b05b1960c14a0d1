"""The one place that wires the syncer: :func:`run_once` and the continuous :class:`Controller` - the only module
that knows both the cluster side (:mod:`syncer.kube`) and the etcd side (:mod:`syncer.etcd`), as ExternalDNS's
``controller.go``.

One step, :meth:`Reconciler.reconcile`, is shared by both modes: read every record under the prefix (paged, at one
revision), plan the desired endpoints against them, print or log the plan, write it (unless ``--dry-run``).
``--once`` lists the objects, runs that step and exits. Continuous mode:

1. starts a reflector per kind the enabled sources read (or the folder watch for ``--from-manifests``) and the
   etcd mirror of the prefix, and waits until every kind is listed and the mirror loaded;
2. runs the step over the whole desired state (the first full sync; then ``/readyz`` is 200);
3. then loops: object changes mark the objects they affect (:class:`syncer.desired.DesiredState`); after a short
   coalescing window the marked objects are recomputed, and only the names whose desired records changed are
   planned - against the mirror's in-memory copy of etcd - and written, one guarded transaction per name. A
   change to one of our records in etcd by anybody else (the mirror sees it) marks that name too, so it is put
   back (drift repair); foreign records are never touched, a foreign record at one of our names is a reported
   conflict;
4. every ``--resync-interval`` (and after the mirror had to reload) the full step runs again - the safety net; on
   an unchanged cluster it writes nothing.

Failures never lose changes and never delete anything because a read failed: the API or the folder unreachable ->
the reflectors keep their last state and retry; etcd unreachable -> the names wait (one entry per name, the
latest desired state wins when it is written) and are retried with backoff. SIGTERM/SIGINT: the transaction in
flight is finished (at most a few seconds), the watches stopped, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import grpc
import structlog
from aetcd import exceptions as etcd_errors

from skydns.etcd import EtcdClient
from skydns.http import HealthServer
from skydns.listwatch import ListWatch
from skydns.mirror import EtcdMirror, MirrorMetrics
from skydns.views import view_prefix
from syncer import metrics
from syncer.config import SyncConfig
from syncer.current import CurrentRecords
from syncer.desired import DesiredState
from syncer.etcd.election import Election, Leadership, LostLead
from syncer.etcd.state import read_current
from syncer.etcd.writer import ApplyResult, Writer
from syncer.model import KINDS, ClusterSnapshot, Endpoint, Skipped
from syncer.output import PAST_TENSE, adoption_fields, change_line, render
from syncer.plan import Plan, calculate
from syncer.retrying import Unavailable, budget, describe, retry_async
from syncer.sources import Filters, collect, enabled, kinds_for_sources

PROG = "dnssync"
EXIT_OK, EXIT_SYNC_ERROR, EXIT_USAGE = 0, 1, 2
COALESCE_SECONDS = 0.01  # events arriving together are planned together
LOGGED_CHANGES = 100  # a step with more changes logs each at debug level, and a summary
RECOMPUTE_SLICE = 2000  # objects recomputed between two turns of the event loop
THREAD_PLAN_SIZE = 5000  # a plan over more records than this is computed off the event loop
WRITE_DEADLINE = 2  # seconds for one etcd call of the continuous syncer (writes, reads, the lease)
STOP_GRACE_SECONDS = 8.0  # how long a stop waits for the transaction in flight
MIRROR_CATCH_UP_SECONDS = 1.0
WRITE_BACKOFF = (0.2, 30.0)
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"  # completed pods never carry records
log = structlog.get_logger("syncer.controller")


class NotLeading(Exception):
    """``--once``: another replica holds the lead for our owner id (exit 1, naming it)."""


class ConfigProblem(Exception):
    """Bad configuration found while starting (a manifest, a kubeconfig): exit 2."""


# -- the shared step --------------------------------------------------------------------------------------------


@dataclass
class Reconciled:
    plan: Plan
    result: ApplyResult = field(default_factory=ApplyResult)


class Reconciler:
    """Plans and writes under one owner id and prefix."""

    def __init__(self, config: SyncConfig, client: EtcdClient, fence: Leadership | None = None) -> None:
        self.config = config
        self.client = client
        self.writer = Writer(client, prefix=config.prefix, owner_id=config.owner_id, policy=config.policy,
                             domain_filter=config.domain_filter, adoption=config.adoption)
        self.writer.fence = fence
        #: ``--once``: how to get the lead (and its fence) before the first write; None: the caller holds it
        self.acquire: Callable[[], Awaitable[Leadership]] | None = None

    async def plan(self, endpoints: Sequence[Endpoint], current: Sequence[Any]) -> Plan:
        """The plan (pure); a large one is computed in a thread, so the event loop keeps the watches and the
        election lease alive meanwhile."""
        config = self.config
        args = (list(endpoints), list(current), config.owner_id, config.policy, config.domain_filter, config.prefix)
        if len(args[0]) + len(args[1]) > THREAD_PLAN_SIZE:
            plan = await asyncio.to_thread(calculate, *args, adoption=config.adoption)
        else:
            plan = calculate(*args, adoption=config.adoption)
        for warning in plan.warnings:
            log.warning("conflict", message=warning)
        for skip in plan.skipped:
            log.warning("record skipped", resource=skip.resource, value=skip.value, reason=skip.reason)
        if plan.conflicts:
            metrics.CONFLICTS.inc(plan.conflicts)
        return plan

    async def reconcile(
        self, endpoints: Sequence[Endpoint], skipped: Sequence[Skipped], out: TextIO | None
    ) -> Reconciled:
        """The full step; raises :class:`Unavailable` (and etcd client errors) when etcd can't be read or written."""
        config = self.config
        state = await retry_async(
            lambda: read_current(self.client, config.prefix),
            f"etcd at {','.join(config.etcd.endpoints)} (read of {config.prefix}/)",
        )
        for bad in state.malformed:
            log.warning("unreadable_record_ignored", key=bad.key, reason=bad.reason)
        plan = await self.plan(endpoints, state.records)
        if out is not None:
            emit(render(plan, [*skipped, *plan.skipped], config.output), out)
        log.info(
            "plan",
            create=plan.count("create"),
            update=plan.count("update"),
            delete=plan.count("delete"),
            skipped=len(skipped) + len(plan.skipped),
            current_records=len(state.records),
            unreadable=len(state.malformed),
            revision=state.revision,
        )
        done = Reconciled(plan)
        if config.dry_run:
            log.info("dry_run", message="dry run: nothing was written")
            return done
        if not plan.has_changes:
            log.info("up_to_date", message="all records are already up to date")
            return done
        if self.acquire is not None and self.writer.fence is None:
            self.writer.fence = await self.acquire()  # the lead, only once there is something to write
        done.result = await self.write(plan, endpoints)
        return done

    async def write(self, plan: Plan, endpoints: Sequence[Endpoint]) -> ApplyResult:
        result = await self.writer.apply(plan.changes, endpoints)
        metrics.WRITES.labels("put").inc(result.puts)
        metrics.WRITES.labels("delete").inc(result.deletes)
        metrics.ADOPTIONS.inc(result.adopted)
        log.info(
            "applied",
            names=result.names,
            adopted=result.adopted,
            puts=result.puts,
            deletes=result.deletes,
            replanned=len(result.replanned),
            failed=len(result.failed),
        )
        return result


def emit(text: str, out: TextIO) -> None:
    """The plan to stdout; a reader that went away (``| head``) does not stop the sync."""
    try:
        print(text, file=out, flush=True)
    except BrokenPipeError:
        log.warning("stdout_closed", message="the plan could not be printed in full; the sync goes on")
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, out.fileno())


def fail(message: str) -> int:
    log.error("sync_failed", error=message)
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_SYNC_ERROR


def usage_error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _log_config(config: SyncConfig) -> None:
    log.info(
        "config",
        owner_id=config.owner_id,
        policy=config.policy,
        prefix=config.prefix,
        etcd=",".join(config.etcd.endpoints),
        dry_run=config.dry_run,
        once=config.once,
        objects_from=("manifests: " + ",".join(config.from_manifests))
        if config.from_manifests
        else (config.kubeconfig or "in-cluster config or ~/.kube/config"),
        sources=",".join(s.name for s in enabled(config.sources)),
        namespace=config.sources.namespace or "(all)",
        domain_filter=",".join(config.sources.domain_filter) or "(all)",
        exclude_domains=",".join(config.sources.exclude_domains) or "(none)",
    )


# -- --once -----------------------------------------------------------------------------------------------------


async def load_snapshot(config: SyncConfig) -> ClusterSnapshot:
    """The objects, from files (``--from-manifests``) or from the API server (one paged list per kind)."""
    names = [s.name for s in enabled(config.sources)]
    if config.from_manifests:
        from syncer.kube.manifests import load

        return load(config.from_manifests, namespace=config.sources.namespace)
    from syncer.kube.api import KubeClient
    from syncer.kube.reflector import list_snapshot

    client = await KubeClient.create(config.kubeconfig)
    try:
        return await list_snapshot(
            client,
            kinds_for_sources(names),
            namespace=config.sources.namespace,
            label_selector=config.sources.label_filter,
            annotation_prefixes=config.sources.annotation_prefixes,
        )
    finally:
        await client.close()


async def run_once(config: SyncConfig, out: TextIO | None = None) -> int:
    """One sync: list, plan, print, write. Returns the exit code."""
    from syncer.kube.api import KubeApiError, KubeConfigError
    from syncer.kube.manifests import ManifestError

    out = out or sys.stdout
    try:
        snapshot = await load_snapshot(config)
    except (ManifestError, KubeConfigError) as exc:
        return usage_error(str(exc))
    except KubeApiError as exc:
        return fail(str(exc))
    _log_config(config)
    try:
        desired = collect(snapshot, config.sources)
    except ValueError as exc:
        return usage_error(str(exc))
    log.info(
        "sources",
        objects=sum(len(getattr(snapshot, KINDS[s.kind].field)) for s in enabled(config.sources)),
        endpoints=len(desired.endpoints),
        skipped=len(desired.skipped),
    )
    client = EtcdClient(config.etcd)
    endpoints = ",".join(config.etcd.endpoints)
    election = None if config.dry_run else Election(client, config.election_prefix, config.owner_id,
                                                    config.election_ttl)
    fence: Leadership | None = None

    async def acquire() -> Leadership:
        """One writer per owner id: wait at most one TTL for the lead."""
        nonlocal fence
        assert election is not None
        if fence is None:
            try:
                fence = await election.campaign(timeout=election.ttl)
            except TimeoutError:
                leader = await election.leader()
                who = f"host {leader.get('host')}, pid {leader.get('pid')}" if leader else "unknown"
                raise NotLeading(f"another dnssync leads for owner id {config.owner_id!r} ({who}); waited "
                                 f"{election.ttl} s for the lead, nothing was written") from None
        return fence

    def reconciler(target_config: SyncConfig) -> Reconciler:
        made = Reconciler(target_config, client, fence)
        if election is not None:
            made.acquire = acquire
        return made

    try:
        done = await reconciler(config).reconcile(desired.endpoints, desired.skipped, out)
        failed = set(done.result.failed)
        await write_statuses_once(config, snapshot)
        for view in config.publish_views:  # each view's in-cluster records, under its own prefix
            inside = collect(snapshot, config.sources, view=True)
            if config.output == "text":
                emit(f"view {view}:", out)
            view_config = dataclasses.replace(config, prefix=view_prefix(view))
            done = await reconciler(view_config).reconcile(
                inside.endpoints, inside.skipped, out if config.output == "text" else None)
            failed |= set(done.result.failed)
        if failed:
            names = sorted(failed)
            return fail(f"{len(names)} name(s) not synced, their records kept changing concurrently: "
                        f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
        return EXIT_OK
    except NotLeading as exc:
        return fail(str(exc))
    except LostLead as exc:
        return fail(f"{exc}; nothing more was written")
    except Unavailable as exc:
        return fail(str(exc))
    except (etcd_errors.ClientError, grpc.aio.AioRpcError) as exc:  # not an outage: refused credentials, ...
        return fail(f"etcd at {endpoints}: {describe(exc)}")
    finally:
        if election is not None:
            await election.resign()
        await client.close()


# -- DNSEndpoint status (ExternalDNS's observedGeneration) -------------------------------------------------------


async def write_status(kube: Any, obj: dict[str, Any], generation: int) -> bool:
    """Set one DNSEndpoint's ``status.observedGeneration`` (a PUT of ``/status``) once its records are committed;
    a failure is logged, never fatal: the next sync tries again."""
    import aiohttp

    from syncer.kube.api import KubeApiError
    from syncer.sources import crd

    meta = obj["metadata"]
    resource = f"dnsendpoint/{meta.get('namespace') or 'default'}/{meta.get('name')}"
    try:
        await kube.update_status(crd.KIND, meta.get("namespace") or "default", meta["name"],
                                 crd.status_body(obj, generation))
    except (KubeApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("status_update_failed", resource=resource, observed_generation=generation, error=describe(exc))
        return False
    log.info("status_updated", resource=resource, observed_generation=generation)
    return True


async def write_statuses_once(config: SyncConfig, snapshot: ClusterSnapshot) -> None:
    """``--once``: the status of every listed DNSEndpoint whose generation is not observed yet (not in a dry run,
    not from manifest files)."""
    from syncer.sources import crd

    if config.dry_run or config.from_manifests or crd.SOURCE not in enabled(config.sources):
        return
    filters = Filters.of(config.sources)
    due = [(obj, g) for obj in snapshot.dnsendpoints if (g := crd.status_due(obj, filters)) is not None]
    if not due:
        return
    from syncer.kube.api import KubeClient, KubeConfigError

    try:
        kube = await KubeClient.create(config.kubeconfig)
    except KubeConfigError as exc:  # it listed a moment ago; a config gone since is no reason to fail the sync
        log.warning("status_update_failed", error=str(exc))
        return
    try:
        for obj, generation in due:
            await write_status(kube, obj, generation)
    finally:
        await kube.close()


# -- continuous -------------------------------------------------------------------------------------------------


def _utc(ts: str | None) -> float | None:
    """Seconds since the ISO time ``ts`` (``...Z``), or None."""
    if not ts:
        return None
    try:
        when = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt.datetime.now(dt.UTC) - when).total_seconds()


class Target:
    """One prefix the syncer keeps in sync - the main SkyDNS prefix, or a view's (``--publish-view``): its desired
    state, its etcd mirror, its writer, and the names waiting to be planned there."""

    def __init__(self, label: str, config: SyncConfig, filters: Filters, sources: Sequence[Any],
                 wake: Callable[[], None], metrics_namespace: str) -> None:
        self.label = label  # "main" or "view <name>"
        self.config = config  # with this target's prefix
        self._wake = wake
        self.desired = DesiredState(sources, filters)
        self.records = CurrentRecords(config.prefix, on_change=self._records_changed)
        self._mirror_client = EtcdClient(config.etcd)
        # A write etcd dropped (its leader died) is given up after WRITE_DEADLINE and retried - guarded, so safe -
        # rather than waiting out a long default deadline.
        self._writer_client = EtcdClient(config.etcd, timeout=WRITE_DEADLINE)
        self.mirror = EtcdMirror(self._mirror_client, self.records, config.prefix, backoff_max=5.0,
                                 metrics=MirrorMetrics.of(metrics_namespace,
                                                          ready_name=f"{metrics_namespace}_etcd_ready"))
        self.reconciler = Reconciler(config, self._writer_client)
        self.reconciler.writer.on_commit = self._committed_at
        self.synced = False  # the first full sync is written (or, dry run, planned)
        self.writes = False  # we lead (or dry run): plan and write; a standby only keeps its state warm
        self.busy = False  # planning or writing
        self.full_requested = True
        self.next_full = 0.0
        self.pending: dict[str, float] = {}  # name -> earliest change behind it
        self._drift: set[str] = set()  # pending because etcd changed under us
        self._own_revisions: set[int] = set()  # revisions of our writes the mirror has not seen yet
        self.etcd_failing_since: float | None = None  # monotonic
        self.write_failures = 0

    # -- inputs -------------------------------------------------------------------------------------------------

    def _committed_at(self, revision: int, written: list[tuple[bytes, bytes | None]]) -> None:
        self.records.write_through(revision, written)
        self._own_revisions.add(revision)
        if len(self._own_revisions) > 10_000:  # the mirror missed them (a reload): forget the ones it passed
            self._own_revisions = {r for r in self._own_revisions if r > self.mirror.revision}

    def _records_changed(self, names: set[str] | None, revision: int) -> None:
        if revision in self._own_revisions:
            self._own_revisions.discard(revision)
            return  # our own write coming back through the watch
        if not self.synced or not self.writes:
            return  # the (next) full sync reads etcd itself
        if names is None:  # the mirror reloaded (compaction): something may have been missed
            self.full_requested = True
            self._wake()
            return
        now = time.monotonic()
        owner = self.config.owner_id
        adoption = self.config.adoption  # an ExternalDNS ownership TXT changed: the name it owns is re-planned
        for changed in names:
            for name in (changed, *adoption.owned_names(changed)) if adoption else (changed,):
                if self.desired.wants(name) or self.records.owned_at(name, owner):
                    self.pending.setdefault(name, now)
                    self._drift.add(name)
        if self._drift:
            self._wake()

    # -- state --------------------------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Names and objects waiting to be planned."""
        return len(self.pending) + self.desired.marked

    def has_work(self) -> bool:
        return self.writes and bool(self.pending or self.desired.marked)

    def full_due(self) -> bool:
        return self.writes and (self.full_requested or
                                bool(self.config.resync_interval and time.monotonic() >= self.next_full))

    def lead(self, leadership: Leadership | None) -> None:
        """Start (with the fence every write carries) or stop writing; a new lead starts with a full sync."""
        writer = self.reconciler.writer
        writer.fence, writer.fenced = leadership, None
        self.writes = leadership is not None or self.config.dry_run
        if self.writes:
            self.full_requested = True

    def idle(self) -> bool:
        return (self.synced and not self.busy and not self.has_work() and not self.full_due()
                and self.mirror.revision >= self.reconciler.writer.last_revision)

    def problems(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        retry = budget()
        endpoints = ",".join(self.config.etcd.endpoints)
        if self.etcd_failing_since is not None and time.monotonic() - self.etcd_failing_since > retry:
            out.append({"etcd": endpoints, "target": self.label, "problem": "writes failing",
                        "seconds": round(time.monotonic() - self.etcd_failing_since, 1)})
        down = None if self.mirror.connected else _utc(self.mirror.down_since)
        if down is not None and down > retry:
            out.append({"etcd": endpoints, "target": self.label, "problem": "unreachable",
                        "since": self.mirror.down_since, "last_error": self.mirror.last_error})
        return out

    async def close(self) -> None:
        for closer in (self._mirror_client.close, self._writer_client.close):
            with contextlib.suppress(Exception):
                await closer()

    # -- steps --------------------------------------------------------------------------------------------------

    async def _take(self) -> tuple[dict[str, float], set[str]]:
        """The names to plan now: recompute the marked objects (a slice at a time, giving the event loop back in
        between, so a start-up of 100,000 objects never starves the watches or the lease), add the names etcd
        changes marked."""
        while self.desired.marked:
            for name, received in self.desired.recompute(limit=RECOMPUTE_SLICE).items():
                if name not in self.pending or received < self.pending[name]:
                    self.pending[name] = received
            if self.desired.marked:
                await asyncio.sleep(0)
        batch, self.pending = self.pending, {}
        drift, self._drift = self._drift & batch.keys(), self._drift - batch.keys()
        return batch, drift

    def _requeue(self, batch: dict[str, float], drift: set[str]) -> None:
        for name, received in batch.items():
            if name not in self.pending or received < self.pending[name]:
                self.pending[name] = received
        self._drift |= drift

    def _write_failed(self, exc: BaseException, batch: dict[str, float], drift: set[str]) -> None:
        """etcd could not be read or written: the names wait (nothing is lost) and are retried after a backoff."""
        self._requeue(batch, drift)
        if self.etcd_failing_since is None:
            self.etcd_failing_since = time.monotonic()
        self.write_failures += 1
        log.warning("write_failed_will_retry", target=self.label, error=describe(exc), pending_names=self.waiting,
                    attempt=self.write_failures)

    def _write_ok(self) -> None:
        if self.etcd_failing_since is not None:
            log.info("etcd_writable_again", target=self.label, pending_names=self.waiting)
        self.etcd_failing_since = None
        self.write_failures = 0

    async def full_sync(self, out: TextIO) -> bool:
        """The shared reconcile step over everything this target wants; False when etcd failed."""
        self.full_requested = False
        batch, drift = await self._take()
        endpoints = self.desired.endpoints()
        try:
            done = await self.reconciler.reconcile(endpoints, self.desired.skipped(),
                                                   out if self.config.dry_run else None)
        except (Unavailable, etcd_errors.ClientError, grpc.aio.AioRpcError, OSError) as exc:
            self.full_requested = True
            self._write_failed(exc, batch, drift)
            return False
        self._write_ok()
        self._committed(done.plan, done.result, batch, drift)
        self.next_full = time.monotonic() + self.config.resync_interval
        if not self.synced:
            self.synced = True
            log.info("first_sync_written", target=self.label, records=len(endpoints))
        gc.freeze()  # the desired state and the records just built are long-lived: out of the GC's scans
        return True

    async def flush(self, out: TextIO) -> bool:
        """Plan and write the waiting names against the mirror's copy of etcd; False when etcd failed."""
        batch, drift = await self._take()
        if not batch:
            return True
        writer = self.reconciler.writer
        if self.mirror.revision < writer.last_revision:
            with contextlib.suppress(TimeoutError):  # plan from what etcd holds, our last write included
                await self.mirror.wait_revision(writer.last_revision, MIRROR_CATCH_UP_SECONDS)
        names = sorted(batch)
        endpoints = self.desired.endpoints_at(names)
        adoption = self.config.adoption  # with the names their ExternalDNS ownership TXTs may be at
        plan = await self.reconciler.plan(endpoints, self.records.at(adoption.names_to_read(names) if adoption
                                                                     else names))
        if not plan.has_changes:
            return True
        if self.config.dry_run:
            emit("\n".join(change_line(c) for c in plan.changes), out)
            return True
        try:
            result = await self.reconciler.write(plan, endpoints)
        except (Unavailable, etcd_errors.ClientError, grpc.aio.AioRpcError, OSError) as exc:
            self._write_failed(exc, batch, drift)
            return False
        self._write_ok()
        self._committed(plan, result, batch, drift)
        return True

    def _committed(self, plan: Plan, result: ApplyResult, batch: dict[str, float], drift: set[str]) -> None:
        """Log and measure each applied change; names that kept conflicting are planned again later."""
        if self.config.dry_run:
            return
        now = time.monotonic()
        repaired: set[str] = set()
        for change in plan.changes:
            if change.name in result.failed:
                continue
            received = batch.get(change.name)
            if received is not None:
                metrics.EVENT_TO_COMMIT.observe(now - received)
            if change.name in drift:
                repaired.add(change.name)
            emit_line = log.info if len(plan.changes) <= LOGGED_CHANGES else log.debug
            emit_line(f"record_{PAST_TENSE[change.action]}", target=self.label, name=change.name, type=change.type,
                      targets=",".join(change.targets), resource=change.resource,
                      event_to_commit_ms=None if received is None else round((now - received) * 1000, 1),
                      drift_repair=change.name in drift, **adoption_fields(change))
        if len(plan.changes) > LOGGED_CHANGES:
            log.info("records_changed", target=self.label, create=plan.count("create"), update=plan.count("update"),
                     delete=plan.count("delete"), message=f"more than {LOGGED_CHANGES}: each at debug level")
        if repaired:
            metrics.DRIFT_REPAIRS.inc(len(repaired))
        if result.failed:
            self._requeue({n: batch.get(n, now) for n in result.failed}, set())


class Controller:
    """``await Controller(config).run()`` runs until :meth:`stop` (or SIGTERM/SIGINT with ``install_signals``)."""

    def __init__(self, config: SyncConfig, out: TextIO | None = None) -> None:
        self.config = config
        self.out = out if out is not None else sys.stdout
        self.sources = enabled(config.sources)
        filters = Filters.of(config.sources)
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self.main = Target("main", config, filters, self.sources, self._wake.set, "dnssync")
        self.targets = [self.main]
        for view in config.publish_views:
            self.targets.append(Target(f"view {view}", dataclasses.replace(config, prefix=view_prefix(view)),
                                       dataclasses.replace(filters, view=True), self.sources, self._wake.set,
                                       "dnssync_view_" + view.replace("-", "_")))
        self.mirror = self.main.mirror
        self.watches: list[ListWatch] = []
        self.http: HealthServer | None = None
        self._kube_client: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._failures = 0
        self._announced = False
        self._election_client = EtcdClient(config.etcd, timeout=WRITE_DEADLINE)
        self.election: Election | None = None if config.dry_run else Election(
            self._election_client, config.election_prefix, config.owner_id, config.election_ttl)
        self.leading = False
        self._lost = asyncio.Event()  # a write found the lead lost (fenced)
        self._step_task: asyncio.Task[None] | None = None
        self._status_due: dict[tuple[str, str], int] = {}  # DNSEndpoint -> the generation its status should show
        self._status_task: asyncio.Task[None] | None = None  # status writes, off the sync loop
        if config.dry_run:  # a dry run never campaigns: it plans as a leader would and writes nothing
            for target in self.targets:
                target.lead(None)

    # -- inputs -------------------------------------------------------------------------------------------------

    def on_object_changes(self, changes: Sequence[Any]) -> None:
        for target in self.targets:
            target.desired.apply(changes)
        self._note_statuses(changes)
        metrics.PENDING_NAMES.set(self._waiting())
        self._wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    def _waiting(self) -> int:
        return sum(t.waiting for t in self.targets)

    # -- probes -------------------------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return all(t.synced for t in self.targets)

    def caches_synced(self) -> bool:
        return all(w.is_ready() for w in self.watches) and all(t.mirror.is_ready() for t in self.targets)

    def ready(self) -> bool:
        """Every kind listed and etcd loaded, and - on the leader - the first full sync written (a standby is
        ready with warm caches: it can take over without a relist)."""
        standby = self.election is not None and not self.leading and self.election.standing_by is not None
        return self.caches_synced() and (self.synced or standby)

    def idle(self) -> bool:
        """Synced, nothing waiting or being written, and each mirror has seen our last write (for tests and tools:
        etcd holds the plan of the cluster as cached)."""
        return self.ready() and all(t.idle() for t in self.targets)

    def health(self) -> tuple[bool, dict[str, Any]]:
        problems: list[dict[str, Any]] = []
        for watch in self.watches:
            limit = getattr(watch, "inactivity_timeout", None)
            if limit and watch.silent_for() > 2 * limit:
                problems.append({"watch": watch.what, "problem": "not heard from",
                                 "silent_seconds": round(watch.silent_for(), 1), "since": watch.down_since,
                                 "last_error": watch.last_error})
        for target in self.targets:
            problems.extend(target.problems())
        details: dict[str, Any] = {
            "ready": self.ready(), "synced": self.synced, "pending_names": self._waiting(),
            "role": "dry run" if self.config.dry_run else ("leader" if self.leading else "standby"),
            "leader": self.election.standing_by if self.election is not None else None,
            "watches": [{"what": w.what, **w.health()} for w in self.watches], "etcd": self.main.mirror.health(),
        }
        if len(self.targets) > 1:
            details["views"] = {t.label: t.mirror.health() for t in self.targets[1:]}
        denied = [w.what for w in self.watches if getattr(w, "forbidden", False)]
        if denied:  # retried with backoff (RBAC may be fixed while we run); fails /healthz once silent too long
            details["access_denied"] = denied
        if problems:
            details["problems"] = problems
        return not problems, details

    # -- the process --------------------------------------------------------------------------------------------

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    async def run(self) -> int:
        """Serve probes, follow the cluster and etcd, keep the records in sync until stopped; the exit code."""
        host, port = self.config.http_listen
        self.http = HealthServer(host, port, self.ready, self.health)
        try:
            await self.http.start()
        except OSError as exc:
            return usage_error(f"--http-listen {host}:{port}: cannot listen: {exc.strerror or exc}")
        try:
            try:
                self.watches = await self._open_watches()
            except ConfigProblem as exc:
                return usage_error(str(exc))
            _log_config(self.config)
            self._tasks = [asyncio.create_task(w.run(), name=f"watch {w.what}") for w in self.watches]
            self._tasks += [asyncio.create_task(t.mirror.run(), name=f"etcd mirror {t.label}") for t in self.targets]
            if self.election is not None:
                self._tasks.append(asyncio.create_task(self._lead(), name="leader election"))
            loop = asyncio.create_task(self._loop(), name="sync loop")
            stopped = asyncio.create_task(self.stopping.wait())
            await asyncio.wait([loop, stopped, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
            crashed = [t for t in [*self._tasks, loop] if t.done() and not t.cancelled() and t.exception()]
            for task in crashed:
                log.error("task_failed", task=task.get_name(), error=repr(task.exception()),
                          exc_info=task.exception())
            self.stop()
            # Finish the transaction in flight (the loop checks `stopping` between steps), then stop the rest.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(loop), STOP_GRACE_SECONDS)
            stopped.cancel()
            status_writes = [self._status_task] if self._status_task is not None else []
            for task in [loop, *self._tasks, *status_writes]:
                task.cancel()
            await asyncio.gather(loop, *self._tasks, *status_writes, stopped, return_exceptions=True)
            if self.election is not None:
                await self.election.resign()  # a standby leads at once instead of waiting out our lease
            log.info("stopped", pending_names=self._waiting())
            return EXIT_SYNC_ERROR if crashed else EXIT_OK
        finally:
            await self._close()

    async def _close(self) -> None:
        for target in self.targets:
            await target.close()
        with contextlib.suppress(Exception):
            await self._election_client.close()
        if self._kube_client is not None:
            with contextlib.suppress(Exception):
                await self._kube_client.close()
        if self.http is not None:
            await self.http.close()

    async def _open_watches(self) -> list[ListWatch]:
        config = self.config
        prefixes = config.sources.annotation_prefixes
        if config.from_manifests:
            from syncer.kube.folder import ManifestWatch
            from syncer.kube.manifests import ManifestError, manifest_files

            for path in config.from_manifests:  # a typo is a usage error, not a source to wait for
                try:
                    manifest_files(path)
                except ManifestError as exc:
                    raise ConfigProblem(str(exc)) from None
            return [ManifestWatch(config.from_manifests, namespace=config.sources.namespace,
                                  on_changes=self.on_object_changes, annotation_prefixes=prefixes)]
        from syncer.kube.api import KubeClient, KubeConfigError
        from syncer.kube.reflector import Reflector

        try:
            self._kube_client = await KubeClient.create(config.kubeconfig)
        except KubeConfigError as exc:
            raise ConfigProblem(str(exc)) from None
        watches: list[ListWatch] = []
        for kind in kinds_for_sources([s.name for s in self.sources]):
            spec = KINDS[kind]
            watches.append(Reflector(
                self._kube_client, kind, namespace=config.sources.namespace if spec.namespaced else None,
                label_selector=config.sources.label_filter if spec.selectable else "",
                field_selector=POD_FIELD_SELECTOR if kind == "Pod" else "", on_changes=self.on_object_changes,
                annotation_prefixes=prefixes))
        return watches

    # -- the loop -----------------------------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _wait_ready(self) -> bool:
        waits = [asyncio.create_task(w.ready.wait()) for w in [*self.watches, *(t.mirror for t in self.targets)]]
        stop = asyncio.create_task(self.stopping.wait())
        try:
            while not all(t.done() for t in waits):
                await asyncio.wait([*[t for t in waits if not t.done()], stop], return_when=asyncio.FIRST_COMPLETED)
                if self.stopping.is_set():
                    return False
            return True
        finally:
            for task in [*waits, stop]:
                task.cancel()

    async def _loop(self) -> None:
        if not await self._wait_ready():
            return
        log.info("caches_synced", objects={w.what: len(getattr(w, "cache", ()) or ()) for w in self.watches},
                 etcd_revision=self.main.mirror.revision)
        while not self.stopping.is_set():
            due = [t for t in self.targets if t.full_due()]
            if due:
                await self._step(due, Target.full_sync)
                if self.synced and all(t.synced for t in due):
                    metrics.LAST_FULL_SYNC.set(time.time())
                continue
            if any(t.has_work() for t in self.targets):
                await self._sleep(COALESCE_SECONDS)
                if self.stopping.is_set():
                    break
                await self._step([t for t in self.targets if t.has_work()], Target.flush)
                continue
            timeout = None
            writing = [t for t in self.targets if t.writes]
            if self.config.resync_interval and writing:
                timeout = max(0.0, min(t.next_full for t in writing) - time.monotonic())
            self._wake.clear()
            if any(t.has_work() for t in self.targets) or self.stopping.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _step(self, targets: list[Target], step: Callable[[Target, TextIO], Awaitable[bool]]) -> None:
        """One flush or full sync of each target, as a task the lead's loss can cancel."""
        self._step_task = asyncio.create_task(self._run_step(targets, step))
        try:
            await self._step_task
        except asyncio.CancelledError:
            if self.stopping.is_set() or self.leading:
                raise
            log.info("step_cancelled", reason="lost the lead")  # what it had not written, the next leader will
        finally:
            self._step_task = None

    async def _run_step(self, targets: list[Target], step: Callable[[Target, TextIO], Awaitable[bool]]) -> None:
        """etcd failing backs off (the names wait); a lost lead stops writing at once; a bug must not stop the
        syncer nor lose changes: it is logged, and everything is reconciled again after the backoff."""
        ok = True
        statuses = dict(self._status_due) if self.main in targets else {}  # their changes are in this step
        for target in targets:
            target.busy = True
            try:
                ok = await step(target, self.out) and ok
            except LostLead as exc:
                metrics.FENCED_TXNS.inc()
                log.warning("write_fenced", target=target.label, detail=str(exc))
                self._lost.set()
                return
            except Exception as exc:
                log.error("sync_step_failed", target=target.label, step=step.__name__, error=repr(exc),
                          exc_info=exc)
                target.desired.mark_all(time.monotonic())
                target.full_requested = True
                ok = False
            finally:
                target.busy = False
        metrics.PENDING_NAMES.set(self._waiting())
        if ok:
            self._failures = 0
            if statuses and (self._status_task is None or self._status_task.done()):
                self._status_task = asyncio.create_task(self._write_statuses(statuses), name="status writes")
            if self.ready() and self.synced and not self._announced:
                self._announced = True
                log.info("ready", message="every watched kind is listed and the first full sync is written")
            return
        self._failures += 1
        ceiling = min(WRITE_BACKOFF[1], WRITE_BACKOFF[0] * 2 ** (self._failures - 1))
        await self._sleep(random.uniform(ceiling / 2, ceiling))

    def _note_statuses(self, changes: Sequence[Any]) -> None:
        """DNSEndpoints whose ``status.observedGeneration`` must be written after the next successful step."""
        from syncer.sources import crd

        if self.config.dry_run or self.config.from_manifests or crd.SOURCE not in self.sources:
            return
        for change in changes:
            if change.kind == crd.KIND:
                generation = None if change.new is None else crd.status_due(change.new, self.main.desired.filters)
                if generation is None:
                    self._status_due.pop(change.key, None)
                else:
                    self._status_due[change.key] = generation

    async def _write_statuses(self, due: dict[tuple[str, str], int]) -> None:
        """After a step that committed their records: each DNSEndpoint's status, unless it changed meanwhile (in a
        task of its own, so a slow API server never holds up DNS; one at a time, the rest wait for the next step).
        Failed writes are tried again with backoff (1 s doubling to 30 s) while we lead."""
        from syncer.sources import crd

        objects = self.main.desired.objects.get(crd.KIND, {})
        delay = 1.0
        while due and self.leading and not self.stopping.is_set():
            failed: dict[tuple[str, str], int] = {}
            for key, generation in due.items():
                obj = objects.get(key)
                if self._status_due.get(key) != generation or obj is None or self._kube_client is None:
                    continue  # changed meanwhile (a later step writes it), or gone
                if not await write_status(self._kube_client, obj, generation):
                    failed[key] = generation
                elif self._status_due.get(key) == generation:
                    del self._status_due[key]
            due = failed
            if due:
                await self._sleep(delay)
                delay = min(30.0, delay * 2)

    # -- the lead -----------------------------------------------------------------------------------------------

    async def _lead(self) -> None:
        """Campaign; lead until the lease can't be kept or a write is fenced; step down; campaign again."""
        assert self.election is not None
        failures = 0
        while not self.stopping.is_set():
            try:
                leadership = await self.election.campaign()
            except Exception as exc:  # etcd away: a standby keeps its caches warm and tries again
                failures += 1
                log.debug("campaign_failed", error=describe(exc))
                await self._sleep(min(5.0, 0.2 * 2 ** failures))
                continue
            failures = 0
            self._gain(leadership)
            keep = asyncio.create_task(self.election.keep())
            lost = asyncio.create_task(self._lost.wait())
            try:
                await asyncio.wait([keep, lost], return_when=asyncio.FIRST_COMPLETED)
            finally:
                keep.cancel()
                lost.cancel()
            if keep.done() and not keep.cancelled() and isinstance(keep.exception(), LostLead):
                reason = getattr(keep.exception(), "reason", "lease expired")
            else:
                reason = "fenced"
            await self._drop(reason)

    def _gain(self, leadership: Leadership) -> None:
        self.leading = True
        self._lost.clear()
        for target in self.targets:
            target.lead(leadership)
        metrics.LEADER.set(1)
        metrics.LEADER_CHANGES.inc()
        log.info("leading", owner_id=self.config.owner_id, key=leadership.key.decode(),
                 revision=leadership.create_revision)
        self._wake.set()

    async def _drop(self, reason: str) -> None:
        self.leading = False
        for target in self.targets:
            target.lead(None)
        if self._step_task is not None:
            self._step_task.cancel()  # nothing more is written; the fence refuses whatever was in flight
        metrics.LEADER.set(0)
        metrics.LEADER_CHANGES.inc()
        log.warning("lost_the_lead", reason=reason, owner_id=self.config.owner_id)
        assert self.election is not None
        await self.election.resign()  # our lease may still live: let a successor lead now
        self._wake.set()
