"""What every source is made of: its row in the table of sources, the filters it runs under, what it depends on.

A :class:`Source` names the kind it turns into records and every kind it reads, and gives its functions:
``hostnames`` (the raw host names of an object, and warnings to report with them), ``records`` (the records of
the normalised host names), ``view_records`` (the same names' in-cluster records, for ``--publish-view``; absent
when the source publishes nothing into views), ``accepts`` (a filter of its own, such as ``--ingress-class``) and
``needs``
(:class:`Needs`: which Nodes, Pods, EndpointSlices, Gateways and Namespaces the object's records are computed
from, so that a change of one of those recomputes exactly the objects that read it). Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncer.annotations import Annotations
from syncer.config import SourceConfig
from syncer.domains import DomainFilter
from syncer.selector import Selector, parse_selector
from syncer.sources.index import ClusterIndex
from syncer.sources.records import ObjectRecords
from syncer.sources.template import FqdnTemplates, parse_templates

Obj = dict[str, Any]
HostNames = list[tuple[str, bool]]  # (raw host name, use the cluster IP)
Warnings = list[tuple[str, str]]  # (value, reason): reported only when the object has names in scope


@dataclass(frozen=True)
class Filters:
    """The command line's filters, parsed once."""

    namespace: str | None
    labels: Selector
    annotations: Selector
    domains: DomainFilter
    templates: FqdnTemplates
    prefixes: tuple[str, ...]
    ingress_classes: tuple[str, ...]
    publish_internal: bool
    # the Gateways a route's records may come from: --gateway-namespace, --gateway-label-filter, --gateway-name
    gateway_namespace: str | None = None
    gateway_labels: Selector = field(default_factory=Selector)
    gateway_name: str | None = None
    view: bool = False  # computing a view's records (--publish-view): each source's in-cluster addresses

    @classmethod
    def of(cls, config: SourceConfig) -> Filters:
        """:class:`ValueError` for a bad selector or template."""
        return cls(namespace=config.namespace or None, labels=parse_selector(config.label_filter or ""),
                   annotations=parse_selector(config.annotation_filter or ""),
                   domains=DomainFilter(tuple(config.domain_filter), tuple(config.exclude_domains)),
                   templates=parse_templates(config.fqdn_templates), prefixes=tuple(config.annotation_prefixes),
                   ingress_classes=tuple(config.ingress_classes), publish_internal=config.publish_internal_services,
                   gateway_namespace=config.gateway_namespace or None,
                   gateway_labels=parse_selector(config.gateway_label_filter or ""),
                   gateway_name=config.gateway_name or None)


@dataclass(frozen=True)
class Needs:
    """The other objects one object's records are computed from."""

    nodes: bool = False  # every Node (their addresses)
    pods: Mapping[str, str] | None = None  # the Pods of the object's namespace this selector matches
    slices: bool = False  # the EndpointSlices labelled with the object's name
    gateways: frozenset[tuple[str, str]] = frozenset()  # these Gateways, by (namespace, name)
    namespace: bool = False  # the object's own Namespace (its labels)


NOTHING = Needs()


def _always(_obj: Obj, _filters: Filters) -> bool:
    return True


def _no_needs(_obj: Obj) -> Needs:
    return NOTHING


@dataclass(frozen=True)
class Source:
    name: str  # the --source value
    kind: str  # the kind it turns into records
    reads: tuple[str, ...]  # every kind it reads, its own first
    hostnames: Callable[[Obj, Annotations], tuple[HostNames, Warnings]]
    records: Callable[[Obj, Annotations, HostNames, ClusterIndex, Filters, ObjectRecords], None]
    accepts: Callable[[Obj, Filters], bool] = field(default=_always)
    needs: Callable[[Obj], Needs] = field(default=_no_needs)
    default: bool = True  # enabled when no --source is given
    #: ``records`` runs even when the object names no host: its names may come from elsewhere (a Gateway route
    #: without host names takes its listeners' host names)
    names_elsewhere: bool = False
    #: a view's records (``--publish-view``): the addresses clients inside the cluster should use; None: the
    #: source publishes nothing into views (those clients fall back to the main records)
    view_records: Callable[[Obj, Annotations, HostNames, ClusterIndex, Filters, ObjectRecords], None] | None = None
