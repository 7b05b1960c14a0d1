"""Sources: the cluster snapshot -> the desired endpoints (one per name, type and object) and what was skipped.

:func:`collect` runs the configured sources (``service``, ``ingress``) over a :class:`ClusterSnapshot` and applies,
in this order, per object: the namespace, ``--label-filter`` (on labels), ``--annotation-filter`` (on annotations),
the ``controller`` annotation, ``--ingress-class`` (ingresses); then it computes the host names (annotations and
spec; ``--fqdn-template`` only when those give none, as ExternalDNS), the records, and keeps the names that pass
``--domain-filter``/``--exclude-domains``.

Nothing in one object stops the others: a malformed object, a bad host name or target, or a template that cannot
be rendered becomes a :class:`Skipped` entry (logged with structlog as ``record skipped``). A bad annotation that
does not drop the record (an invalid ``ttl``, an unknown ``access``/``endpoints-type``/``ingress-hostname-source``)
is also a :class:`Skipped` entry, whose reason ends with ``; using the default`` (logged as ``annotation ignored``).
Endpoints come back sorted by (name, type, resource); skipped entries in object order (sorted objects).

Merging endpoints of several objects and resolving conflicts is the plan's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

from syncer.annotations import Annotations
from syncer.config import KNOWN_SOURCES, SourceConfig
from syncer.domains import DomainFilter
from syncer.model import ClusterSnapshot, Skipped, SourceResult
from syncer.selector import Selector, parse_selector
from syncer.sources.index import ClusterIndex, as_map, str_map
from syncer.sources.ingress import ingress_class_matches, ingress_hostnames, ingress_records
from syncer.sources.records import ObjectRecords
from syncer.sources.service import service_records
from syncer.sources.template import FqdnTemplates, parse_templates

__all__ = ["KNOWN_SOURCES", "collect"]

log = structlog.get_logger()


class _Filters:
    def __init__(self, config: SourceConfig) -> None:
        unknown = [s for s in config.sources if s not in KNOWN_SOURCES]
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r} (known: {', '.join(KNOWN_SOURCES)})")
        self.namespace = config.namespace or None
        self.labels: Selector = parse_selector(config.label_filter or "")
        self.annotations: Selector = parse_selector(config.annotation_filter or "")
        self.domains = DomainFilter(tuple(config.domain_filter), tuple(config.exclude_domains))
        self.templates: FqdnTemplates = parse_templates(config.fqdn_templates)
        self.prefixes = tuple(config.annotation_prefixes)
        self.ingress_classes = tuple(config.ingress_classes)
        self.publish_internal = config.publish_internal_services


def _identity(kind: str, obj: Any) -> tuple[str, str | None]:
    """``(resource, problem)``: ``service/<ns>/<name>``, and why the object is malformed (``None`` when fine)."""
    if not isinstance(obj, dict):
        return f"{kind}/?/?", f"not an object but {type(obj).__name__}"
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return f"{kind}/?/?", "metadata is missing"
    name = meta.get("name")
    ns = meta.get("namespace") or "default"
    if not isinstance(name, str) or not name:
        return f"{kind}/{ns}/?", "metadata.name is missing"
    if not isinstance(ns, str):
        return f"{kind}/?/{name}", "metadata.namespace is not a string"
    for field in ("spec", "status"):
        if obj.get(field) is not None and not isinstance(obj.get(field), dict):
            return f"{kind}/{ns}/{name}", f"{field} is not an object"
    return f"{kind}/{ns}/{name}", None


def _sort_key(obj: Any) -> tuple[str, str]:
    meta = as_map(obj.get("metadata")) if isinstance(obj, dict) else {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def _objects(objs: Iterable[Any]) -> list[Any]:
    return sorted(objs, key=_sort_key)


def collect(snapshot: ClusterSnapshot, config: SourceConfig) -> SourceResult:
    """The endpoints the snapshot implies under ``config``; raises :class:`ValueError` only for a bad config
    (selector, template, unknown source), never for a bad object."""
    filters = _Filters(config)
    result = SourceResult()
    index: ClusterIndex | None = None
    for source in dict.fromkeys(config.sources):
        if source == "service":
            index = index or ClusterIndex(snapshot)
            for svc in _objects(snapshot.services):
                _collect_one("service", svc, filters, result, index)
        elif source == "ingress":
            for ing in _objects(snapshot.ingresses):
                _collect_one("ingress", ing, filters, result, None)
    result.endpoints.sort(key=lambda e: (e.name, e.type, e.resource))
    return result


def _collect_one(kind: str, obj: Any, f: _Filters, result: SourceResult, index: ClusterIndex | None) -> None:
    resource, problem = _identity(kind, obj)
    if problem is not None:
        result.skipped.append(Skipped(resource, "", f"malformed object: {problem}"))
        log.warning("record skipped", resource=resource, value="", reason=f"malformed object: {problem}")
        return
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    if f.namespace is not None and namespace != f.namespace:
        return
    raw_annotations = str_map(meta.get("annotations"))
    if not f.labels.empty and not f.labels.matches(str_map(meta.get("labels"))):
        return
    if not f.annotations.empty and not f.annotations.matches(raw_annotations):
        return
    ann = Annotations.read(raw_annotations, f.prefixes)
    if not ann.is_ours():
        log.debug("object skipped: controller annotation", resource=resource, controller=ann.get("controller"))
        return
    if kind == "ingress" and not ingress_class_matches(obj, f.ingress_classes):
        return

    records = ObjectRecords(resource, group=ann.group())
    # Host names: (raw name, use the cluster IP) from annotations/spec, else from the templates.
    raw_names: list[tuple[str, bool]]
    warnings: list[tuple[str, str]] = []  # (value, reason): reported only when the object has names in scope
    if kind == "service":
        raw_names = [(h, False) for h in ann.hostnames()] + [(h, True) for h in ann.internal_hostnames()]
    else:
        ingress_names, source_warning = ingress_hostnames(obj, ann)
        raw_names = [(h, False) for h in ingress_names]
        if source_warning:
            warnings.append((ann.get("ingress-hostname-source") or "", source_warning))
    if not raw_names and f.templates:
        names, errors = f.templates.render(obj, "Service" if kind == "service" else "Ingress")
        for template, reason in errors:
            records.skip(template, f"fqdn-template: {reason}")
        raw_names = [(h, False) for h in names]
    hostnames: list[tuple[str, bool]] = []
    seen: set[tuple[str, bool]] = set()
    for raw, use_cluster_ip in raw_names:
        name = records.name(raw)
        if name is None or (name, use_cluster_ip) in seen:
            continue
        seen.add((name, use_cluster_ip))
        if f.domains.may_match_at_or_below(name):  # else dropped quietly, not reported (e.g. for no targets)
            hostnames.append((name, use_cluster_ip))
        else:
            log.debug("host name outside the domain filter", resource=resource, name=name)

    if hostnames:
        ttl, ttl_warning = ann.ttl()
        records.ttl = ttl
        if ttl_warning:
            warnings.insert(0, (ann.get("ttl") or "", ttl_warning))
        for value, reason in warnings:
            records.warn(value, reason)
        if kind == "service":
            assert index is not None
            service_records(obj, ann, hostnames, index, f.prefixes, f.publish_internal, records)
        else:
            ingress_records(obj, ann, [h for h, _ in hostnames], records)

    result.skipped.extend(records.skipped)
    for endpoint in records.endpoints():
        if f.domains.matches(endpoint.name):
            result.endpoints.append(endpoint)
        else:
            log.debug("record outside the domain filter", resource=resource, name=endpoint.name, type=endpoint.type)

