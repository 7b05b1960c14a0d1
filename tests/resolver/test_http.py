"""The probes/metrics HTTP server over a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from skydns.http import HealthServer


class Flags:
    def __init__(self) -> None:
        self.ready = False
        self.details: dict[str, Any] = {"etcd": "unreachable", "detail": "serving last good state"}


@pytest.fixture
async def probe() -> AsyncIterator[tuple[HealthServer, Flags]]:
    flags = Flags()
    server = HealthServer("127.0.0.1", 0, ready=lambda: flags.ready, health=lambda: (True, flags.details))
    await server.start()
    try:
        yield server, flags
    finally:
        await server.close()


async def http(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def test_readyz_follows_readiness(probe: tuple[HealthServer, Flags]) -> None:
    server, flags = probe
    status, _, body = await http(server.port, get("/readyz"))
    assert status == 503 and json.loads(body)["status"] == "not ready"
    flags.ready = True
    status, _, body = await http(server.port, get("/readyz"))
    assert status == 200 and json.loads(body)["status"] == "ready"


async def test_healthz_is_ok_and_says_why_when_degraded(probe: tuple[HealthServer, Flags]) -> None:
    server, _ = probe
    status, headers, body = await http(server.port, get("/healthz?verbose=1"))
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "etcd": "unreachable", "detail": "serving last good state"}
    assert int(headers["Content-Length"]) == len(body)


async def test_metrics_are_prometheus_text(probe: tuple[HealthServer, Flags]) -> None:
    server, _ = probe
    status, headers, body = await http(server.port, get("/metrics"))
    assert status == 200 and headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert b"# TYPE python_info gauge" in body or b"# TYPE process_" in body


async def test_head_unknown_paths_methods_and_garbage(probe: tuple[HealthServer, Flags]) -> None:
    server, _ = probe
    status, headers, body = await http(server.port, get("/healthz", "HEAD"))
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert (await http(server.port, get("/nope")))[0] == 404
    assert (await http(server.port, get("/healthz", "POST")))[0] == 405
    assert (await http(server.port, b"\x00\x01garbage\r\n\r\n"))[0] == 400
    # a client that sends an endless header is cut off, and the server goes on serving
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 20000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert (await http(server.port, get("/healthz")))[0] == 200
