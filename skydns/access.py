"""Who may touch which etcd keys: the roles dnssync's two processes need, as etcd key ranges (pure).

etcd's auth grants a role ``read``, ``write`` or ``readwrite`` on a key range ``[key, range_end)``; a prefix ``p``
is the range ``[p, p with its last byte + 1)``. With ``--client-cert-auth`` and auth enabled, etcd takes the user
name from the client certificate's common name, so a process authenticates by its certificate alone.

The least each process needs:

* the syncer (user ``dnssync-syncer``, role of the same name): ``readwrite`` on the records prefix (it reads what
  is there, writes and deletes what it owns, and compares in transactions), on its election prefix (the leader
  key bound to its lease) and on the views root (``--publish-view`` records);
* the resolver (user ``dnssync-resolver``): ``read`` on the records prefix and the views root (range, watch).
  It cannot write anything, so a compromised resolver cannot publish a name.
* ``root`` with the ``root`` role, which etcd requires before auth can be enabled; only the set-up job uses it.

Prefixes are normalised to start and end with ``/`` (``/skydns`` and ``/skydns/`` are one prefix, as the syncer
and the resolver treat them); :func:`plan_text` writes the same grants as ``etcdctl`` commands for an etcd run
by someone else.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from skydns.views import VIEWS_ROOT

READ, WRITE, READWRITE = "read", "write", "readwrite"
ROOT = "root"
SYNCER_USER = "dnssync-syncer"
RESOLVER_USER = "dnssync-resolver"


@dataclass(frozen=True)
class Grant:
    """One permission: ``permission`` on every key starting with ``prefix``."""

    permission: str
    prefix: str

    @property
    def key(self) -> bytes:
        return self.prefix.encode()

    @property
    def range_end(self) -> bytes:
        return prefix_range_end(self.key)


@dataclass(frozen=True)
class Role:
    """An etcd role, the grants it holds and the user (of the same name) that has it."""

    name: str
    grants: tuple[Grant, ...]


def normalise_prefix(prefix: str) -> str:
    """``skydns`` / ``/skydns`` / ``/skydns/`` -> ``/skydns/``; the root ``/`` is refused (it would grant all)."""
    cleaned = "/" + prefix.strip().strip("/") + "/"
    if cleaned == "//":
        raise ValueError(f"prefix {prefix!r}: granting the whole key space is not least privilege")
    return cleaned


def prefix_range_end(key: bytes) -> bytes:
    """The end of the range of keys starting with ``key`` (etcd's ``--prefix``): its last byte below 0xff + 1."""
    stripped = key.rstrip(b"\xff")
    if not stripped:
        raise ValueError("a prefix of only 0xff bytes has no range end")
    return stripped[:-1] + bytes([stripped[-1] + 1])


def dnssync_roles(prefix: str = "/skydns/", election_prefix: str = "/dnssync/election/",
                  views_root: str = VIEWS_ROOT) -> tuple[Role, Role]:
    """The syncer's role and the resolver's, for these prefixes."""
    records, election, views = (normalise_prefix(p) for p in (prefix, election_prefix, views_root))
    prefixes = [records, election, views]
    for i, one in enumerate(prefixes):
        for other in prefixes[i + 1:]:
            if one.startswith(other) or other.startswith(one):
                raise ValueError(f"prefixes {one!r} and {other!r} overlap: each must be a prefix of its own")
    syncer = Role(SYNCER_USER, (Grant(READWRITE, records), Grant(READWRITE, election), Grant(READWRITE, views)))
    resolver = Role(RESOLVER_USER, (Grant(READ, records), Grant(READ, views)))
    return syncer, resolver


def plan_text(roles: tuple[Role, ...]) -> str:
    """The same set-up as ``etcdctl`` commands (run with root's credentials), one per line."""
    lines = [f"etcdctl user add {ROOT} --no-password", f"etcdctl user grant-role {ROOT} {ROOT}"]
    for role in roles:
        lines.append(f"etcdctl role add {shlex.quote(role.name)}")
        lines += [f"etcdctl role grant-permission {shlex.quote(role.name)} --prefix=true {grant.permission} "
                  f"{shlex.quote(grant.prefix)}" for grant in role.grants]
        lines.append(f"etcdctl user add {shlex.quote(role.name)} --no-password")
        lines.append(f"etcdctl user grant-role {shlex.quote(role.name)} {shlex.quote(role.name)}")
    lines.append("etcdctl auth enable")
    return "\n".join(lines) + "\n"
