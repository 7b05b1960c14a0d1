"""Reading the current records from etcd: the whole prefix, or one name, each at one revision (paged)."""

from __future__ import annotations

import aetcd

from skydns.etcd import read_prefix
from skydns.names import normalize_prefix
from syncer.current import CurrentState, classify_kvs
from syncer.keys import name_key


def prefix_bytes(prefix: str) -> bytes:
    """``/skydns`` -> ``b"/skydns/"`` (never ``/skydns`` alone: that would also read ``/skydns2/...``)."""
    return (normalize_prefix(prefix) + "/").encode()


async def read_current(client: aetcd.Client, prefix: str) -> CurrentState:
    """Every record under the prefix, read at one revision (paged)."""
    revision, kvs = await read_prefix(client, prefix_bytes(prefix))
    records, malformed = classify_kvs(kvs, prefix)
    return CurrentState(revision, records, malformed)


async def read_name(client: aetcd.Client, prefix: str, name: str) -> CurrentState:
    """The records whose name is ``name``: one read at one revision of the bare key and everything below it."""
    path = name_key(prefix, name)
    revision, kvs = await read_prefix(client, path.encode())
    below = path + "/"
    kvs = [kv for kv in kvs if kv.key == path.encode() or kv.key.startswith(below.encode())]
    records, malformed = classify_kvs(kvs, prefix)
    wanted = name.rstrip(".")
    return CurrentState(revision, [r for r in records if r.name == wanted], malformed)
