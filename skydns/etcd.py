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

Several endpoints (an etcd cluster: ``--etcd-endpoints a,b,c``). Rules, as etcd's members fail:

* **one channel, the members in order**: IP endpoints go into one gRPC target (``ipv4:a,b,c``; ``ipv6:`` when all are
  IPv6) under gRPC's ``pick_first`` policy: one connection at a time, to the first member that completes the HTTP/2
  handshake; a member that is down (refused, reset) is skipped, and a member that accepts TCP but never answers (a
  frozen process: the kernel still accepts) is passed over once the next address is tried, so a *new* channel never
  settles on a frozen member. Endpoints given as DNS names cannot share a target: the channel dials one of them
  at a time. ``round_robin`` is not used: it would keep sending a share of the calls to a frozen member, whose
  connection stays "ready" until the keepalive notices;
* **a call that runs into its deadline makes its channel suspect**: a frozen member keeps its TCP connection open,
  so ``pick_first`` would send every following call to it until the keepalive breaks the connection (up to
  keepalive time + ping timeout). A unary call that ends in ``DEADLINE_EXCEEDED`` (or etcd's own "context deadline
  exceeded") on the current channel, or, when the channel dials one endpoint of several, in ``UNAVAILABLE``, marks
  it; the next call (every call connects first) goes through a new channel whose endpoint order starts one further
  on. So no call waits longer than the client timeout, and the one after a timed-out call is sent to another member.
  Only the current channel's calls count (calls still finishing on a replaced one do not replace again), and one
  endpoint alone is never replaced this way;
* **a replaced channel is not closed under its callers**: closing a gRPC channel cancels its calls, which their
  callers see as ``asyncio.CancelledError`` - indistinguishable from their own task being cancelled. The replaced
  channel stays open for the calls and streams still on it (a watch keeps running until it breaks by itself) and is
  closed when the client is closed, or once several newer channels replaced it; streams cut then see a
  cancellation that is not their task's (:func:`cut_by_close` tells them apart);
* **retries are ours**, not gRPC's: a retry policy in the channel's service config would resend non-idempotent
  transactions behind the caller's back. The callers retry what :func:`is_transient_error` calls transient (the
  syncer with a budget, the mirror for ever), and every write is a guarded transaction, so a retry after a lost
  answer fails its compare instead of writing twice. gRPC's transparent retries (requests that never reached a
  server) stay on;
* **transient errors**: connection failures and timeouts, ``UNAVAILABLE`` (etcd's "no leader", "leader changed",
  "request timed out", "server stopped", "unhealthy cluster" are all ``UNAVAILABLE``), ``DEADLINE_EXCEEDED``, and
  the few errors etcd sends as ``UNKNOWN``/``RESOURCE_EXHAUSTED`` while it elects a leader or catches up
  (``TRANSIENT_DETAILS``). A full database or a refused credential is not transient.

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
    "grpc.lb_policy_name": "pick_first",  # one member at a time, in order (see the module docstring)
}
RETIRED_CHANNELS_KEPT = 4  # replaced channels left open for their callers; older ones are closed
#: what etcd answers as UNKNOWN or RESOURCE_EXHAUSTED when nothing is wrong but timing: a deadline it noticed
#: before gRPC did, a proposal dropped while the cluster has no leader, a member applying a backlog
TRANSIENT_DETAILS = ("context deadline exceeded", "raft proposal dropped", "etcdserver: too many requests")
_SOFT_CODES = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _rpc_error(exc: BaseException) -> grpc.aio.AioRpcError | None:
    """The gRPC error ``exc`` is, or that aetcd wrapped in its own exception ``exc`` (nothing else is unwrapped:
    an error that merely was caused by an outage, such as a retry budget running out, is not one itself)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc
    if isinstance(exc, etcd_errors.ClientError) and isinstance(exc.__cause__, grpc.aio.AioRpcError):
        return exc.__cause__
    return None


def is_transient_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an etcd outage or election (retry it) rather than a refusal or a bug."""
    if isinstance(exc, etcd_errors.ConnectionFailedError | etcd_errors.ConnectionTimeoutError
                  | TimeoutError | ConnectionError):
        return True
    error = _rpc_error(exc)
    if error is None:
        return False
    code = error.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return True
    return code in _SOFT_CODES and (error.details() or "") in TRANSIENT_DETAILS


def is_stall(exc: BaseException) -> bool:
    """Whether a call ran into its deadline (gRPC's, or etcd's "context deadline exceeded")."""
    error = _rpc_error(exc)
    if error is None:
        return False
    return error.code() == grpc.StatusCode.DEADLINE_EXCEEDED or (
        error.code() == grpc.StatusCode.UNKNOWN and error.details() == "context deadline exceeded")


def cut_by_close() -> bool:
    """Inside ``except asyncio.CancelledError``: True when the cancellation is not the current task's own - gRPC
    cancelled the call because its channel was closed - so the caller may treat it as a broken connection."""
    task = asyncio.current_task()
    return task is not None and not task.cancelling()


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

    def grpc_target(self, start: int = 0) -> str:
        """One target for all endpoints when they are IP literals of one family (gRPC fails over between them, in
        order from ``start``), else the endpoint at ``start`` alone."""
        hosts = [urlsplit(u) for u in self.endpoints]
        start %= len(hosts)
        hosts = hosts[start:] + hosts[:start]
        if len(hosts) > 1 and all(_is_ipv4(h.hostname or "") for h in hosts):
            return "ipv4:" + ",".join(f"{h.hostname}:{h.port or 2379}" for h in hosts)
        if len(hosts) > 1 and all(_is_ipv6(h.hostname or "") for h in hosts):
            return "ipv6:" + ",".join(f"[{h.hostname}]:{h.port or 2379}" for h in hosts)
        first = hosts[0]
        host = f"[{first.hostname}]" if _is_ipv6(first.hostname or "") else first.hostname
        return f"{host}:{first.port or 2379}"

    def shares_target(self) -> bool:
        """Whether one gRPC target holds every endpoint (else a channel dials one at a time)."""
        return len(self.endpoints) > 1 and "," in self.grpc_target()


def _insecure(raw: str) -> bool:
    try:
        return parse_bool(raw)
    except ValueError:
        raise EtcdConfigError(f"ETCD_TLS_INSECURE: expected true or false, got {raw!r}") from None


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def _is_ipv6(host: str) -> bool:
    return ":" in host


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


class _StallWatch(grpc.aio.UnaryUnaryClientInterceptor):
    """Tells the client when a unary call on the channel it watches stalled (see the module docstring)."""

    def __init__(self, client: EtcdClient, generation: int) -> None:
        self._client = client
        self._generation = generation

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        call = await continuation(client_call_details, request)
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            self._client._call_failed(self._generation, exc)
        return call


class EtcdClient(aetcd.Client):
    """aetcd's client with TLS, several endpoints, failover between them and our channel options."""

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
        self._start = 0  # index of the endpoint the channel tries first
        self._generation = 0  # of the current channel; its interceptor reports with it
        self._replace_wanted = False
        self._retired: list[tuple[grpc.aio.Channel, Any]] = []  # replaced (channel, aetcd watcher), oldest first
        self._closing: set[asyncio.Task[None]] = set()
        self.replacements = 0  # channels replaced (after stalls, or on request)

    async def connect(self) -> None:
        """aetcd's connect(), but over our channel (TLS, several endpoints); once connected, a no-op unless the
        channel is suspect, which is then replaced (see the module docstring)."""
        if self._connected.is_set():
            if self._replace_wanted and not self._is_connecting:
                await self.replace_channel()
            return
        if self._is_connecting:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            async with asyncio.timeout(self._connect_wait_timeout):
                await self._connected.wait()
            return
        self._is_connecting = True
        try:
            await self._open()
            self._connected.set()
        finally:
            self._is_connecting = False

    async def replace_channel(self) -> None:
        """Send the next calls through a new channel (authenticated again), whose endpoint order starts one further
        on; the old channel stays open for the calls and streams still on it (closed with the client, or once
        ``RETIRED_CHANNELS_KEPT`` newer ones replaced it). Not connected yet: just connects."""
        if not self._connected.is_set() or self._is_connecting:
            await self.connect()
            return
        self._replace_wanted = False
        old = (self.channel, self._watcher)
        self._start = (self._start + 1) % len(self.settings.endpoints)
        self._is_connecting = True
        try:
            await self._open()
        except BaseException:
            self._replace_wanted = True  # the old channel stays current; try again at the next call
            raise
        finally:
            self._is_connecting = False
        self.replacements += 1
        if not self._connected.is_set():  # closed while the new channel was being made
            self._retire(old)
            await self._close_retired()
            return
        self._retire(old)

    def _call_failed(self, generation: int, exc: grpc.aio.AioRpcError) -> None:
        """A unary call failed; a stall (or, dialling one endpoint of several, an unreachable one) on the current
        channel makes the next call replace it."""
        if generation != self._generation or len(self.settings.endpoints) < 2:
            return
        if is_stall(exc) or (exc.code() == grpc.StatusCode.UNAVAILABLE and not self.settings.shares_target()):
            self._replace_wanted = True

    async def _open(self) -> None:
        """A channel (and its stubs, and a token when authenticating) to the endpoints from ``_start`` on."""
        if self.settings.secure and self.settings.insecure:
            self._pinned = await self._presented_certificates()
        generation = self._generation + 1
        channel = self._channel(generation)
        metadata = None
        auth_stub = None
        if self._username is not None:
            auth_stub = rpc.AuthStub(channel)
            req = rpc.AuthenticateRequest(name=self._username, password=self._password)
            try:
                resp = await auth_stub.Authenticate(req, timeout=self._timeout)
            except rpc.AioRpcError as exc:
                await channel.close()
                etcd_errors._handle_exception(exc)
            except BaseException:
                await channel.close()
                raise
            metadata = (("token", resp.token),)
        self.channel, self.metadata, self.auth_stub = channel, metadata, auth_stub
        self.kvstub = rpc.KVStub(channel)
        self.clusterstub = rpc.ClusterStub(channel)
        self.leasestub = rpc.LeaseStub(channel)
        self.maintenancestub = rpc.MaintenanceStub(channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(channel), timeout=self._timeout, metadata=metadata)
        self._generation = generation

    def _retire(self, old: tuple[grpc.aio.Channel | None, Any]) -> None:
        channel, old_watcher = old
        if channel is None:
            return
        self._retired.append((channel, old_watcher))
        while len(self._retired) > RETIRED_CHANNELS_KEPT:
            oldest = self._retired.pop(0)
            task = asyncio.create_task(self._close_channel(*oldest), name="etcd-close-retired-channel")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_channel(channel: grpc.aio.Channel, old_watcher: Any) -> None:
        with contextlib.suppress(Exception):
            if old_watcher is not None:
                await old_watcher.shutdown()
            await channel.close()

    async def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for channel, old_watcher in retired:
            await self._close_channel(channel, old_watcher)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def close(self) -> None:
        """Close the channel and every replaced one still open."""
        await super().close()
        self._replace_wanted = False
        await self._close_retired()

    def _channel(self, generation: int) -> grpc.aio.Channel:
        target = self.settings.grpc_target(self._start)
        opts = [(k, v) for k, v in self._options.items() if k != "grpc.ssl_target_name_override"]
        interceptors = [_StallWatch(self, generation)]
        if not self.settings.secure:
            return grpc.aio.insecure_channel(target, options=opts, interceptors=interceptors)
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
        return grpc.aio.secure_channel(target, creds, options=opts, interceptors=interceptors)

    def _channel_addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs the channel dials: all endpoints when gRPC gets them all, else the current one."""
        urls = [urlsplit(u) for u in self.settings.endpoints]
        if not self.settings.shares_target():
            urls = [urls[self._start % len(urls)]]
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
