"""etcd over TLS, configured as ExternalDNS is (``ETCD_URLS=https://``, ``ETCD_CA_FILE``, ``ETCD_CERT_FILE``,
``ETCD_KEY_FILE``, ``ETCD_TLS_SERVER_NAME``, ``ETCD_TLS_INSECURE``): the shared client, the syncer and the resolver
against a real etcd that requires client certificates. Certificates are made per run with the openssl CLI."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from aetcd import exceptions as etcd_errors

from devtools.localetcd import LocalEtcd
from resolver.server import free_dns_port
from skydns.etcd import EtcdClient, EtcdSettings, read_prefix
from skydns.record import decode
from tests.processes import Process, ask, http_status, wait_until
from tests.syncer.helpers import EXAMPLES, run_dnssync
from tests.tls_certs import TlsEtcd, TlsFiles, make_tls_files

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command-line tool is not installed; it makes the test certificates")
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_etcd(tls_files: TlsFiles) -> Iterator[TlsEtcd]:
    """One real etcd for this module, serving https://127.0.0.1:PORT and requiring a client certificate."""
    with TlsEtcd(tls_files) as server:
        yield server


@pytest.fixture
async def clean_tls_etcd(tls_etcd: TlsEtcd) -> TlsEtcd:
    """The module's TLS etcd with an empty key space."""
    client = EtcdClient(EtcdSettings.from_env(env=tls_etcd.client_env()))
    try:
        await client.connect()
        await client.delete_range(b"\0", b"\0")
    finally:
        await client.close()
    return tls_etcd


async def round_trip(env: dict[str, str], key: bytes = b"/skydns/test/tls") -> bytes | None:
    """Connect with these variables, write a key, read it back (bounded: a failure must not hang)."""
    client = EtcdClient(EtcdSettings.from_env(env=env), timeout=5)
    try:
        async with asyncio.timeout(15):
            await client.connect()
            await client.put(key, b"over-tls")
            got = await client.get(key)
            return None if got is None else bytes(got.value)
    finally:
        await client.close()


async def test_client_with_ca_and_client_certificate_reads_and_writes(clean_tls_etcd: TlsEtcd) -> None:
    settings = EtcdSettings.from_env(env=clean_tls_etcd.client_env())
    assert settings.secure
    assert await round_trip(clean_tls_etcd.client_env()) == b"over-tls"


async def test_without_a_client_certificate_the_server_refuses_quickly(clean_tls_etcd: TlsEtcd) -> None:
    with pytest.raises(etcd_errors.ConnectionFailedError, match=r"(?i)handshake|certificate"):
        await round_trip(clean_tls_etcd.client_env(client_cert=False))


async def test_a_ca_that_did_not_sign_the_server_is_refused(clean_tls_etcd: TlsEtcd) -> None:
    env = {**clean_tls_etcd.client_env(), "ETCD_CA_FILE": str(clean_tls_etcd.tls.other_ca)}
    with pytest.raises(etcd_errors.ConnectionFailedError, match="CERTIFICATE_VERIFY_FAILED"):
        await round_trip(env)


async def test_server_name_overrides_the_name_checked_against_the_certificate(clean_tls_etcd: TlsEtcd) -> None:
    # The URL says 127.0.0.1; the certificate is checked against etcd.test (one of its names) instead.
    env = {**clean_tls_etcd.client_env(), "ETCD_TLS_SERVER_NAME": "etcd.test"}
    assert await round_trip(env) == b"over-tls"
    # The override is really used: a name the certificate does not carry is refused.
    with pytest.raises(etcd_errors.ConnectionFailedError, match="Hostname Verification"):
        await round_trip({**env, "ETCD_TLS_SERVER_NAME": "not-etcd.test"})


async def test_a_dns_name_in_the_url_is_checked_against_the_certificate(clean_tls_etcd: TlsEtcd) -> None:
    env = clean_tls_etcd.client_env()
    env["ETCD_URLS"] = env["ETCD_URLS"].replace("127.0.0.1", "localhost")
    assert await round_trip(env) == b"over-tls"


async def test_insecure_accepts_a_server_certificate_from_an_unknown_ca(clean_tls_etcd: TlsEtcd) -> None:
    # gRPC cannot skip verification; ETCD_TLS_INSECURE trusts the certificate the server presents instead.
    env = {**clean_tls_etcd.client_env(), "ETCD_CA_FILE": str(clean_tls_etcd.tls.other_ca), "ETCD_TLS_INSECURE": "1"}
    assert await round_trip(env) == b"over-tls"
    no_ca = {k: v for k, v in env.items() if k != "ETCD_CA_FILE"}
    assert await round_trip(no_ca) == b"over-tls"


async def test_insecure_accepts_a_server_name_the_certificate_does_not_carry(clean_tls_etcd: TlsEtcd) -> None:
    env = {**clean_tls_etcd.client_env(), "ETCD_TLS_SERVER_NAME": "not-etcd.test", "ETCD_TLS_INSECURE": "true"}
    assert await round_trip(env) == b"over-tls"


async def test_insecure_still_needs_the_client_certificate_the_server_requires(clean_tls_etcd: TlsEtcd) -> None:
    env = {**clean_tls_etcd.client_env(client_cert=False), "ETCD_TLS_INSECURE": "true"}
    with pytest.raises(etcd_errors.ConnectionFailedError, match=r"(?i)handshake|certificate"):
        await round_trip(env)


async def test_insecure_against_a_plain_http_etcd_fails_with_a_clear_error(etcd_server: LocalEtcd) -> None:
    env = {"ETCD_URLS": etcd_server.endpoint.replace("http://", "https://"), "ETCD_TLS_INSECURE": "yes"}
    with pytest.raises(etcd_errors.ConnectionFailedError, match="ETCD_TLS_INSECURE: no etcd endpoint presented"):
        await round_trip(env)


@pytest.mark.parametrize("extra", [{}, {"ETCD_TLS_SERVER_NAME": "etcd.test"}, {"ETCD_TLS_INSECURE": "true"}],
                         ids=["verified", "server-name", "insecure"])
async def test_the_syncer_writes_records_over_tls(clean_tls_etcd: TlsEtcd, extra: dict[str, str]) -> None:
    done = run_dnssync("--once", "--owner-id", "tls", "--policy", "sync", "--from-manifests", EXAMPLES,
                       env={**clean_tls_etcd.client_env(), **extra})
    assert done.returncode == 0, done.stderr
    client = EtcdClient(EtcdSettings.from_env(env=clean_tls_etcd.client_env()))
    try:
        _, kvs = await read_prefix(client, b"/skydns/org/example/web/")
    finally:
        await client.close()
    records = [decode(kv.value, kv.key.decode()) for kv in kvs]
    assert [(r.host, r.owner) for r in records] == [("203.0.113.10", "tls")]


def test_the_resolver_answers_from_etcd_over_tls(clean_tls_etcd: TlsEtcd, tmp_path: Path) -> None:
    done = run_dnssync("--once", "--owner-id", "tls", "--policy", "sync", "--from-manifests", EXAMPLES,
                       env=clean_tls_etcd.client_env())
    assert done.returncode == 0, done.stderr
    dns_port, http_port = free_dns_port(), free_dns_port()
    resolver = Process(["--zone", "example.org.", "--listen", f"127.0.0.1:{dns_port}", "--http-listen",
                        f"127.0.0.1:{http_port}"], tmp_path / "resolver.log", env=clean_tls_etcd.client_env())
    try:
        wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 20, "the resolver to be ready over TLS")
        assert ask(dns_port, "web.example.org.", "A") == (
            "NOERROR", {("web.example.org.", "A", "203.0.113.10")})
    finally:
        assert resolver.stop() == 0, (tmp_path / "resolver.log").read_text()
