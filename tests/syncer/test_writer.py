"""The etcd writer against a real etcd: creates, updates, exact-key deletes, conflicts re-planned, not overwritten."""

from __future__ import annotations

import pytest

from skydns.etcd import EtcdClient, read_prefix
from skydns.record import Record, decode, encode
from syncer.etcd.state import read_current
from syncer.etcd.writer import ApplyResult, Writer
from syncer.keys import record_key
from syncer.model import Endpoint
from syncer.plan import Plan, calculate
from syncer.sources.records import normalize_hostname
from tests.syncer.helpers import OWNER, PREFIX, ep

pytestmark = pytest.mark.timeout(30)


async def dump(client: EtcdClient) -> dict[str, Record]:
    _, kvs = await read_prefix(client, b"/")
    return {kv.key.decode(): decode(kv.value) for kv in kvs}


async def sync(client: EtcdClient, desired: list[Endpoint], policy: str = "sync") -> tuple[Plan, ApplyResult]:
    state = await read_current(client, PREFIX)
    plan = calculate(desired, state.records, OWNER, policy)
    result = await Writer(client, prefix=PREFIX, owner_id=OWNER, policy=policy).apply(plan.changes, desired)
    return plan, result


async def put(client: EtcdClient, key: str, record: Record) -> None:
    await client.put(key.encode(), encode(record))


async def test_create_update_delete_round_trip(etcd: EtcdClient) -> None:
    web = [ep("www.example.org", "A", "10.0.0.1", "10.0.0.2", ttl=60),
           ep("_http._tcp.www.example.org", "SRV", "0 50 30080 www.example.org")]
    plan, result = await sync(etcd, web)
    assert (plan.count("create"), result.puts, result.deletes) == (2, 3, 0)
    records = await dump(etcd)
    assert records[record_key(PREFIX, "www.example.org", "A", "10.0.0.1")] == Record(
        host="10.0.0.1", ttl=60, targetstrip=1, owner=OWNER, resource="service/default/web")
    assert records[record_key(PREFIX, "_http._tcp.www.example.org", "SRV", "0 50 30080 www.example.org")] == Record(
        host="_.www.example.org", port=30080, weight=50, targetstrip=1, owner=OWNER, resource="service/default/web")

    plan, result = await sync(etcd, [ep("www.example.org", "A", "10.0.0.2", "10.0.0.3", ttl=60)])
    assert [(c.action, c.type) for c in plan.changes] == [("update", "A"), ("delete", "SRV")]
    assert (result.puts, result.deletes) == (1, 2)
    assert sorted(r.host for r in (await dump(etcd)).values()) == ["10.0.0.2", "10.0.0.3"]

    plan, result = await sync(etcd, [])
    assert (result.puts, result.deletes) == (0, 2)
    assert await dump(etcd) == {}


async def test_a_rerun_writes_nothing(etcd: EtcdClient) -> None:
    desired = [ep("www.example.org", "A", "10.0.0.1"), ep("api.example.org", "CNAME", "lb.example.net")]
    await sync(etcd, desired)
    before = await read_current(etcd, PREFIX)
    plan, result = await sync(etcd, desired)
    after = await read_current(etcd, PREFIX)
    assert plan.changes == [] and result.puts == result.deletes == 0
    assert after.revision == before.revision


async def test_delete_is_by_exact_key_and_never_hits_neighbours(etcd: EtcdClient) -> None:
    await sync(etcd, [ep("foo.example.org", "A", "10.0.0.1")])
    neighbours = {
        "/skydns/org/example/foo2": Record(host="10.9.9.2"),
        "/skydns/org/example/foo2/0a1b2c3d": Record(host="10.9.9.3", targetstrip=1, owner=OWNER),
        "/skydns/org/example/foo/bar": Record(host="10.9.9.4"),
        "/skydns/org/example/foo": Record(host="10.9.9.5"),
    }
    for key, record in neighbours.items():
        await put(etcd, key, record)
    # foo2's owned record must stay too: keep it wanted so only foo goes.
    await sync(etcd, [ep("foo2.example.org", "A", "10.9.9.3")], policy="sync")
    records = await dump(etcd)
    assert record_key(PREFIX, "foo.example.org", "A", "10.0.0.1") not in records
    for key in ("/skydns/org/example/foo2", "/skydns/org/example/foo/bar", "/skydns/org/example/foo"):
        assert records[key] == neighbours[key]


async def test_a_concurrent_change_is_not_overwritten_but_replanned(etcd: EtcdClient) -> None:
    await sync(etcd, [ep("www.example.org", "A", "10.0.0.1")])
    state = await read_current(etcd, PREFIX)
    desired = [ep("www.example.org", "A", "10.0.0.2"), ep("api.example.org", "A", "10.0.0.7")]
    plan = calculate(desired, state.records, OWNER, "sync")
    # Someone else takes the name over between our read and our write.
    old_key = record_key(PREFIX, "www.example.org", "A", "10.0.0.1")
    intruder = Record(host="10.0.0.66", targetstrip=1, owner="cluster-b")
    await put(etcd, old_key, intruder)
    result = await Writer(etcd, prefix=PREFIX, owner_id=OWNER, policy="sync").apply(plan.changes, desired)
    assert result.replanned == ["www.example.org"]
    assert result.failed == {}
    # Re-planned: the record is now cluster-b's, so nothing of ours may be created next to it.
    # The other name, which shared the first transaction, is still written.
    assert await dump(etcd) == {old_key: intruder, record_key(PREFIX, "api.example.org", "A", "10.0.0.7"): Record(
        host="10.0.0.7", targetstrip=1, owner=OWNER, resource="service/default/web")}


class _BusyNeighbour(Writer):
    """A writer whose every transaction races with another client rewriting a key it read."""

    def __init__(self, *args: object, key: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.key = key
        self.transactions = 0

    async def _transaction(self, name: str, ops: list) -> bool:  # type: ignore[override]
        self.transactions += 1
        await self.client.put(self.key.encode(), encode(Record(host="10.0.0.1", targetstrip=1, owner=OWNER,
                                                               resource=f"race-{self.transactions}")))
        return await super()._transaction(name, ops)


async def test_a_name_that_keeps_changing_fails_after_bounded_attempts(etcd: EtcdClient) -> None:
    await sync(etcd, [ep("www.example.org", "A", "10.0.0.1")])
    desired = [ep("www.example.org", "A", "10.0.0.2")]
    plan = calculate(desired, (await read_current(etcd, PREFIX)).records, OWNER, "sync")
    key = record_key(PREFIX, "www.example.org", "A", "10.0.0.1")
    writer = _BusyNeighbour(etcd, prefix=PREFIX, owner_id=OWNER, policy="sync", attempts=3, key=key)
    result = await writer.apply(plan.changes, desired)
    assert list(result.failed) == ["www.example.org"]
    assert "gave up after 3 attempts" in result.failed["www.example.org"]
    assert writer.transactions == 4  # the shared first try, then 3 attempts of the name alone
    assert (await dump(etcd))[key].resource == "race-4"  # the other writer's last value, not overwritten


async def test_a_foreign_value_at_our_very_key_is_skipped_not_retried(etcd: EtcdClient) -> None:
    key = record_key(PREFIX, "www.example.org", "A", "10.0.0.1")
    await put(etcd, key, Record(text="hello", targetstrip=1))  # hand-written: no owner
    plan, result = await sync(etcd, [ep("www.example.org", "A", "10.0.0.1")])
    assert plan.changes == [] and result.failed == {}
    assert f"the key {key} is held by a TXT record" in plan.skipped[0].reason
    assert (await dump(etcd))[key].text == "hello"


async def test_many_keys_at_one_name_are_written_and_read_back(etcd: EtcdClient) -> None:
    targets = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(300)]
    plan, result = await sync(etcd, [ep("big.example.org", "A", *targets)])
    assert result.puts == 300
    plan, result = await sync(etcd, [ep("big.example.org", "A", *targets)])
    assert plan.changes == []


async def test_a_replanned_idn_name_keeps_its_endpoints(etcd: EtcdClient) -> None:
    # Endpoints come canonical from the sources (A-label names); the re-plan after a concurrent change must find
    # them under that same spelling, or it would plan them away and delete our records.
    name = normalize_hostname("Bücher.Example.org.")
    assert name == "xn--bcher-kva.example.org"
    await sync(etcd, [ep(name, "A", "10.0.0.1")])
    desired = [ep(name, "A", "10.0.0.1", "10.0.0.2")]
    plan = calculate(desired, (await read_current(etcd, PREFIX)).records, OWNER, "sync")
    key = record_key(PREFIX, name, "A", "10.0.0.1")
    await put(etcd, key, Record(host="10.0.0.1", targetstrip=1, owner=OWNER, resource="service/default/other"))
    result = await Writer(etcd, prefix=PREFIX, owner_id=OWNER, policy="sync").apply(plan.changes, desired)
    assert result.replanned == [name] and result.failed == {}
    assert sorted(r.host for r in (await dump(etcd)).values()) == ["10.0.0.1", "10.0.0.2"]
