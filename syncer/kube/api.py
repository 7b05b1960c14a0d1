"""The Kubernetes API through ``kubernetes.aio``: configuration, auth and raw HTTP for paged lists and watches.

Configuration (:func:`load_configuration`): ``--kubeconfig PATH``; else the in-cluster service account; else
``$KUBECONFIG`` (its first file) or ``~/.kube/config``. A config that can't be loaded raises
:class:`KubeConfigError` with one line naming where it looked (exit 2).

:class:`KubeClient` builds each request with the client's ``ApiClient.param_serialize`` (its credentials, token
refresh and TLS) and sends it with ``call_api`` - not through the generated API methods, whose argument
validation is built on first use at a cost of about a second per method - and reads the aiohttp response itself;
it never builds model classes:

* ``list_page`` is one page of a LIST (``limit`` + ``continue``), decoded as a plain dict in the API's JSON
  shape (the items carry no ``kind``/``apiVersion``, as the server sends them);
* ``watch`` is a WATCH with ``allowWatchBookmarks=true`` and ``timeoutSeconds``: :class:`WatchStream` yields
  one decoded JSON line (``{"type", "object"}``) at a time. Lines are split on ``\\n`` by us, never by a
  ``readline`` limit, so an object of any size (megabytes) arrives whole; ``buffered()`` says whether a
  complete line is already waiting, so a caller can hand over a burst in one batch.

Errors: a non-2xx answer raises :class:`ApiStatusError` (status, reason, the server's message and its
``Retry-After``); a line that is not a JSON object raises :class:`KubeProtocolError`; connection errors and
timeouts are aiohttp's and asyncio's own. :func:`is_outage` tells the ones worth retrying (connection errors,
timeouts, 5xx, 429) from the rest; :func:`is_access_denied` picks out 401/403. The client never retries by
itself (``retries`` stays unset): the caller's backoff does.

The lists name namespaced kinds in one namespace when ``namespace`` is given, else across all namespaces;
cluster-scoped kinds (Node) ignore it. ``--once`` lists through :func:`syncer.kube.reflector.list_snapshot`.

The one write is ``update_status``: a PUT of an object's ``/status`` subresource (a DNSEndpoint's
``status.observedGeneration``, as ExternalDNS writes it).
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes.aio import client as k8s
from kubernetes.aio import config as k8s_config
from kubernetes.aio.config.config_exception import ConfigException

from syncer.model import KINDS

PAGE = 500
REQUEST_TIMEOUT = 60.0  # one list page, connection included

Obj = dict[str, Any]

# list/watch parameters as the API spells them
_QUERY_NAMES = {"allow_watch_bookmarks": "allowWatchBookmarks", "_continue": "continue",
                "field_selector": "fieldSelector", "label_selector": "labelSelector", "limit": "limit",
                "resource_version": "resourceVersion", "timeout_seconds": "timeoutSeconds", "watch": "watch"}


def resource_path(kind: str, namespace: str | None) -> str:
    """``/api/v1/services``, ``/apis/networking.k8s.io/v1/namespaces/ns/ingresses``: the list/watch URL path."""
    spec = KINDS.get(kind)
    if spec is None:
        raise ValueError(f"unknown kind {kind!r}; known: {sorted(KINDS)}")
    base = "/api/v1" if spec.api_version == "v1" else f"/apis/{spec.api_version}"
    scope = f"/namespaces/{namespace}" if namespace and spec.namespaced else ""
    return f"{base}{scope}/{spec.field}"


class KubeConfigError(ValueError):
    """No usable Kubernetes client configuration (exit 2)."""


class KubeApiError(RuntimeError):
    """The API server could not be read (exit 1)."""


class ApiStatusError(KubeApiError):
    """A non-2xx answer: ``status``, ``reason``, the server's ``message``, ``retry_after`` seconds if it asked."""

    def __init__(self, status: int, reason: str, message: str, *, retry_after: float | None = None,
                 verb: str = "", kind: str = "") -> None:
        self.status, self.reason, self.message = status, reason, message
        self.retry_after, self.verb, self.kind = retry_after, verb, kind
        super().__init__(f"HTTP {status} {reason}: {message}" if message else f"HTTP {status} {reason}")


class KubeProtocolError(KubeApiError):
    """The server sent something that is not the API's JSON (a truncated or garbled answer)."""


# ---------------------------------------------------------------------------------------------- configuration


def default_kubeconfig() -> tuple[str, str]:
    """The kubeconfig file used without ``--kubeconfig``, and how to name it in a message."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    if first:
        return first, f"$KUBECONFIG ({first})"
    path = str(Path.home() / ".kube" / "config")
    return path, path


async def load_configuration(kubeconfig: str | None) -> k8s.Configuration:
    """The client configuration (see the module docstring); :class:`KubeConfigError` naming where it looked."""
    cfg = k8s.Configuration()
    if kubeconfig:
        path, where = kubeconfig, f"--kubeconfig {kubeconfig}"
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)
            return _finish(cfg)
        except ConfigException:
            pass
        path, name = default_kubeconfig()
        where = f"in-cluster service account and {name}"
    try:
        if not os.path.isfile(path):  # the loader would only log a warning and go on with an empty config
            raise ConfigException(f"no such file: {path}")
        await k8s_config.load_kube_config(config_file=path, client_configuration=cfg, persist_config=False)
    except (ConfigException, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise KubeConfigError(f"{where}: cannot load a Kubernetes client configuration: {message}") from None
    return _finish(cfg)


def _finish(cfg: k8s.Configuration) -> k8s.Configuration:
    cfg.retries = None  # our own backoff does the retrying
    cfg.client_go_retries = False
    return cfg


# ---------------------------------------------------------------------------------------------- errors


def is_outage(exc: BaseException) -> bool:
    """An outage worth retrying: connection errors and cuts, timeouts, 5xx, 429, a garbled answer."""
    if isinstance(exc, ApiStatusError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError | KubeProtocolError)


def is_access_denied(exc: BaseException) -> bool:
    """401/403: our credentials or RBAC, which an operator may fix while we run."""
    return isinstance(exc, ApiStatusError) and exc.status in (401, 403)


def describe(exc: BaseException) -> str:
    if isinstance(exc, ApiStatusError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _json_object(response: aiohttp.ClientResponse, verb: str, kind: str) -> Obj:
    """A 2xx answer's JSON object; a non-2xx answer raises :class:`ApiStatusError`, anything else that is not a
    JSON object :class:`KubeProtocolError`."""
    if not 200 <= response.status < 300:
        raise await _status_error(response, verb, kind)
    try:
        body = await response.read()
    finally:
        response.release()
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise KubeProtocolError(f"{verb} {kind}: the answer is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise KubeProtocolError(f"{verb} {kind}: the answer is not an object")
    return doc


def _retry_after(headers: Any, status: Obj) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    for value in (raw, (status.get("details") or {}).get("retryAfterSeconds")):
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if seconds >= 0:
            return seconds
    return None


async def _status_error(response: aiohttp.ClientResponse, verb: str, kind: str) -> ApiStatusError:
    """The error for a non-2xx answer, from its ``Status`` body when it has one."""
    try:
        body = await response.read()
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    finally:
        response.release()
    try:
        status = json.loads(body) if body else {}
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    message = status.get("message") or " ".join(body.decode(errors="replace").split())[:200]
    return ApiStatusError(response.status, str(status.get("reason") or response.reason or ""), str(message),
                          retry_after=_retry_after(response.headers, status), verb=verb, kind=kind)


# ---------------------------------------------------------------------------------------------- watch stream


class WatchStream:
    """One watch: ``async with`` opens it (raising :class:`ApiStatusError` on a non-2xx answer) and closes it;
    ``async for`` yields each decoded line. Iterating without ``async with`` opens it lazily; then call
    :meth:`aclose`."""

    def __init__(self, send: Callable[[], Awaitable[aiohttp.ClientResponse]], kind: str) -> None:
        self._send = send
        self._kind = kind
        self._response: aiohttp.ClientResponse | None = None
        self._lines: deque[bytes] = deque()  # complete lines not handed out yet
        self._partial: list[bytes] = []  # the pieces of the line being received
        self._eof = False

    async def open(self) -> WatchStream:
        if self._response is None:
            response = await self._send()
            if not 200 <= response.status < 300:
                raise await _status_error(response, "watch", self._kind)
            self._response = response
        return self

    async def aclose(self) -> None:
        if self._response is not None:
            self._response.close()  # not release(): an unfinished stream's connection can't be reused

    async def __aenter__(self) -> WatchStream:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> WatchStream:
        return self

    def buffered(self) -> bool:
        """A complete line is waiting: the next ``__anext__`` returns without I/O."""
        return bool(self._lines)

    async def __anext__(self) -> Obj:
        while True:
            while self._lines:
                line = self._lines.popleft()
                if line.strip():
                    return self._decode(line)
            if self._eof:
                raise StopAsyncIteration
            await self._fill()

    async def _fill(self) -> None:
        if self._response is None:
            await self.open()
        assert self._response is not None
        chunk = await self._response.content.readany()
        if not chunk:
            self._eof = True
            if self._partial:  # a last line without its newline
                self._lines.append(b"".join(self._partial))
                self._partial = []
            return
        pieces = chunk.split(b"\n")
        if len(pieces) == 1:
            self._partial.append(chunk)
            return
        self._lines.append(b"".join([*self._partial, pieces[0]]))
        self._lines.extend(pieces[1:-1])
        self._partial = [pieces[-1]] if pieces[-1] else []

    def _decode(self, line: bytes) -> Obj:
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise KubeProtocolError(f"watch {self._kind}: a line that is not JSON ({len(line)} bytes): {exc}") from None
        if not isinstance(event, dict):
            raise KubeProtocolError(f"watch {self._kind}: a line that is not a JSON object")
        return event


# ---------------------------------------------------------------------------------------------- client


class KubeClient:
    """Raw lists and watches of the kinds in :data:`syncer.model.KINDS`; ``await KubeClient.create(...)``."""

    def __init__(self, configuration: k8s.Configuration, *, request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.configuration = configuration
        self.server: str = configuration.host
        self.request_timeout = request_timeout
        self.api_client = k8s.ApiClient(configuration)

    @classmethod
    async def create(cls, kubeconfig: str | None = None, *, request_timeout: float = REQUEST_TIMEOUT) -> KubeClient:
        return cls(await load_configuration(kubeconfig), request_timeout=request_timeout)

    async def close(self) -> None:
        await self.api_client.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(self, kind: str, namespace: str | None, timeout: float, **params: Any) -> aiohttp.ClientResponse:
        """One GET through the client's own configuration, auth and HTTP session (its request signing and token
        refresh), but not its generated API methods: their argument validation is built on first use and costs
        about a second per method at start-up, for nothing a list or watch needs."""
        query = [(_QUERY_NAMES[k], v) for k, v in params.items() if v not in (None, "")]
        method, url, headers, body, post = await self.api_client.param_serialize(
            method="GET", resource_path=resource_path(kind, namespace), query_params=query,
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        response = await self.api_client.call_api(method, url, headers, body, post, _request_timeout=float(timeout),
                                                  _preload_content=False)
        return response.response

    async def list_page(self, kind: str, namespace: str | None = None, *, label_selector: str = "",
                        field_selector: str = "", limit: int = PAGE, continue_token: str | None = None) -> Obj:
        """One page of a LIST, as the server's JSON (``metadata.resourceVersion``/``continue``, ``items``)."""
        response = await self._send(kind, namespace, self.request_timeout, label_selector=label_selector,
                                    field_selector=field_selector, limit=limit, _continue=continue_token)
        doc = await _json_object(response, "list", kind)
        if not isinstance(doc.get("items", []), list):
            raise KubeProtocolError(f"list {kind}: the answer is not a list object")
        return doc

    async def update_status(self, kind: str, namespace: str | None, name: str, body: Obj) -> Obj:
        """PUT ``body`` to the object's ``/status`` subresource (RBAC verb ``update`` on ``<plural>/status``);
        returns the stored object. A stale ``metadata.resourceVersion`` in ``body`` is a 409
        :class:`ApiStatusError`, like every other non-2xx answer."""
        path = f"{resource_path(kind, namespace)}/{name}/status"
        method, url, headers, data, post = await self.api_client.param_serialize(
            method="PUT", resource_path=path, body=body, auth_settings=["BearerToken"],
            header_params={"Accept": "application/json", "Content-Type": "application/json"})
        rest = await self.api_client.call_api(method, url, headers, data, post,
                                              _request_timeout=float(self.request_timeout), _preload_content=False)
        return await _json_object(rest.response, "update", kind)

    def watch(self, kind: str, namespace: str | None = None, *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "", timeout_seconds: int = 300,
              read_timeout: float | None = None) -> WatchStream:
        """A WATCH from ``resource_version`` with bookmarks; the server ends it after ``timeout_seconds`` and the
        client gives up on the whole request after ``read_timeout`` (default: 30 s more)."""
        deadline = read_timeout if read_timeout is not None else timeout_seconds + 30.0

        def send() -> Awaitable[aiohttp.ClientResponse]:
            return self._send(kind, namespace, deadline, watch=True, allow_watch_bookmarks=True,
                              resource_version=resource_version, label_selector=label_selector,
                              field_selector=field_selector, timeout_seconds=int(timeout_seconds))

        return WatchStream(send, kind)
