"""Fixtures for the reflector tests: a fake API server and a real ``kubernetes.aio`` client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from syncer.kube.api import KubeClient
from tests.fakekube import FakeKubeServer


@pytest.fixture
def kube() -> Iterator[FakeKubeServer]:
    with FakeKubeServer() as server:
        yield server


@pytest.fixture
async def client(kube: FakeKubeServer, tmp_path: Path) -> AsyncIterator[KubeClient]:
    api = await KubeClient.create(str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
    try:
        yield api
    finally:
        await api.close()
