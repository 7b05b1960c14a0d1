"""A tiny HTTP/1.1 server for probes and metrics: ``/healthz``, ``/readyz`` and Prometheus ``/metrics``.

Standard library only, one request per connection (``Connection: close``), GET and HEAD. Reusable by any
process: give it ``ready()`` (readiness: 200 or 503) and ``health()`` (liveness: ``(ok, details)``; the details
are returned as JSON so a degraded-but-serving state can be read by humans and monitors alike).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = structlog.get_logger("skydns.http")

MAX_REQUEST_HEAD = 8192
READ_TIMEOUT = 5.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}

Health = Callable[[], tuple[bool, dict[str, Any]]]


def _json(body: dict[str, Any]) -> tuple[bytes, str]:
    return (json.dumps(body, sort_keys=True) + "\n").encode(), "application/json"


class HealthServer:
    """``await HealthServer(host, port, ready, health).start()``; ``.port`` is the bound port (0 picks one)."""

    def __init__(self, host: str, port: int, ready: Callable[[], bool], health: Health,
                 registry: CollectorRegistry = REGISTRY) -> None:
        self.host, self.port = host, port
        self._ready = ready
        self._health = health
        self._registry = registry
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` when the address cannot be bound."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True,
                                                  limit=MAX_REQUEST_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("http_listening", address=f"{self.host}:{self.port}", paths="/healthz,/readyz,/metrics")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def route(self, method: str, path: str) -> tuple[int, bytes, str]:
        """``(status, body, content type)`` for one request: the pure part, testable without sockets."""
        path = path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, b"method not allowed\n", "text/plain; charset=utf-8"
        if path == "/healthz":
            ok, details = self._health()
            body, ctype = _json({"status": "ok" if ok else "failing", **details})
            return (200 if ok else 503), body, ctype
        if path == "/readyz":
            ready = self._ready()
            body, ctype = _json({"status": "ready" if ready else "not ready"})
            return (200 if ready else 503), body, ctype
        if path == "/metrics":
            return 200, generate_latest(self._registry), CONTENT_TYPE_LATEST
        return 404, b"not found\n", "text/plain; charset=utf-8"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            if len(head) > MAX_REQUEST_HEAD:
                return
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                status, body, ctype = 400, b"bad request\n", "text/plain; charset=utf-8"
                method = "GET"
            else:
                method = parts[0]
                status, body, ctype = self.route(method, parts[1])
            head_out = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(head_out if method == "HEAD" else head_out + body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        except Exception as exc:  # a probe must never take the process down
            log.warning("http_request_failed", error=repr(exc))
        finally:
            writer.close()
