"""What an etcd mirror hands its store: key changes, one etcd revision at a time.

The resolver's in-memory store and the syncer's view of its own records both take these (see
:mod:`skydns.mirror`); a change carries the revision it was made at, so a store always knows how current a key is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyChange:
    """One key as of one etcd revision.

    ``value`` is ``None`` for a delete. ``mod_revision`` is the etcd revision of the key's last change (for a
    delete, the revision of the delete). ``lease_deadline`` is the ``time.monotonic()`` instant the key's etcd
    lease runs out, or ``None`` when the key has no lease.
    """

    key: str
    value: bytes | None
    mod_revision: int
    lease_deadline: float | None = None
