"""Fixtures for the resolver's I/O tests: a running resolver in the test's event loop, DNS over real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest

from devtools.localetcd import LocalEtcd
from resolver.cli import Resolver, ResolverConfig
from skydns.changes import KeyChange
from skydns.etcd import EtcdClient, EtcdSettings

ZONE = "skydns.test."
T = TypeVar("T")


class RecordingStore:
    """The store's interface, recording what the mirror hands over: for tests of the mirror alone."""

    def __init__(self, prefix: str = "/skydns") -> None:
        self.prefix = prefix
        self.revision = 0
        self.keys: dict[str, KeyChange] = {}
        self.replaces: list[int] = []
        self.applies: list[tuple[int, list[KeyChange]]] = []

    def replace(self, revision: int, changes: Iterable[KeyChange]) -> None:
        self.keys = {c.key: c for c in changes}
        self.revision = revision
        self.replaces.append(revision)

    def apply(self, revision: int, changes: Sequence[KeyChange]) -> None:
        assert revision >= self.revision, f"revision {revision} applied after {self.revision}"
        for change in changes:
            if revision == self.revision:  # a lease refresh: same keys, same values, new deadlines
                assert change.value == self.keys[change.key].value and change.lease_deadline is not None
            else:
                assert change.mod_revision == revision
            if change.value is None:
                self.keys.pop(change.key, None)
            else:
                self.keys[change.key] = change
        self.revision = revision
        self.applies.append((revision, list(changes)))


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns a truthy value (returned) or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await asyncio.wait_for(check(), max(deadline - time.monotonic(), 0.1))
        except (OSError, dns.exception.DNSException) as exc:
            last = exc
        if last:
            return last  # type: ignore[no-any-return]
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def query(address: tuple[str, int], name: str, rdtype: str = "A", *, tcp: bool = False,
                timeout: float = 2.0) -> dns.message.Message:
    msg = dns.message.make_query(name, rdtype)
    msg.flags &= ~dns.flags.RD
    if tcp:
        return await dns.asyncquery.tcp(msg, address[0], port=address[1], timeout=timeout)
    return await dns.asyncquery.udp(msg, address[0], port=address[1], timeout=timeout)


def addresses(msg: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in msg.answer if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
            for rd in rrset}


def resolver_config(endpoint: str, zones: Sequence[str] = (ZONE,), **kw: Any) -> ResolverConfig:
    return ResolverConfig(zones=tuple(zones), etcd=EtcdSettings.from_env(endpoint, env={}),
                          listen=("127.0.0.1", 0), http_listen=("127.0.0.1", 0), **kw)


async def start_resolver(endpoint: str, *, wait_ready: bool = True, zones: Sequence[str] = (ZONE,),
                         **kw: Any) -> Resolver:
    resolver = Resolver(resolver_config(endpoint, zones), **kw)
    await resolver.start()
    if wait_ready:
        assert resolver.mirror is not None
        await asyncio.wait_for(resolver.mirror.ready.wait(), 15)
    return resolver


@pytest.fixture
async def resolver(etcd: EtcdClient, etcd_server: LocalEtcd) -> AsyncIterator[Resolver]:
    """A resolver (real store and answerer) in the test's loop, loaded from the (empty) session etcd."""
    running = await start_resolver(etcd_server.endpoint)
    try:
        yield running
    finally:
        await running.stop()


