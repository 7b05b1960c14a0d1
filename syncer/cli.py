"""``dnssync``: the command line. It only parses flags and environment into a checked
:class:`~syncer.config.SyncConfig` and hands it to :mod:`syncer.controller` (``--once``: one sync and exit;
otherwise the continuous loop).

Every flag also comes from the environment as ``DNSSYNC_<FLAG>`` (``--owner-id`` -> ``DNSSYNC_OWNER_ID``,
``--dry-run`` -> ``DNSSYNC_DRY_RUN=true``; repeatable flags comma-separated, e.g.
``DNSSYNC_DOMAIN_FILTER=example.org,example.net``); a flag on the command line wins over its variable.
ExternalDNS spellings are accepted: ``--txt-owner-id`` (= ``--owner-id``) and ``--coredns-prefix``
(= ``--prefix``), and ``--txt-prefix``/``--txt-suffix``/``--txt-wildcard-replacement`` (= ``--adopt-txt-...``: they
say where ExternalDNS's TXT registry put its ownership records, so ExternalDNS's own values work unchanged; dnssync
writes no TXT registry). etcd comes from ``--etcd-endpoints``, else ``ETCD_URLS``, with TLS and auth from ``ETCD_*``
exactly as ExternalDNS reads them (:mod:`skydns.etcd`).

Exit codes: 0 success (continuous mode: stopped by SIGTERM/SIGINT); 1 a sync error (``--once``: etcd or the
Kubernetes API unreachable after the retries, or names whose records kept changing under us); 2 bad usage or
configuration, with a one-line message naming the flag, the variable or the file.

``--dry-run`` reads etcd - the plan is computed against the real current records - and writes nothing; when
etcd is unreachable a ``--once`` dry run fails like a real one (exit 1), because a plan against an imagined empty
state would promise creates that the real run would not do. The plan goes to stdout, logs go to stderr.

Outages are retried with backoff for 30 s (etcd and the API server alike) - then ``--once`` exits 1, and the
continuous loop keeps retrying (``/healthz`` says so); the environment variable ``DNSSYNC_RETRY_SECONDS`` changes
that budget (for operations and tests; it is not a flag).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from skydns import logs
from skydns.etcd import EtcdConfigError, EtcdSettings
from skydns.names import normalize_prefix
from skydns.settings import parse_bool, parse_duration, parse_hostport
from skydns.views import check_view_name
from syncer.adoption import AdoptionRules, AffixMapper
from syncer.config import ANNOTATION_PREFIXES, SourceConfig, SyncConfig
from syncer.plan import POLICIES
from syncer.sources import DEFAULT_SOURCES, KNOWN_SOURCES

PROG = "dnssync"
ENV_PREFIX = "DNSSYNC_"
EXIT_OK, EXIT_SYNC_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad usage or configuration; the message is one line naming the flag, variable or file (exit 2)."""


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
    Flag(("--once",), "bool", "sync one time and exit (default: run continuously, watching the objects)",
         default=False),
    Flag(("--dry-run",), "bool", "read etcd and print the plan (continuously: each plan as it is computed), write "
         "nothing", default=False),
    Flag(("--output",), "str", "plan format on stdout", choices=("text", "json"), default="text"),
    Flag(("--kubeconfig",), "str", "kubeconfig file (default: in-cluster config, then ~/.kube/config)",
         metavar="PATH"),
    Flag(("--from-manifests",), "list", "read objects from files, folders (recursively) or - (stdin) instead of "
         "a cluster; without --once the files and folders are watched; repeatable", metavar="PATH", default=()),
    Flag(("--owner-id", "--txt-owner-id"), "str", "owner id written into every record; only records with this "
         "owner are ever changed (required)", metavar="ID"),
    Flag(("--policy",), "str", "sync (create, update, delete), upsert-only (no deletes) or create-only "
         "(required, as in ExternalDNS v0.22)", choices=POLICIES),
    Flag(("--prefix", "--coredns-prefix"), "str", "etcd key prefix", default="/skydns/", metavar="PREFIX"),
    Flag(("--etcd-endpoints",), "str", "comma-separated etcd URLs (default: $ETCD_URLS, else "
         "http://localhost:2379)", metavar="URLS"),
    Flag(("--source",), "list", f"{', '.join(KNOWN_SOURCES)} (default: {', '.join(DEFAULT_SOURCES)}); repeatable",
         choices=KNOWN_SOURCES, default=DEFAULT_SOURCES),
    Flag(("--namespace",), "str", "only objects in this namespace (default: all)", metavar="NS"),
    Flag(("--label-filter",), "str", "label selector the objects must match", default="", metavar="SELECTOR"),
    Flag(("--annotation-filter",), "str", "label-selector syntax applied to the objects' annotations",
         default="", metavar="SELECTOR"),
    Flag(("--ingress-class",), "list", "only ingresses of these classes; repeatable", default=(), metavar="NAME"),
    Flag(("--gateway-namespace",), "str", "gateway-* sources: only Gateways in this namespace (default: all; "
         "--namespace does not apply to Gateways)", metavar="NS"),
    Flag(("--gateway-label-filter",), "str", "gateway-* sources: label selector the Gateways must match",
         default="", metavar="SELECTOR"),
    Flag(("--gateway-name",), "str", "gateway-* sources: only Gateways of this name", metavar="NAME"),
    Flag(("--domain-filter",), "list", "only names in these domains; repeatable", default=(), metavar="DOMAIN"),
    Flag(("--exclude-domains",), "list", "never names in these domains; repeatable", default=(),
         metavar="DOMAIN"),
    Flag(("--annotation-prefix",), "str", "read annotations only under this prefix (default: both "
         "external-dns.alpha.kubernetes.io/ and external-dns.kubernetes.io/); must end with /", metavar="PREFIX"),
    Flag(("--publish-internal-services",), "bool", "publish ClusterIP services' cluster IPs", default=False),
    Flag(("--fqdn-template",), "str", "ExternalDNS fqdn template(s), comma-separated, for objects without a "
         "hostname, e.g. '{{.Name}}.{{.Namespace}}.example.org'", metavar="TEMPLATE"),
    Flag(("--http-listen",), "str", "continuous mode: /healthz, /readyz and /metrics on host:port or [v6]:port",
         default="127.0.0.1:8081", metavar="ADDR"),
    Flag(("--publish-view",), "list", "also write each Service host name's in-cluster address (ClusterIP; headless: "
         "ready pod IPs) into this split-horizon view, for dnssync-resolver --view; repeatable", default=(),
         metavar="NAME"),
    Flag(("--election-prefix",), "str", "etcd prefix of the leader election (outside --prefix); replicas with the "
         "same --owner-id elect one writer under <prefix><owner id>/", default="/dnssync/election/",
         metavar="PREFIX"),
    Flag(("--election-ttl",), "str", "the leader's etcd lease TTL (refreshed every TTL/3): how long a vanished "
         "leader blocks its successor", default="10s", metavar="DURATION"),
    Flag(("--adopt-txt-owner",), "list", "adopt ExternalDNS's records: names whose ExternalDNS TXT-registry record "
         "says owner ID become ours (records and ownership TXTs replaced in one transaction); repeatable",
         default=(), metavar="ID"),
    Flag(("--adopt-txt-prefix", "--txt-prefix"), "str", "the --txt-prefix ExternalDNS ran with (for "
         "--adopt-txt-owner)", default="", metavar="PREFIX"),
    Flag(("--adopt-txt-suffix", "--txt-suffix"), "str", "the --txt-suffix ExternalDNS ran with (for "
         "--adopt-txt-owner)", default="", metavar="SUFFIX"),
    Flag(("--adopt-txt-wildcard-replacement", "--txt-wildcard-replacement"), "str", "the "
         "--txt-wildcard-replacement ExternalDNS ran with (for --adopt-txt-owner)", default="", metavar="TEXT"),
    Flag(("--resync-interval",), "str", "continuous mode: a full reconcile this often (e.g. 10m; 0 = off)",
         default="10m", metavar="DURATION"),
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
    _check_selector("--gateway-label-filter", values["gateway_label_filter"])
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
        gateway_namespace=values["gateway_namespace"] or None,
        gateway_label_filter=values["gateway_label_filter"],
        gateway_name=values["gateway_name"] or None,
    )
    bad_sources = [s for s in sources.sources if s not in KNOWN_SOURCES]
    if bad_sources:
        raise UsageError(f"--source: invalid choice {bad_sources[0]!r} (choose from {', '.join(KNOWN_SOURCES)})")
    try:
        http_listen = parse_hostport(values["http_listen"], "--http-listen")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        resync = parse_duration(values["resync_interval"])
    except ValueError as exc:
        raise UsageError(f"--resync-interval: {exc}") from None
    views = _split_list(values["publish_view"])
    for view in views:
        try:
            check_view_name(view)
        except ValueError as exc:
            raise UsageError(f"--publish-view: {exc}") from None
    try:
        election_ttl = parse_duration(values["election_ttl"])
    except ValueError as exc:
        raise UsageError(f"--election-ttl: {exc}") from None
    if not 2 <= election_ttl <= 3600:
        raise UsageError(f"--election-ttl: {values['election_ttl']!r} is outside 2s..1h")
    election_prefix = "/" + values["election_prefix"].strip("/") + "/"
    records = prefix + "/"
    if election_prefix == "//" or election_prefix.startswith(records) or records.startswith(election_prefix):
        raise UsageError(f"--election-prefix {values['election_prefix']!r} must be a prefix of its own, outside "
                         f"--prefix {prefix}")
    once = bool(values["once"])
    if not once and "-" in values["from_manifests"]:
        raise UsageError("--from-manifests -: stdin can't be watched; use --once, or name files or folders")
    return SyncConfig(once=once, dry_run=bool(values["dry_run"]), output=values["output"],
                      kubeconfig=values["kubeconfig"], from_manifests=tuple(values["from_manifests"]),
                      owner_id=values["owner_id"], policy=values["policy"], prefix=prefix, etcd=etcd,
                      sources=sources, log_format=values["log_format"], log_level=values["log_level"],
                      http_listen=http_listen, resync_interval=resync, publish_views=tuple(dict.fromkeys(views)),
                      election_prefix=election_prefix, election_ttl=election_ttl,
                      adoption=_adoption(values))


def _adoption(values: dict[str, Any]) -> AdoptionRules | None:
    """``--adopt-txt-owner`` and where ExternalDNS's ownership TXTs are; affixes without an owner are a mistake."""
    owners = tuple(dict.fromkeys(_split_list(values["adopt_txt_owner"])))
    affixes = [f for f in ("adopt_txt_prefix", "adopt_txt_suffix", "adopt_txt_wildcard_replacement") if values[f]]
    if not owners:
        if affixes:
            raise UsageError(f"--{affixes[0].replace('_', '-')} only says where ExternalDNS's ownership TXTs are; "
                             "it needs --adopt-txt-owner ID")
        return None
    if values["policy"] == "create-only":
        raise UsageError("--adopt-txt-owner replaces ExternalDNS's records, which --policy create-only never does "
                         "(use sync or upsert-only)")
    try:
        mapper = AffixMapper(values["adopt_txt_prefix"], values["adopt_txt_suffix"],
                             values["adopt_txt_wildcard_replacement"])
    except ValueError:
        raise UsageError("--adopt-txt-prefix and --adopt-txt-suffix exclude each other (as ExternalDNS's "
                         "--txt-prefix and --txt-suffix)") from None
    return AdoptionRules(owners, mapper)


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


def run(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The whole command; returns the exit code."""
    try:
        config = parse_config(argv, env)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(config.log_format, config.log_level)
    from syncer import controller

    if config.once:
        return asyncio.run(controller.run_once(config))
    return asyncio.run(_run_continuous(config))


async def _run_continuous(config: SyncConfig) -> int:
    from syncer.controller import Controller

    ctl = Controller(config)
    ctl.install_signals()
    return await ctl.run()


def main() -> NoReturn:
    try:
        code = run()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
