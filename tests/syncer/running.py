"""Running the syncer's continuous controller in a test, and polling what it does (with a deadline, no sleeps
as synchronisation); a real ``dnssync-resolver`` beside it (the ``resolver`` fixture in ``conftest.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from devtools.localetcd import LocalEtcd, free_port
from resolver.server import free_dns_port
from syncer.config import SyncConfig
from syncer.controller import Controller
from tests.processes import Process, ask, http_status, wait_until


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 15.0) -> Any:
    """Poll the coroutine ``check`` (every 10 ms, until ``timeout``) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


async def truthy(value: bool) -> bool:
    """A plain condition as the coroutine :func:`eventually` polls."""
    return value


@contextlib.asynccontextmanager
async def running(config: SyncConfig) -> AsyncIterator[Controller]:
    """The continuous controller, once its first full sync is written; stopped (exit 0) at the end."""
    ctl = Controller(config, out=io.StringIO())
    task = asyncio.create_task(ctl.run())

    async def ready() -> bool:
        if task.done():
            raise AssertionError(f"the controller stopped: {task.result()}")
        return ctl.ready()

    await eventually(ready, "the first full sync")
    try:
        yield ctl
    finally:
        ctl.stop()
        assert await asyncio.wait_for(task, 15) == 0


def resolver_process(etcd_server: LocalEtcd, tmp_path: Path) -> Iterator[int]:
    """A dnssync-resolver for example.org on free ports; yields its DNS port once /readyz says so."""
    dns_port, http_port = free_dns_port(), free_port()
    proc = Process(["--zone", "example.org.", "--etcd-endpoints", etcd_server.endpoint, "--listen",
                    f"127.0.0.1:{dns_port}", "--http-listen", f"127.0.0.1:{http_port}", "--log-level", "warning"],
                   tmp_path / "resolver.log")
    try:
        wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 20, "the resolver to be ready")
        yield dns_port
    finally:
        proc.stop()


def wait_answer(port: int, name: str, rtype: str, expected: set[tuple[str, str, str]]) -> None:
    """Bounded poll: the resolver follows etcd through a watch."""
    wait_until(lambda: ask(port, name, rtype)[1] == expected, 10, f"{name} {rtype} to answer {expected}")
