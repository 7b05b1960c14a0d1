"""What the etcd side hands the in-memory store: key changes, one etcd revision at a time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyChange:
    """One key as of one etcd revision.

    ``value`` is ``None`` for a delete. ``lease_deadline`` is the ``time.monotonic()`` instant the key's etcd
    lease runs out, or ``None`` when the key has no lease.
    """

    key: str
    value: bytes | None
    mod_revision: int
    lease_deadline: float | None = None
