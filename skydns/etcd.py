"""The etcd connection both processes share: settings as ExternalDNS reads them, and a safe aetcd client.

This is the one I/O helper in ``skydns`` (the format modules stay pure). Settings:

* endpoints from the ``--etcd-endpoints`` flag, else ``ETCD_URLS`` (comma-separated), else
  ``http://localhost:2379``; every URL must start with ``http://`` or ``https://``;
* TLS when the first URL is ``https://``: ``ETCD_CA_FILE`` (else gRPC's built-in roots), ``ETCD_CERT_FILE`` +
  ``ETCD_KEY_FILE`` (both or neither: the client certificate), ``ETCD_TLS_SERVER_NAME`` (the name checked against
  the server's certificate and sent as SNI instead of the URL's host), ``ETCD_TLS_INSECURE`` (see below);
* auth: ``ETCD_USERNAME`` + ``ETCD_PASSWORD`` (both or neither).

The client fixes the traps of aetcd 1.0: it has no TLS (we build the secure channel ourselves), gRPC's 4 MiB
receive limit (raised), no keepalive (set, including ``grpc.http2.ping_timeout_ms``, so a frozen etcd breaks a
watch within ~15 s instead of hanging it), and its range API cannot read at a revision or page (we call the raw
``Range`` RPC in :func:`read_prefix`).

``ETCD_TLS_INSECURE`` (``true``/``yes``/``1``). ExternalDNS (Go) sets ``InsecureSkipVerify``; gRPC's Python API
cannot turn certificate verification off, it can only choose the trusted roots and the checked name. So on each
:meth:`EtcdClient.connect` the client first reads, without verifying it, the certificate each endpoint presents
(a plain TLS handshake, with the client certificate if one is set), then builds the channel trusting those
certificates (plus ``ETCD_CA_FILE``) and checking a name they carry. Effect: any server certificate is accepted
(unknown CA, self-signed, a name that matches neither the URL nor ``ETCD_TLS_SERVER_NAME``), but it is pinned
for the life of that channel: a certificate swapped after ``connect()`` is refused until the client is closed
and connected again (the resolver does that when it keeps failing). With several endpoints the checked name is
one that all their certificates carry, else the first one's (members whose certificates lack it are refused).
The traffic is still encrypted; the server is not authenticated - use it only for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aetcd
import grpc
from aetcd import exceptions as etcd_errors
from aetcd import rpc, watcher
from aetcd.utils import prefix_range_end

from skydns.settings import parse_bool

DEFAULT_URL = "http://localhost:2379"

CHANNEL_OPTIONS: dict[str, Any] = {
    "grpc.max_receive_message_length": 256 << 20,
    "grpc.max_send_message_length": 64 << 20,
    "grpc.keepalive_time_ms": 10000,  # above etcd's 5 s minimum, or it answers too_many_pings
    "grpc.keepalive_timeout_ms": 3000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.max_pings_without_data": 0,
    "grpc.http2.min_time_between_pings_ms": 1000,
    "grpc.http2.min_ping_interval_without_data_ms": 1000,
    "grpc.http2.ping_timeout_ms": 3000,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2000,
}


class EtcdConfigError(ValueError):
    """A bad etcd setting; the message names the variable or flag."""


@dataclass(frozen=True)
class EtcdSettings:
    endpoints: tuple[str, ...]
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def secure(self) -> bool:
        return self.endpoints[0].startswith("https://")

    @classmethod
    def from_env(cls, endpoints: str | None = None, env: Mapping[str, str] | None = None) -> EtcdSettings:
        """Settings from the flag value (if given) and the ``ETCD_*`` variables."""
        env = os.environ if env is None else env
        source = "--etcd-endpoints" if endpoints else "ETCD_URLS"
        raw = endpoints or env.get("ETCD_URLS") or DEFAULT_URL
        urls = tuple(u.strip() for u in raw.split(",") if u.strip())
        if not urls:
            raise EtcdConfigError(f"{source}: no etcd URL given")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise EtcdConfigError(f"{source}: etcd URLs must start with either http:// or https://, got {url!r}")
            try:
                parts.port  # noqa: B018 - validates the port
            except ValueError:
                raise EtcdConfigError(f"{source}: bad port in {url!r}") from None

        def get(name: str) -> str | None:
            return env.get(name) or None

        cert, key = get("ETCD_CERT_FILE"), get("ETCD_KEY_FILE")
        if bool(cert) != bool(key):
            raise EtcdConfigError("ETCD_CERT_FILE and ETCD_KEY_FILE must be set together")
        user, password = get("ETCD_USERNAME"), get("ETCD_PASSWORD")
        if bool(user) != bool(password):
            raise EtcdConfigError("ETCD_USERNAME and ETCD_PASSWORD must be set together")
        for name in ("ETCD_CA_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE"):
            path = get(name)
            if path and not os.path.isfile(path):
                raise EtcdConfigError(f"{name}: no such file {path!r}")
        return cls(
            endpoints=urls, ca_file=get("ETCD_CA_FILE"), cert_file=cert, key_file=key,
            server_name=get("ETCD_TLS_SERVER_NAME"),
            insecure=_insecure(env.get("ETCD_TLS_INSECURE", "")),
            username=user, password=password,
        )

    def grpc_target(self) -> str:
        """One target for all endpoints when they are IP literals (gRPC fails over between them), else the first."""
        hosts = [urlsplit(u) for u in self.endpoints]
        addrs = [f"{h.hostname}:{h.port or 2379}" for h in hosts]
        if len(addrs) > 1 and all(_is_ipv4(h.hostname or "") for h in hosts):
            return "ipv4:" + ",".join(addrs)
        return addrs[0]


def _insecure(raw: str) -> bool:
    try:
        return parse_bool(raw)
    except ValueError:
        raise EtcdConfigError(f"ETCD_TLS_INSECURE: expected true or false, got {raw!r}") from None


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def _certificate_names(cert: dict[str, Any]) -> list[str]:
    """The names a decoded certificate (``SSLSocket.getpeercert()``) carries: DNS and IP SANs, else its CN."""
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    if not names:
        names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return names


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


class EtcdClient(aetcd.Client):
    """aetcd's client with TLS, several endpoints and our channel options."""

    def __init__(self, settings: EtcdSettings, timeout: int | None = 5) -> None:
        first = urlsplit(settings.endpoints[0])
        options = dict(CHANNEL_OPTIONS)
        if settings.server_name:
            options["grpc.ssl_target_name_override"] = settings.server_name
        super().__init__(host=first.hostname or "localhost", port=first.port or 2379,
                         username=settings.username, password=settings.password,
                         timeout=timeout, options=options)
        self.settings = settings
        self._is_connecting: bool = False
        self._pinned: tuple[bytes, str] | None = None  # ETCD_TLS_INSECURE: (PEM certificates, name to check)

    async def connect(self) -> None:
        """aetcd's connect(), but over our channel (TLS, several endpoints); a no-op once connected."""
        if self._connected.is_set():
            return
        if self._is_connecting:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            async with asyncio.timeout(self._connect_wait_timeout):
                await self._connected.wait()
            return
        self._is_connecting = True
        try:
            if self.settings.secure and self.settings.insecure:
                self._pinned = await self._presented_certificates()
            self.channel = self._channel()
            if self._username is not None:
                self.auth_stub = rpc.AuthStub(self.channel)
                req = rpc.AuthenticateRequest(name=self._username, password=self._password)
                try:
                    resp = await self.auth_stub.Authenticate(req, timeout=self._timeout)
                except rpc.AioRpcError as exc:
                    etcd_errors._handle_exception(exc)
                self.metadata = (("token", resp.token),)
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                            metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False

    def _channel(self) -> grpc.aio.Channel:
        target = self.settings.grpc_target()
        opts = [(k, v) for k, v in self._options.items() if k != "grpc.ssl_target_name_override"]
        if not self.settings.secure:
            return grpc.aio.insecure_channel(target, options=opts)
        roots = _read(self.settings.ca_file)
        name = self.settings.server_name
        if self.settings.insecure and self._pinned is not None:
            pinned, name = self._pinned
            roots = (roots + b"\n" if roots else b"") + pinned
        if name:
            opts.append(("grpc.ssl_target_name_override", name))
        creds = grpc.ssl_channel_credentials(
            root_certificates=roots,
            private_key=_read(self.settings.key_file),
            certificate_chain=_read(self.settings.cert_file),
        )
        return grpc.aio.secure_channel(target, creds, options=opts)

    def _channel_addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs the channel dials: all endpoints when gRPC gets them all, else the first."""
        urls = [urlsplit(u) for u in self.settings.endpoints]
        if not self.settings.grpc_target().startswith("ipv4:"):
            urls = urls[:1]
        return [(u.hostname or "localhost", u.port or 2379) for u in urls]

    def _probe_context(self, trusted: bytes | None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        if trusted is None:
            context.verify_mode = ssl.CERT_NONE
        else:  # trust exactly this certificate, so that Python decodes its names for us
            context.load_verify_locations(cadata=trusted.decode("ascii"))
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        if self.settings.cert_file and self.settings.key_file:
            context.load_cert_chain(self.settings.cert_file, self.settings.key_file)
        return context

    async def _handshake(self, host: str, port: int, context: ssl.SSLContext) -> tuple[bytes | None, dict[str, Any]]:
        """One TLS handshake: the server's certificate as DER, and decoded (empty unless it was verified)."""
        _, writer = await asyncio.open_connection(host, port, ssl=context,
                                                  server_hostname=self.settings.server_name or host)
        try:
            tls = writer.get_extra_info("ssl_object")
            return tls.getpeercert(True), dict(tls.getpeercert() or {})
        finally:
            writer.close()
            # The server may reset a connection that sent no request; the certificate is all we wanted.
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _presented_certificates(self) -> tuple[bytes, str]:
        """ETCD_TLS_INSECURE: the unverified certificates the endpoints present (PEM) and a name to check.

        Raises ``ConnectionFailedError`` when no endpoint completes a TLS handshake.
        """
        pems: list[bytes] = []
        names: list[list[str]] = []
        errors: list[str] = []
        for host, port in self._channel_addresses():
            try:
                async with asyncio.timeout(self._timeout or 5):
                    leaf, _ = await self._handshake(host, port, self._probe_context(None))
                    if not leaf:
                        errors.append(f"{host}:{port}: presented no certificate")
                        continue
                    pem = ssl.DER_cert_to_PEM_cert(leaf).encode("ascii")
                    _, decoded = await self._handshake(host, port, self._probe_context(pem))
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                errors.append(f"{host}:{port}: {exc!r}")
                continue
            found = _certificate_names(decoded)
            if found:
                pems.append(pem)
                names.append(found)
            else:
                errors.append(f"{host}:{port}: its certificate carries no name")
        if not pems:
            raise etcd_errors.ConnectionFailedError(
                "ETCD_TLS_INSECURE: no etcd endpoint presented a TLS certificate: " + "; ".join(errors))
        common = [n for n in names[0] if all(n in other for other in names[1:])]
        return b"".join(pems), (common or names[0])[0]


async def read_prefix(client: aetcd.Client, prefix: bytes, revision: int = 0,
                      page: int = 2000) -> tuple[int, list[Any]]:
    """Every key-value under ``prefix`` at one revision, read in pages.

    Returns ``(revision, kvs)``; ``kvs`` are etcd ``KeyValue`` messages (``key``, ``value``, ``mod_revision``,
    ``lease``...). With ``revision=0`` the revision of the first page is used for the rest.
    """
    await client.connect()
    assert client.kvstub is not None
    end = prefix_range_end(prefix)
    start, out = prefix, []
    while True:
        req = rpc.RangeRequest(key=start, range_end=end, revision=revision, limit=page,
                               sort_order=rpc.RangeRequest.NONE)
        resp = await client.kvstub.Range(req, timeout=client._timeout, metadata=client.metadata)
        if revision == 0:
            revision = resp.header.revision
        out.extend(resp.kvs)
        if not resp.more or not resp.kvs:
            return revision, out
        start = resp.kvs[-1].key + b"\0"


# -- transactions through the raw Txn RPC: aetcd's transaction() does not return the revision it committed at,
# which a writer needs to know when a watcher of the same keys has seen its own write.

def compare_mod(key: bytes, mod_revision: int) -> Any:
    """``mod_revision(key) == mod_revision`` (the key is unchanged since it was read)."""
    return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=key, mod_revision=mod_revision)


def compare_absent(key: bytes) -> Any:
    """``version(key) == 0`` (the key does not exist)."""
    return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.VERSION, key=key, version=0)


def compare_created(key: bytes, create_revision: int) -> Any:
    """``create_revision(key) == create_revision`` (the same key, not deleted and re-created since)."""
    return rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=key,
                       create_revision=create_revision)


def put_op(key: bytes, value: bytes, lease: int = 0) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))


def delete_op(key: bytes) -> Any:
    """Deletes exactly ``key`` (never a range)."""
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))


def get_op(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


async def txn(client: aetcd.Client, compare: list[Any], success: list[Any],
              failure: list[Any] | None = None) -> tuple[bool, int, Any]:
    """One transaction: ``(succeeded, revision, response)``; ``revision`` is the store revision after it (the
    revision of its writes when it succeeded and wrote)."""
    await client.connect()
    assert client.kvstub is not None
    request = rpc.TxnRequest(compare=compare, success=success, failure=failure or [])
    response = await client.kvstub.Txn(request, timeout=client._timeout, metadata=client.metadata)
    return bool(response.succeeded), int(response.header.revision), response
