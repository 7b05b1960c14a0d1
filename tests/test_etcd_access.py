"""etcd auth as the HA overlay sets it up: ``dnssync-etcd-access`` against a real etcd that takes the user from the
client certificate (``--client-cert-auth``), then the syncer and the resolver each with only their own rights.

The syncer's certificate (CN ``dnssync-syncer``) may write its records prefix and its election prefix and nothing
else; the resolver's (CN ``dnssync-resolver``) may read the prefix and write nothing; running the set-up again
changes nothing, and a role widened by hand is narrowed back."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aetcd import rpc

from resolver.server import free_dns_port
from skydns.etcd import EtcdClient, EtcdSettings, read_prefix
from tests.processes import ROOT, Process, ask, http_status, wait_until
from tests.syncer.helpers import EXAMPLES, run_dnssync
from tests.tls_certs import TlsEtcd, TlsFiles, client_certificate, make_tls_files

pytestmark = pytest.mark.timeout(90)


@dataclass(frozen=True)
class Users:
    etcd: TlsEtcd
    certs: dict[str, tuple[Path, Path]]

    def env(self, user: str) -> dict[str, str]:
        cert, key = self.certs[user]
        return {**self.etcd.client_env(client_cert=False), "ETCD_CERT_FILE": str(cert), "ETCD_KEY_FILE": str(key)}


def access(users: Users, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skydns.grant", "--log-format", "json", "--timeout", "20", *args],
                          env={"PATH": "/usr/bin:/bin", **users.env("root")}, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command-line tool is not installed; it makes the test certificates")
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def users(tls_files: TlsFiles) -> Iterator[Users]:
    """One etcd for the module, with auth set up once by the tool, as the HA overlay's Job does."""
    certs = {name: client_certificate(tls_files, name) for name in ("root", "dnssync-syncer", "dnssync-resolver",
                                                                     "someone-else")}
    with TlsEtcd(tls_files) as server:
        set_up = Users(server, certs)
        done = access(set_up)
        assert done.returncode == 0, done.stderr
        assert '"auth enabled"' in done.stderr, done.stderr
        yield set_up


async def put(env: dict[str, str], key: bytes) -> str:
    """Write ``key`` as this user: ``"ok"`` or the gRPC status code's name."""
    client = EtcdClient(EtcdSettings.from_env(env=env), timeout=5)
    try:
        async with asyncio.timeout(15):
            await client.connect()
            assert client.kvstub is not None
            await client.kvstub.Put(rpc.PutRequest(key=key, value=b"x"), timeout=5, metadata=client.metadata)
            return "ok"
    except rpc.AioRpcError as exc:
        return exc.code().name
    finally:
        await client.close()


async def read(env: dict[str, str], prefix: bytes) -> list[bytes] | str:
    client = EtcdClient(EtcdSettings.from_env(env=env), timeout=5)
    try:
        async with asyncio.timeout(15):
            _, kvs = await read_prefix(client, prefix)
            return [bytes(kv.key) for kv in kvs]
    except rpc.AioRpcError as exc:
        return exc.code().name
    finally:
        await client.close()


@dataclass(frozen=True)
class Case:
    user: str
    key: bytes
    outcome: str


WRITES = [
    Case("dnssync-syncer", b"/skydns/org/example/probe", "ok"),
    Case("dnssync-syncer", b"/dnssync/election/dnssync/probe", "ok"),
    Case("dnssync-syncer", b"/dnssync/views/inside/org/example/probe", "ok"),
    Case("dnssync-syncer", b"/other/key", "PERMISSION_DENIED"),
    Case("dnssync-syncer", b"/skydnsx", "PERMISSION_DENIED"),  # the prefix is /skydns/, not /skydns
    Case("dnssync-resolver", b"/skydns/org/example/probe", "PERMISSION_DENIED"),
    Case("dnssync-resolver", b"/dnssync/election/dnssync/probe", "PERMISSION_DENIED"),
    Case("someone-else", b"/skydns/org/example/probe", "PERMISSION_DENIED"),
]


@pytest.mark.parametrize("case", WRITES, ids=[f"{c.user}:{c.key.decode()}" for c in WRITES])
async def test_each_user_writes_only_where_its_role_allows(users: Users, case: Case) -> None:
    assert await put(users.env(case.user), case.key) == case.outcome


async def test_the_resolver_reads_the_prefix_but_nothing_outside_it(users: Users) -> None:
    assert await put(users.env("root"), b"/skydns/org/example/readable") == "ok"
    assert b"/skydns/org/example/readable" in await read(users.env("dnssync-resolver"), b"/skydns/")
    assert await read(users.env("dnssync-resolver"), b"/dnssync/election/") == "PERMISSION_DENIED"
    assert await read(users.env("someone-else"), b"/skydns/") == "PERMISSION_DENIED"


def test_the_syncer_and_the_resolver_work_with_only_their_rights(users: Users, tmp_path: Path) -> None:
    done = run_dnssync("--once", "--owner-id", "access", "--policy", "sync", "--from-manifests", EXAMPLES,
                       env=users.env("dnssync-syncer"))
    assert done.returncode == 0, done.stderr
    records = asyncio.run(read(users.env("dnssync-resolver"), b"/skydns/org/example/web/"))
    assert isinstance(records, list) and len(records) == 1
    dns_port, http_port = free_dns_port(), free_dns_port()
    resolver = Process(["--zone", "example.org.", "--listen", f"127.0.0.1:{dns_port}", "--http-listen",
                        f"127.0.0.1:{http_port}"], tmp_path / "resolver.log", env=users.env("dnssync-resolver"))
    try:
        wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 20, "the resolver to be ready")
        assert ask(dns_port, "web.example.org.", "A") == ("NOERROR", {("web.example.org.", "A", "203.0.113.10")})
    finally:
        assert resolver.stop() == 0, (tmp_path / "resolver.log").read_text()


def test_running_the_set_up_again_changes_nothing_and_narrows_a_widened_role(users: Users) -> None:
    again = access(users)
    assert again.returncode == 0, again.stderr
    assert "already as wanted" in again.stderr
    widen = rpc.Permission(permType=rpc.Permission.READWRITE, key=b"/", range_end=b"\0")

    async def grant() -> None:
        client = EtcdClient(EtcdSettings.from_env(env=users.env("root")))
        try:
            await client.connect()
            await rpc.AuthStub(client.channel).RoleGrantPermission(
                rpc.AuthRoleGrantPermissionRequest(name="dnssync-resolver", perm=widen), timeout=5,
                metadata=client.metadata)
        finally:
            await client.close()

    asyncio.run(grant())
    assert asyncio.run(put(users.env("dnssync-resolver"), b"/anything")) == "ok"
    narrowed = access(users)
    assert narrowed.returncode == 0, narrowed.stderr
    assert "role dnssync-resolver: revoked" in narrowed.stderr
    assert asyncio.run(put(users.env("dnssync-resolver"), b"/anything")) == "PERMISSION_DENIED"


def test_print_gives_the_same_set_up_as_etcdctl_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "skydns.grant", "--print", "--prefix", "/dns/"], capture_output=True,
                          text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "etcdctl role grant-permission dnssync-resolver --prefix=true read /dns/" in lines
    assert "etcdctl role grant-permission dnssync-syncer --prefix=true readwrite /dnssync/election/" in lines
    assert lines[-1] == "etcdctl auth enable"
    assert not any("readwrite /dns/" in line and "resolver" in line for line in lines)
