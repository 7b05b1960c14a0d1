"""The syncer's checked configuration (built by ``syncer.cli`` from flags and environment; read by the controller
and, for :class:`SourceConfig`, by ``syncer.sources``)."""

from __future__ import annotations

from dataclasses import dataclass

from skydns.etcd import EtcdSettings
from syncer.adoption import AdoptionRules
from syncer.domains import DomainFilter

ANNOTATION_PREFIXES = ("external-dns.alpha.kubernetes.io/", "external-dns.kubernetes.io/")


@dataclass(frozen=True)
class SourceConfig:
    sources: tuple[str, ...] = ()  # --source values; empty: the table's defaults (syncer.sources)
    namespace: str | None = None  # None: all namespaces
    label_filter: str = ""  # label selector on the objects' labels
    annotation_filter: str = ""  # label-selector syntax applied to the objects' annotations
    ingress_classes: tuple[str, ...] = ()
    domain_filter: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()
    annotation_prefixes: tuple[str, ...] = ANNOTATION_PREFIXES  # --annotation-prefix narrows this to one
    publish_internal_services: bool = False
    fqdn_templates: tuple[str, ...] = ()
    gateway_namespace: str | None = None  # Gateway route sources: only Gateways in this namespace
    gateway_label_filter: str = ""  # ... only Gateways matching this label selector
    gateway_name: str | None = None  # ... only Gateways of this name


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
    log_format: str = "text"
    log_level: str = "info"
    http_listen: tuple[str, int] = ("127.0.0.1", 8081)
    resync_interval: float = 600.0  # seconds; 0: no periodic full reconcile
    publish_views: tuple[str, ...] = ()  # --publish-view: views that get each Service's in-cluster addresses
    election_prefix: str = "/dnssync/election/"  # leader election keys: <prefix><owner id>/<lease id>
    election_ttl: float = 10.0  # seconds; the election lease's TTL, refreshed every TTL/3
    adoption: AdoptionRules | None = None  # --adopt-txt-owner: ExternalDNS's names these ids own become ours

    @property
    def domain_filter(self) -> DomainFilter:
        return DomainFilter(self.sources.domain_filter, self.sources.exclude_domains)
