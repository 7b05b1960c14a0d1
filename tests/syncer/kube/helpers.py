"""Helpers for the reflector tests: record what a reflector hands over, run its loop for a block, wait with a
deadline for what a test expects, build the objects the tests apply."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import REGISTRY

from syncer.kube.changes import ObjectChange
from syncer.kube.reflector import Reflector

T = TypeVar("T")


class Recorder:
    """An ``on_changes`` that keeps every batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[list[ObjectChange]] = []

    def __call__(self, changes: Sequence[ObjectChange]) -> None:
        self.batches.append(list(changes))

    @property
    def changes(self) -> list[ObjectChange]:
        return [change for batch in self.batches for change in batch]

    def names(self) -> list[tuple[str, str]]:
        """``(name, "added"|"modified"|"deleted")`` per change, in order."""
        return [(c.key[1], "added" if c.old is None else "deleted" if c.new is None else "modified")
                for c in self.changes]

    def clear(self) -> None:
        self.batches.clear()


async def eventually(check: Callable[[], T], what: str, timeout: float = 5.0) -> T:
    """Poll ``check`` until it returns something true, or fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {result!r})")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(reflector: Reflector, *, ready: bool = True) -> AsyncIterator[Reflector]:
    """Run the reflector's loop for the block (first waiting for its first load, with ``ready``); cancel it at
    the end."""
    task = asyncio.create_task(reflector.run())
    try:
        if ready:
            await asyncio.wait_for(reflector.ready.wait(), 5)
        yield reflector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def in_thread(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking fake-server call (one that waits for watches) without blocking the event loop."""
    return await asyncio.to_thread(call, *args, **kwargs)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def service(name: str, namespace: str = "default", ip: str = "192.0.2.1", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "annotations": {"external-dns.alpha.kubernetes.io/hostname": f"{name}.example.org"}}
    meta.update(extra.pop("metadata", {}))
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                           "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10"},
                           "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
    obj.update(extra)
    return obj


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.1"}]}}
