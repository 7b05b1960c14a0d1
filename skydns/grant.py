"""``dnssync-etcd-access``: set up etcd auth so the syncer and the resolver get exactly their roles.

Connects with the ``ETCD_*`` settings (as the other processes: a client certificate whose common name is
``root``, or ``ETCD_USERNAME``/``ETCD_PASSWORD``), then makes etcd match :func:`skydns.access.dnssync_roles`:

* the users ``root``, ``dnssync-syncer`` and ``dnssync-resolver`` exist without passwords (they authenticate by
  their client certificates) and hold their roles;
* each dnssync role holds exactly its grants: missing ones are granted, any other permission is revoked (a role
  widened by hand is narrowed back);
* auth is enabled.

Every step reads first and changes only what differs, so running it again (a Job re-applied, a restarted pod)
changes nothing and says so. etcd not up yet (the Job starts with the members) is retried with backoff for
``--timeout``. ``--print`` writes the same set-up as ``etcdctl`` commands without contacting etcd, for an etcd
someone else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from aetcd import rpc
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from skydns.access import READ, READWRITE, ROOT, WRITE, Role, dnssync_roles, plan_text
from skydns.etcd import EtcdClient, EtcdConfigError, EtcdSettings, is_transient_error
from skydns.logs import configure

PERMISSIONS = {READ: rpc.Permission.READ, WRITE: rpc.Permission.WRITE, READWRITE: rpc.Permission.READWRITE}
log = structlog.get_logger()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dnssync-etcd-access", description=__doc__.splitlines()[0])
    parser.add_argument("--etcd-endpoints", help="comma-separated URLs (default: ETCD_URLS)")
    parser.add_argument("--prefix", default="/skydns/", help="the records prefix (the syncer's and resolver's)")
    parser.add_argument("--election-prefix", default="/dnssync/election/", help="the syncer's election prefix")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to keep retrying an unreachable etcd")
    parser.add_argument("--print", action="store_true", help="print the etcdctl commands instead of running them")
    parser.add_argument("--log-format", choices=("json", "text"), default="text")
    return parser.parse_args(argv)


class Access:
    """The auth API of one etcd, read and changed one idempotent step at a time."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client
        self.changed: list[str] = []

    async def _call(self, method: str, request: Any) -> Any:
        await self.client.connect()
        stub = rpc.AuthStub(self.client.channel)
        return await getattr(stub, method)(request, timeout=self.client._timeout, metadata=self.client.metadata)

    async def ensure_user(self, name: str, role: str) -> None:
        users = (await self._call("UserList", rpc.AuthUserListRequest())).users
        if name not in users:
            options = rpc.UserAddOptions(no_password=True)
            await self._call("UserAdd", rpc.AuthUserAddRequest(name=name, options=options))
            self.changed.append(f"user {name} added")
        roles = (await self._call("UserGet", rpc.AuthUserGetRequest(name=name))).roles
        if role not in roles:
            await self._call("UserGrantRole", rpc.AuthUserGrantRoleRequest(user=name, role=role))
            self.changed.append(f"user {name} granted role {role}")

    async def ensure_role(self, role: Role) -> None:
        roles = (await self._call("RoleList", rpc.AuthRoleListRequest())).roles
        if role.name not in roles:
            await self._call("RoleAdd", rpc.AuthRoleAddRequest(name=role.name))
            self.changed.append(f"role {role.name} added")
        held = {(int(p.permType), bytes(p.key), bytes(p.range_end))
                for p in (await self._call("RoleGet", rpc.AuthRoleGetRequest(role=role.name))).perm}
        wanted = {(int(PERMISSIONS[g.permission]), g.key, g.range_end) for g in role.grants}
        for _type, key, range_end in sorted(held - wanted):
            await self._call("RoleRevokePermission",
                             rpc.AuthRoleRevokePermissionRequest(role=role.name, key=key, range_end=range_end))
            self.changed.append(f"role {role.name}: revoked {key.decode(errors='replace')!r}")
        for perm_type, key, range_end in sorted(wanted - held):
            perm = rpc.Permission(permType=perm_type, key=key, range_end=range_end)
            await self._call("RoleGrantPermission", rpc.AuthRoleGrantPermissionRequest(name=role.name, perm=perm))
            self.changed.append(f"role {role.name}: granted {rpc.Permission.Type.Name(perm_type).lower()} "
                                f"{key.decode(errors='replace')!r}")

    async def enable(self) -> None:
        if not (await self._call("AuthStatus", rpc.AuthStatusRequest())).enabled:
            await self._call("AuthEnable", rpc.AuthEnableRequest())
            self.changed.append("auth enabled")

    async def apply(self, roles: tuple[Role, ...]) -> list[str]:
        """Make etcd's users, roles and auth match ``roles``; what had to change (empty when nothing did)."""
        await self.ensure_user(ROOT, ROOT)
        for role in roles:
            await self.ensure_role(role)
            await self.ensure_user(role.name, role.name)
        await self.enable()
        return self.changed


async def run(args: argparse.Namespace, env: Mapping[str, str]) -> list[str]:
    roles = dnssync_roles(args.prefix, args.election_prefix)
    settings = EtcdSettings.from_env(args.etcd_endpoints, env)
    retrying = AsyncRetrying(retry=retry_if_exception(is_transient_error), stop=stop_after_delay(args.timeout),
                             wait=wait_exponential(multiplier=0.2, max=10), reraise=True,
                             before_sleep=lambda state: log.warning(
                                 "etcd_unreachable", error=str(state.outcome.exception() if state.outcome else "")))
    async for attempt in retrying:
        with attempt:
            client = EtcdClient(settings)
            try:
                return await Access(client).apply(roles)
            finally:
                await client.close()
    raise AssertionError("unreachable")  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure(args.log_format)
    try:
        if args.print:
            sys.stdout.write(plan_text(dnssync_roles(args.prefix, args.election_prefix)))
            return 0
        changed = asyncio.run(run(args, os.environ))
    except (ValueError, EtcdConfigError) as exc:
        print(f"dnssync-etcd-access: {exc}", file=sys.stderr)
        return 2
    except rpc.AioRpcError as exc:
        log.error("etcd_access_failed", code=exc.code().name, details=exc.details())
        return 1
    log.info("etcd_access_ready", changed=changed or "nothing: already as wanted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
