"""Sources: the cluster's objects -> the desired endpoints (one per name, type and object) and what was skipped.

The table :data:`SOURCES` holds every source (``--source`` values): the kind whose objects it turns into records,
every kind it reads, how it finds host names and records, and which objects of the other kinds an object's
records depend on (:class:`Needs`). Continuous mode reads the table to know which kinds to watch and which objects
to recompute after a change; adding a source is one module with its ``SOURCE`` row plus one entry here.

:func:`collect` runs the configured sources over a :class:`ClusterSnapshot`; :func:`object_endpoints` computes one
object's endpoints (what continuous mode calls per changed object). Per object, in this order: the namespace,
``--label-filter`` (on labels), ``--annotation-filter`` (on annotations), the ``controller`` annotation, the
source's own filter (``--ingress-class``); then the host names (annotations and spec; ``--fqdn-template`` only
when those give none, as ExternalDNS), the records, and the names that pass ``--domain-filter``/
``--exclude-domains``.

Endpoints leave here canonical: names lower-case A-labels without the trailing dot, targets in the one spelling
:mod:`syncer.keys` stores (IPs normalised, host names lower-case without the dot, SRV as ``"prio weight port
host"``); the plan and the writer use them as they are.

Nothing in one object stops the others: a malformed object, a bad host name or target, or a template that cannot
be rendered becomes a :class:`Skipped` entry (logged with structlog as ``record skipped``). A bad annotation that
does not drop the record (an invalid ``ttl``, an unknown ``access``/``endpoints-type``/``ingress-hostname-source``)
is also a :class:`Skipped` entry, whose reason ends with ``; using the default`` (logged as ``annotation ignored``).
Endpoints come back sorted by (name, type, resource); skipped entries in object order (sorted objects).

Merging endpoints of several objects and resolving conflicts is the plan's job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import structlog

from syncer.annotations import Annotations
from syncer.config import SourceConfig
from syncer.model import KINDS, ClusterSnapshot, Endpoint, Skipped, SourceResult
from syncer.sources import crd, gateway, ingress, service
from syncer.sources.base import Filters, Needs, Source
from syncer.sources.index import ClusterIndex, as_map, str_map
from syncer.sources.records import ObjectRecords

__all__ = ["DEFAULT_SOURCES", "KNOWN_SOURCES", "SOURCES", "ClusterIndex", "Filters", "Needs", "Source", "collect",
           "kinds_for_sources", "object_endpoints"]

#: every source, by its ``--source`` name: one row each
SOURCES: dict[str, Source] = {source.name: source for source in (service.SOURCE, ingress.SOURCE,
                                                                  *gateway.SOURCES, crd.SOURCE)}
KNOWN_SOURCES = tuple(SOURCES)
DEFAULT_SOURCES = tuple(name for name, source in SOURCES.items() if source.default)

log = structlog.get_logger()


def enabled(config: SourceConfig) -> list[Source]:
    """The configured sources, in table order; :class:`ValueError` for an unknown name."""
    names = config.sources or DEFAULT_SOURCES
    unknown = [s for s in names if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r} (known: {', '.join(KNOWN_SOURCES)})")
    return [source for name, source in SOURCES.items() if name in names]


def kinds_for_sources(names: Iterable[str]) -> list[str]:
    """Every kind the named sources read (each once, in the order of :data:`syncer.model.KINDS`)."""
    wanted = {kind for name in names for kind in SOURCES[name].reads}
    return [kind for kind in KINDS if kind in wanted]


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


def collect(snapshot: ClusterSnapshot, config: SourceConfig, *, view: bool = False) -> SourceResult:
    """The endpoints the snapshot implies under ``config`` (``view``: the in-cluster records a
    ``--publish-view`` view gets); raises :class:`ValueError` only for a bad config (selector, template, unknown
    source), never for a bad object."""
    sources = enabled(config)
    filters = dataclasses.replace(Filters.of(config), view=view)
    result = SourceResult()
    index = ClusterIndex(snapshot)
    for source in sources:
        for obj in _objects(getattr(snapshot, KINDS[source.kind].field)):
            endpoints, skipped = object_endpoints(source, obj, filters, index)
            result.endpoints.extend(endpoints)
            result.skipped.extend(skipped)
    result.endpoints.sort(key=lambda e: (e.name, e.type, e.resource))
    return result


def object_endpoints(source: Source, obj: Any, f: Filters, index: ClusterIndex
                     ) -> tuple[list[Endpoint], list[Skipped]]:
    """One object's endpoints (sorted) and skipped entries under the filters."""
    resource, problem = _identity(source.kind.lower(), obj)
    if problem is not None:
        log.warning("record skipped", resource=resource, value="", reason=f"malformed object: {problem}")
        return [], [Skipped(resource, "", f"malformed object: {problem}")]
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    if f.namespace is not None and namespace != f.namespace:
        return [], []
    raw_annotations = str_map(meta.get("annotations"))
    if not f.labels.empty and not f.labels.matches(str_map(meta.get("labels"))):
        return [], []
    if not f.annotations.empty and not f.annotations.matches(raw_annotations):
        return [], []
    ann = Annotations.read(raw_annotations, f.prefixes)
    if not ann.is_ours():
        log.debug("object skipped: controller annotation", resource=resource, controller=ann.get("controller"))
        return [], []
    if not source.accepts(obj, f):
        return [], []
    write = source.view_records if f.view else source.records
    if write is None:
        return [], []

    records = ObjectRecords(resource, group=ann.group())
    # Host names: (raw name, use the cluster IP) from annotations/spec, else from the templates.
    raw_names, warnings = source.hostnames(obj, ann)
    if not raw_names and f.templates:
        names, errors = f.templates.render(obj, source.kind)
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

    if hostnames or source.names_elsewhere:
        ttl, ttl_warning = ann.ttl()
        records.ttl = ttl
        warnings = list(warnings)
        if ttl_warning:
            warnings.insert(0, (ann.get("ttl") or "", ttl_warning))
        for value, reason in warnings:
            records.warn(value, reason)
        write(obj, ann, hostnames, index, f, records)

    endpoints = []
    for endpoint in records.endpoints():
        if f.domains.matches(endpoint.name):
            endpoints.append(endpoint)
        else:
            log.debug("record outside the domain filter", resource=resource, name=endpoint.name, type=endpoint.type)
    return endpoints, records.skipped
