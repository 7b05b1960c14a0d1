"""What the Kubernetes side hands the controller: object changes, from a reflector or from the folder watch.

One :class:`ObjectChange` per object that really changed (its projection differs, ``resourceVersion`` aside):
``old`` is ``None`` for an object that appeared, ``new`` is ``None`` for one that went away. A load (the first
list, or a relist after ``410 Gone``) is handed over as the diff against the cache it replaces, never as
"everything changed". ``received`` is the ``time.monotonic()`` instant the change reached us (for the
event -> commit latency).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace or "" for cluster-scoped kinds, name)


@dataclass(frozen=True, slots=True)
class ObjectChange:
    kind: str  # "Service", "Ingress", "Node", "Pod", "EndpointSlice"
    key: Key
    old: Obj | None
    new: Obj | None
    received: float


OnChanges = Callable[[Sequence[ObjectChange]], None]
