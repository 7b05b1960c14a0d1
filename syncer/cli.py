"""``dnssync``: the command line, and one sync (``--once``): source -> endpoints -> plan -> etcd writer.

Every flag also comes from the environment as ``DNSSYNC_<FLAG>`` (``--owner-id`` -> ``DNSSYNC_OWNER_ID``,
``--dry-run`` -> ``DNSSYNC_DRY_RUN=true``; repeatable flags comma-separated, e.g.
``DNSSYNC_DOMAIN_FILTER=example.org,example.net``); a flag on the command line wins over its variable.
ExternalDNS spellings are accepted: ``--txt-owner-id`` (= ``--owner-id``) and ``--coredns-prefix``
(= ``--prefix``). etcd comes from ``--etcd-endpoints``, else ``ETCD_URLS``, with TLS and auth from ``ETCD_*``
exactly as ExternalDNS reads them (:mod:`skydns.etcd`).

Exit codes: 0 success; 1 a sync error (etcd or the Kubernetes API unreachable after the retries, or names whose
records kept changing under us); 2 bad usage or configuration, with a one-line message naming the flag, the
variable or the file.

``--dry-run`` reads etcd - the plan is computed against the real current records - and writes nothing; when
etcd is unreachable a dry run fails like a real one (exit 1), because a plan against an imagined empty state
would promise creates that the real run would not do. The plan goes to stdout, logs go to stderr.

Outages are retried with backoff for 30 s (etcd and the API server alike), then exit 1; the environment
variable ``DNSSYNC_RETRY_SECONDS`` changes that budget (for operations and tests; it is not a flag).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import structlog
from aetcd import exceptions as etcd_errors

from skydns import logs
from skydns.etcd import EtcdClient, EtcdConfigError, EtcdSettings
from skydns.names import normalize_prefix
from skydns.settings import parse_bool
from syncer.config import ANNOTATION_PREFIXES, KNOWN_SOURCES, SourceConfig
from syncer.domains import DomainFilter
from syncer.model import ClusterSnapshot, SourceResult
from syncer.plan import POLICIES

PROG = "dnssync"
ENV_PREFIX = "DNSSYNC_"
EXIT_OK, EXIT_SYNC_ERROR, EXIT_USAGE = 0, 1, 2
CONTINUOUS_NOT_BUILT = ("dnssync: continuous mode is not built yet; run with --once to sync one time and exit "
                        "(for example from a CronJob)")
log = structlog.get_logger()


class UsageError(ValueError):
    """Bad usage or configuration; the message is one line naming the flag, variable or file (exit 2)."""


class ContinuousModeError(UsageError):
    """Without --once: continuous mode is not built yet."""


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]  # the first is the canonical one (and names the variable)
    kind: str  # "bool" | "str" | "list"
    help: str
    choices: tuple[str, ...] = ()
    default: Any = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.names[0].lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


FLAGS = (
    Flag(("--once",), "bool", "sync one time and exit (continuous mode is not built yet)", default=False),
    Flag(("--dry-run",), "bool", "read etcd and print the plan, write nothing", default=False),
    Flag(("--output",), "str", "plan format on stdout", choices=("text", "json"), default="text"),
    Flag(("--kubeconfig",), "str", "kubeconfig file (default: in-cluster config, then ~/.kube/config)",
         metavar="PATH"),
    Flag(("--from-manifests",), "list", "read objects from files, folders (recursively) or - (stdin) instead of "
         "a cluster; repeatable", metavar="PATH", default=()),
    Flag(("--owner-id", "--txt-owner-id"), "str", "owner id written into every record; only records with this "
         "owner are ever changed (required)", metavar="ID"),
    Flag(("--policy",), "str", "sync (create, update, delete), upsert-only (no deletes) or create-only "
         "(required, as in ExternalDNS v0.22)", choices=POLICIES),
    Flag(("--prefix", "--coredns-prefix"), "str", "etcd key prefix", default="/skydns/", metavar="PREFIX"),
    Flag(("--etcd-endpoints",), "str", "comma-separated etcd URLs (default: $ETCD_URLS, else "
         "http://localhost:2379)", metavar="URLS"),
    Flag(("--source",), "list", "service and/or ingress (default: both); repeatable",
         choices=KNOWN_SOURCES, default=KNOWN_SOURCES),
    Flag(("--namespace",), "str", "only objects in this namespace (default: all)", metavar="NS"),
    Flag(("--label-filter",), "str", "label selector the objects must match", default="", metavar="SELECTOR"),
    Flag(("--annotation-filter",), "str", "label-selector syntax applied to the objects' annotations",
         default="", metavar="SELECTOR"),
    Flag(("--ingress-class",), "list", "only ingresses of these classes; repeatable", default=(), metavar="NAME"),
    Flag(("--domain-filter",), "list", "only names in these domains; repeatable", default=(), metavar="DOMAIN"),
    Flag(("--exclude-domains",), "list", "never names in these domains; repeatable", default=(),
         metavar="DOMAIN"),
    Flag(("--annotation-prefix",), "str", "read annotations only under this prefix (default: both "
         "external-dns.alpha.kubernetes.io/ and external-dns.kubernetes.io/); must end with /", metavar="PREFIX"),
    Flag(("--publish-internal-services",), "bool", "publish ClusterIP services' cluster IPs", default=False),
    Flag(("--fqdn-template",), "str", "ExternalDNS fqdn template(s), comma-separated, for objects without a "
         "hostname, e.g. '{{.Name}}.{{.Namespace}}.example.org'", metavar="TEMPLATE"),
    Flag(("--log-format",), "str", "log format (stderr)", choices=("text", "json"), default="text"),
    Flag(("--log-level",), "str", "log level", choices=logs.LEVELS, default="info"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=PROG, description="Kubernetes Services and Ingresses -> SkyDNS records in etcd "
                            "(ExternalDNS-compatible). Every flag also reads DNSSYNC_<FLAG> from the environment.")
    for flag in FLAGS:
        help_text = f"{flag.help} [env {flag.env}]"
        if flag.kind == "bool":
            parser.add_argument(*flag.names, dest=flag.dest, action="store_true", default=None, help=help_text)
        elif flag.kind == "list":
            parser.add_argument(*flag.names, dest=flag.dest, action="append", default=None, help=help_text,
                                metavar=flag.metavar or flag.dest.upper())
        else:
            parser.add_argument(*flag.names, dest=flag.dest, default=None, help=help_text,
                                choices=list(flag.choices) or None, metavar=flag.metavar)
    return parser


def _from_env(flag: Flag, raw: str) -> Any:
    if flag.kind == "bool":
        try:
            return parse_bool(raw)
        except ValueError as exc:
            raise UsageError(f"{flag.env}: {exc}") from None
    if flag.kind == "list":
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw.strip()


def _split_list(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip())


@dataclass(frozen=True)
class SyncConfig:
    once: bool
    dry_run: bool
    output: str
    kubeconfig: str | None
    from_manifests: tuple[str, ...]
    owner_id: str
    policy: str
    prefix: str
    etcd: EtcdSettings
    sources: SourceConfig
    log_format: str
    log_level: str

    @property
    def domain_filter(self) -> DomainFilter:
        return DomainFilter(self.sources.domain_filter, self.sources.exclude_domains)


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> SyncConfig:
    """Flags + environment -> a checked configuration; :class:`UsageError` (one line) when something is wrong."""
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for flag in FLAGS:
        value = getattr(args, flag.dest)
        if value is None and env.get(flag.env) is not None:
            value = _from_env(flag, env[flag.env])
            if flag.kind == "str" and flag.choices and value not in flag.choices:
                raise UsageError(f"{flag.env}: invalid choice {value!r} (choose from {', '.join(flag.choices)})")
            if flag.kind == "list" and flag.choices:
                bad = [v for v in value if v not in flag.choices]
                if bad:
                    raise UsageError(f"{flag.env}: invalid choice {bad[0]!r} (choose from {', '.join(flag.choices)})")
        values[flag.dest] = flag.default if value is None else value

    if not values["once"]:
        raise ContinuousModeError(CONTINUOUS_NOT_BUILT)
    if not values["owner_id"]:
        raise UsageError("--owner-id (or --txt-owner-id, or DNSSYNC_OWNER_ID) is required: only records carrying "
                         "this owner are ever changed")
    if not values["policy"]:
        raise UsageError("--policy is required (one of: sync, upsert-only, create-only), as in ExternalDNS v0.22 "
                         "(or DNSSYNC_POLICY)")
    if values["kubeconfig"] and values["from_manifests"]:
        raise UsageError("--kubeconfig and --from-manifests exclude each other: read a cluster or files, not both")
    try:
        prefix = normalize_prefix(values["prefix"])
    except ValueError as exc:
        raise UsageError(f"--prefix: {exc}") from None
    annotation_prefix = values["annotation_prefix"]
    if annotation_prefix is not None and not annotation_prefix.endswith("/"):
        raise UsageError(f"--annotation-prefix: {annotation_prefix!r} must end with '/' "
                         "(e.g. external-dns.alpha.kubernetes.io/)")
    _check_selector("--label-filter", values["label_filter"])
    _check_selector("--annotation-filter", values["annotation_filter"])
    templates = tuple(t for t in [values["fqdn_template"] or ""] if t.strip())
    _check_templates(templates)
    try:
        etcd = EtcdSettings.from_env(values["etcd_endpoints"], env)
    except EtcdConfigError as exc:
        raise UsageError(str(exc)) from None
    sources = SourceConfig(
        sources=tuple(dict.fromkeys(_split_list(values["source"]))),
        namespace=values["namespace"] or None,
        label_filter=values["label_filter"],
        annotation_filter=values["annotation_filter"],
        ingress_classes=_split_list(values["ingress_class"]),
        domain_filter=_split_list(values["domain_filter"]),
        exclude_domains=_split_list(values["exclude_domains"]),
        annotation_prefixes=(annotation_prefix,) if annotation_prefix else ANNOTATION_PREFIXES,
        publish_internal_services=bool(values["publish_internal_services"]),
        fqdn_templates=templates,
    )
    bad_sources = [s for s in sources.sources if s not in KNOWN_SOURCES]
    if bad_sources:
        raise UsageError(f"--source: invalid choice {bad_sources[0]!r} (choose from {', '.join(KNOWN_SOURCES)})")
    return SyncConfig(once=True, dry_run=bool(values["dry_run"]), output=values["output"],
                      kubeconfig=values["kubeconfig"], from_manifests=tuple(values["from_manifests"]),
                      owner_id=values["owner_id"], policy=values["policy"], prefix=prefix, etcd=etcd,
                      sources=sources, log_format=values["log_format"], log_level=values["log_level"])


def _check_selector(flag: str, text: str) -> None:
    if not text:
        return
    from syncer.selector import parse_selector

    try:
        parse_selector(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _check_templates(templates: tuple[str, ...]) -> None:
    if not templates:
        return
    from syncer.sources.template import parse_templates

    try:
        parse_templates(list(templates))
    except ValueError as exc:
        raise UsageError(f"--fqdn-template: {exc}") from None


def load_snapshot(config: SyncConfig) -> ClusterSnapshot:
    """The objects, from files (``--from-manifests``) or from the API server."""
    if config.from_manifests:
        from syncer.kube.manifests import load

        return load(config.from_manifests, namespace=config.sources.namespace)
    from syncer.kube.api import KubeApi, kinds_for_sources

    api = KubeApi(config.kubeconfig, config.sources.namespace, config.sources.label_filter)
    try:
        return api.list_snapshot(kinds_for_sources(config.sources.sources))
    finally:
        api.close()


async def sync_once(config: SyncConfig, desired: SourceResult, out: Any = None) -> int:
    """Read etcd, plan, print the plan, write (unless dry-run). Returns the exit code."""
    from syncer.etcd.state import read_current
    from syncer.etcd.writer import Writer
    from syncer.output import render
    from syncer.plan import calculate
    from syncer.retrying import Unavailable, describe, retry_async

    out = out or sys.stdout
    client = EtcdClient(config.etcd)
    endpoints = ",".join(config.etcd.endpoints)
    try:
        state = await retry_async(lambda: read_current(client, config.prefix),
                                  f"etcd at {endpoints} (read of {config.prefix}/)")
        for bad in state.malformed:
            log.warning("unreadable_record_ignored", key=bad.key, reason=bad.reason)
        plan = calculate(desired.endpoints, state.records, config.owner_id, config.policy, config.domain_filter,
                         config.prefix)
        for warning in plan.warnings:
            log.warning("conflict", message=warning)
        for skip in plan.skipped:
            log.warning("record skipped", resource=skip.resource, value=skip.value, reason=skip.reason)
        _emit(render(plan, [*desired.skipped, *plan.skipped], config.output), out)
        log.info("plan", create=plan.count("create"), update=plan.count("update"), delete=plan.count("delete"),
                 skipped=len(desired.skipped) + len(plan.skipped), current_records=len(state.records),
                 unreadable=len(state.malformed), revision=state.revision)
        if config.dry_run:
            log.info("dry_run", message="dry run: nothing was written")
            return EXIT_OK
        if not plan.has_changes:
            log.info("up_to_date", message="all records are already up to date")
            return EXIT_OK
        writer = Writer(client, prefix=config.prefix, owner_id=config.owner_id, policy=config.policy,
                        domain_filter=config.domain_filter)
        result = await writer.apply(plan.changes, desired.endpoints)
        log.info("applied", names=result.names, puts=result.puts, deletes=result.deletes,
                 replanned=len(result.replanned), failed=len(result.failed))
        if result.failed:
            names = sorted(result.failed)
            return _fail(f"{len(names)} name(s) not synced, their records kept changing concurrently: "
                         f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
        return EXIT_OK
    except Unavailable as exc:
        return _fail(str(exc))
    except (etcd_errors.ClientError, grpc.aio.AioRpcError) as exc:  # not an outage: refused credentials, ...
        return _fail(f"etcd at {endpoints}: {describe(exc)}")
    finally:
        await client.close()


def _emit(text: str, out: Any) -> None:
    """The plan to stdout; a reader that went away (``| head``) does not stop the sync."""
    try:
        print(text, file=out, flush=True)
    except BrokenPipeError:
        log.warning("stdout_closed", message="the plan could not be printed in full; the sync goes on")
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, out.fileno())


def _fail(message: str) -> int:
    log.error("sync_failed", error=message)
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_SYNC_ERROR


def run(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The whole command; returns the exit code."""
    try:
        config = parse_config(argv, env)
    except ContinuousModeError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(config.log_format, config.log_level)
    from syncer.kube.api import KubeApiError, KubeConfigError
    from syncer.kube.manifests import ManifestError
    from syncer.sources import collect

    try:
        snapshot = load_snapshot(config)
    except (ManifestError, KubeConfigError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KubeApiError as exc:
        return _fail(str(exc))
    log.info("config", owner_id=config.owner_id, policy=config.policy, prefix=config.prefix,
             etcd=",".join(config.etcd.endpoints), dry_run=config.dry_run,
             objects_from=("manifests: " + ",".join(config.from_manifests)) if config.from_manifests
             else (config.kubeconfig or "in-cluster config or ~/.kube/config"),
             sources=",".join(config.sources.sources), namespace=config.sources.namespace or "(all)",
             domain_filter=",".join(config.sources.domain_filter) or "(all)",
             exclude_domains=",".join(config.sources.exclude_domains) or "(none)")
    try:
        desired = collect(snapshot, config.sources)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log.info("sources", objects=sum(len(getattr(snapshot, f)) for f in ("services", "ingresses")),
             endpoints=len(desired.endpoints), skipped=len(desired.skipped))
    return asyncio.run(sync_once(config, desired))


def main() -> NoReturn:
    try:
        code = run()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
