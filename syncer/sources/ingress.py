"""Ingress -> records, as ExternalDNS's ingress source does.

Host names: every ``spec.rules[].host``, every ``spec.tls[].hosts[]`` and the ``hostname`` annotation, narrowed by
``ingress-hostname-source`` (``annotation-only``: the annotation alone; ``defined-hosts-only``: rules and TLS
alone). Wildcard hosts (``*.example.org``) are kept as they are. Targets: the ``target`` annotation if set, else
every ``status.loadBalancer.ingress[]`` ``ip`` and ``hostname``. No target -> nothing, reported as skipped.

``--ingress-class``: an Ingress is kept when ``spec.ingressClassName`` is one of the classes or, when that field is
empty, when its ``kubernetes.io/ingress.class`` annotation is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syncer.annotations import HOSTNAME_SOURCE_ANNOTATION_ONLY, HOSTNAME_SOURCE_DEFINED_HOSTS_ONLY, Annotations
from syncer.sources.base import Filters, HostNames, Source, Warnings
from syncer.sources.index import NO_LB_STATUS, ClusterIndex, as_list, as_map, load_balancer_targets, str_map
from syncer.sources.records import ObjectRecords

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
def ingress_class_matches(ing: Mapping[str, Any], classes: Sequence[str]) -> bool:
    if not classes:
        return True
    class_name = as_map(ing.get("spec")).get("ingressClassName")
    if class_name:
        return str(class_name) in classes
    annotations = str_map(as_map(ing.get("metadata")).get("annotations"))
    return annotations.get(INGRESS_CLASS_ANNOTATION) in classes


def ingress_hostnames(ing: Mapping[str, Any], ann: Annotations) -> tuple[list[str], str | None]:
    """The raw host names of ``ing`` (spec and annotation, narrowed by ``ingress-hostname-source``), in order,
    and a warning when ``ingress-hostname-source`` has an unknown value (both kinds of names are used then)."""
    spec = as_map(ing.get("spec"))
    defined: list[str] = []
    for rule in as_list(spec.get("rules")):
        host = as_map(rule).get("host")
        if host:
            defined.append(str(host))
    for tls in as_list(spec.get("tls")):
        for host in as_list(as_map(tls).get("hosts")):
            if host:
                defined.append(str(host))
    source, warning = ann.ingress_hostname_source()
    names: list[str] = []
    if source != HOSTNAME_SOURCE_ANNOTATION_ONLY:
        names.extend(defined)
    if source != HOSTNAME_SOURCE_DEFINED_HOSTS_ONLY:
        names.extend(ann.hostnames())
    return names, warning


def ingress_targets(ing: Mapping[str, Any], ann: Annotations) -> list[str]:
    override = ann.targets()
    if override:
        return override
    return load_balancer_targets(ing)


def ingress_records(ing: Mapping[str, Any], ann: Annotations, hostnames: list[str], records: ObjectRecords) -> None:
    """Add the records of ``ing`` for each normalised host name to ``records``."""
    if not hostnames:
        return
    targets = ingress_targets(ing, ann)
    if not targets:
        records.skip(",".join(hostnames), NO_LB_STATUS)
        return
    for hostname in hostnames:
        if not records.add(hostname, targets):
            records.skip(hostname, "no valid target")
            break


def _hostnames(ing: Mapping[str, Any], ann: Annotations) -> tuple[HostNames, Warnings]:
    names, warning = ingress_hostnames(ing, ann)
    return [(h, False) for h in names], [(ann.get("ingress-hostname-source") or "", warning)] if warning else []


def _records(ing: Mapping[str, Any], ann: Annotations, hostnames: HostNames, _index: ClusterIndex, _f: Filters,
             records: ObjectRecords) -> None:
    ingress_records(ing, ann, [h for h, _ in hostnames], records)


def _accepts(ing: Mapping[str, Any], f: Filters) -> bool:
    return ingress_class_matches(ing, f.ingress_classes)


SOURCE = Source(name="ingress", kind="Ingress", reads=("Ingress",), hostnames=_hostnames, records=_records,
                accepts=_accepts)
