"""The cluster's desired records, kept up to date object by object (continuous mode). Pure, no I/O.

:class:`DesiredState` holds the objects the enabled sources read (their projections, as the reflectors or the
folder watch hand them over), and for every object of a source's own kind (a Service, an Ingress) the endpoints
it implies. Rules:

* :meth:`DesiredState.apply` takes object changes and only *marks* the objects whose records may have changed:
  a Service or Ingress itself; for a Node, the objects that read the Nodes; for a Pod, the objects of its
  namespace whose selector matches the Pod's old or new labels; for an EndpointSlice, the object named by its
  old or new ``kubernetes.io/service-name`` label; for a Gateway, the routes whose ``parentRefs`` name it; for a
  Namespace, the routes in it (a listener may admit routes by namespace labels) (what each object reads is its
  source's ``needs``). Marking is
  cheap and de-duplicated, so a storm of changes to one object costs one recomputation, and a start-up load
  (every object appears once) costs one computation per object;
* :meth:`DesiredState.recompute` computes the marked objects' endpoints again and returns the DNS names whose
  desired records changed (the old names and the new names of each changed object), each with the instant of the
  earliest change behind it;
* :meth:`DesiredState.endpoints_at` gives every object's endpoints at some names (what the plan of those names
  needs); :meth:`DesiredState.endpoints` all of them (a full reconcile).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncer.kube.changes import Key, Obj, ObjectChange
from syncer.model import Endpoint, Skipped
from syncer.sources import ClusterIndex, Filters, Needs, Source, object_endpoints
from syncer.sources.index import SERVICE_NAME_LABEL, selector_matches, str_map

ObjectId = tuple[str, Key]  # (source name, (namespace, name))


@dataclass
class _Computed:
    endpoints: tuple[Endpoint, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    needs: Needs = field(default_factory=Needs)


def _labels(obj: Obj | None) -> dict[str, str]:
    meta = obj.get("metadata") if obj else None
    return str_map(meta.get("labels")) if isinstance(meta, dict) else {}


class DesiredState:
    def __init__(self, sources: Sequence[Source], filters: Filters) -> None:
        self.sources = list(sources)
        self.filters = filters
        self.index = ClusterIndex()
        self._by_kind: dict[str, list[Source]] = defaultdict(list)  # primary kind -> the sources reading it
        for source in self.sources:
            self._by_kind[source.kind].append(source)
        self.objects: dict[str, dict[Key, Obj]] = {kind: {} for kind in self._by_kind}
        self._computed: dict[ObjectId, _Computed] = {}
        self._at_name: dict[str, set[ObjectId]] = defaultdict(set)  # name -> objects with endpoints there
        self._marked: dict[ObjectId, float] = {}  # object -> earliest change behind the mark
        # who reads what (from each object's Needs)
        self._node_readers: set[ObjectId] = set()
        self._pod_readers: dict[str, dict[ObjectId, Mapping[str, str]]] = defaultdict(dict)
        self._slice_readers: dict[tuple[str, str], set[ObjectId]] = defaultdict(set)
        self._gateway_readers: dict[tuple[str, str], set[ObjectId]] = defaultdict(set)  # (ns, name) -> routes
        self._namespace_readers: dict[str, set[ObjectId]] = defaultdict(set)  # namespace -> its objects

    # -- changes in -----------------------------------------------------------------------------------------

    def apply(self, changes: Iterable[ObjectChange]) -> None:
        for change in changes:
            if change.kind in self._by_kind:
                objects = self.objects[change.kind]
                if change.new is None:
                    objects.pop(change.key, None)
                else:
                    objects[change.key] = change.new
                for source in self._by_kind[change.kind]:
                    self._mark((source.name, change.key), change.received)
                continue
            if change.old is not None:
                self.index.remove(change.kind, change.old)
            if change.new is not None:
                self.index.put(change.kind, change.new)
            for reader in self._readers(change):
                self._mark(reader, change.received)

    def mark_all(self, received: float) -> None:
        """Mark every object (after a configuration change, or to rebuild from scratch)."""
        for kind, sources in self._by_kind.items():
            for key in self.objects[kind]:
                for source in sources:
                    self._mark((source.name, key), received)

    @property
    def marked(self) -> int:
        return len(self._marked)

    def _mark(self, oid: ObjectId, received: float) -> None:
        known = self._marked.get(oid)
        if known is None or received < known:
            self._marked[oid] = received

    def _readers(self, change: ObjectChange) -> set[ObjectId]:
        obj = change.new if change.new is not None else change.old
        meta = obj.get("metadata") if obj else None
        namespace = str((meta or {}).get("namespace") or "default") if isinstance(meta, dict) else "default"
        if change.kind == "Node":
            return set(self._node_readers)
        if change.kind == "Pod":
            old, new = _labels(change.old), _labels(change.new)
            return {oid for oid, selector in self._pod_readers.get(namespace, {}).items()
                    if selector_matches(selector, old) or selector_matches(selector, new)}
        if change.kind == "EndpointSlice":
            services = {_labels(o).get(SERVICE_NAME_LABEL) for o in (change.old, change.new)} - {None}
            return {oid for svc in services for oid in self._slice_readers.get((namespace, str(svc)), ())}
        if change.kind == "Gateway":
            return set(self._gateway_readers.get((namespace, change.key[1]), ()))
        if change.kind == "Namespace":
            return set(self._namespace_readers.get(change.key[1], ()))
        return set()

    # -- recomputation --------------------------------------------------------------------------------------

    def recompute(self, limit: int | None = None) -> dict[str, float]:
        """Recompute the marked objects (at most ``limit`` of them; the rest stay marked); returns ``{name:
        earliest change}`` for the names whose desired endpoints changed."""
        if limit is None or len(self._marked) <= limit:
            marked, self._marked = self._marked, {}
        else:
            marked = {}
            for oid in list(itertools.islice(self._marked, limit)):
                marked[oid] = self._marked.pop(oid)
        sources = {s.name: s for s in self.sources}
        changed: dict[str, float] = {}
        for oid, received in marked.items():
            source = sources[oid[0]]
            obj = self.objects[source.kind].get(oid[1])
            before = self._computed.get(oid)
            if obj is None:
                after = None
            else:
                endpoints, skipped = object_endpoints(source, obj, self.filters, self.index)
                after = _Computed(tuple(endpoints), tuple(skipped), source.needs(obj))
            self._set(oid, before, after)
            for name in _changed_names(before, after):
                if name not in changed or received < changed[name]:
                    changed[name] = received
        return changed

    def _set(self, oid: ObjectId, before: _Computed | None, after: _Computed | None) -> None:
        if before is not None:
            for ep in before.endpoints:
                readers = self._at_name.get(ep.name)
                if readers is not None:
                    readers.discard(oid)
                    if not readers:
                        del self._at_name[ep.name]
            self._unindex_needs(oid, before.needs)
        if after is None:
            self._computed.pop(oid, None)
            return
        self._computed[oid] = after
        for ep in after.endpoints:
            self._at_name[ep.name].add(oid)
        self._index_needs(oid, after.needs)

    def _index_needs(self, oid: ObjectId, needs: Needs) -> None:
        namespace = oid[1][0] or "default"
        if needs.nodes:
            self._node_readers.add(oid)
        if needs.pods is not None:
            self._pod_readers[namespace][oid] = needs.pods
        if needs.slices:
            self._slice_readers[(namespace, oid[1][1])].add(oid)
        for gateway in needs.gateways:
            self._gateway_readers[gateway].add(oid)
        if needs.namespace:
            self._namespace_readers[namespace].add(oid)

    def _unindex_needs(self, oid: ObjectId, needs: Needs) -> None:
        namespace = oid[1][0] or "default"
        self._node_readers.discard(oid)
        self._pod_readers.get(namespace, {}).pop(oid, None)
        readers = self._slice_readers.get((namespace, oid[1][1]))
        if readers is not None:
            readers.discard(oid)
        for gateway in needs.gateways:
            _discard(self._gateway_readers, gateway, oid)
        if needs.namespace:
            _discard(self._namespace_readers, namespace, oid)

    # -- reads ----------------------------------------------------------------------------------------------

    def wants(self, name: str) -> bool:
        return name in self._at_name

    def endpoints_at(self, names: Iterable[str]) -> list[Endpoint]:
        out: list[Endpoint] = []
        for name in names:
            for oid in sorted(self._at_name.get(name, ())):
                out.extend(ep for ep in self._computed[oid].endpoints if ep.name == name)
        return out

    def endpoints(self) -> list[Endpoint]:
        out = [ep for computed in self._computed.values() for ep in computed.endpoints]
        out.sort(key=lambda e: (e.name, e.type, e.resource))
        return out

    def skipped(self) -> list[Skipped]:
        return [s for oid in sorted(self._computed) for s in self._computed[oid].skipped]

    def resource_of(self, name: str) -> str:
        return ",".join(sorted({ep.resource for ep in self.endpoints_at([name])}))


def _discard(readers: dict[Any, set[ObjectId]], key: Any, oid: ObjectId) -> None:
    """Forget that ``oid`` reads ``key`` (and ``key`` itself once nobody reads it)."""
    known = readers.get(key)
    if known is not None:
        known.discard(oid)
        if not known:
            del readers[key]


def _changed_names(before: _Computed | None, after: _Computed | None) -> set[str]:
    def by_name(computed: _Computed | None) -> dict[str, set[Endpoint]]:
        out: dict[str, set[Endpoint]] = defaultdict(set)
        for ep in computed.endpoints if computed else ():
            out[ep.name].add(ep)
        return out

    old, new = by_name(before), by_name(after)
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
