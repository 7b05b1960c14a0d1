"""What the sources need from the command line (built by ``syncer.cli``, read by ``syncer.sources``)."""

from __future__ import annotations

from dataclasses import dataclass

ANNOTATION_PREFIXES = ("external-dns.alpha.kubernetes.io/", "external-dns.kubernetes.io/")
KNOWN_SOURCES = ("service", "ingress")


@dataclass(frozen=True)
class SourceConfig:
    sources: tuple[str, ...] = KNOWN_SOURCES
    namespace: str | None = None  # None: all namespaces
    label_filter: str = ""  # label selector on the objects' labels
    annotation_filter: str = ""  # label-selector syntax applied to the objects' annotations
    ingress_classes: tuple[str, ...] = ()
    domain_filter: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()
    annotation_prefixes: tuple[str, ...] = ANNOTATION_PREFIXES  # --annotation-prefix narrows this to one
    publish_internal_services: bool = False
    fqdn_templates: tuple[str, ...] = ()
