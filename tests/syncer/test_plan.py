"""The plan: table tests of creates/updates/deletes, policies, ownership, conflicts and determinism."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from skydns.record import Record
from syncer.current import CurrentRecord
from syncer.domains import DomainFilter
from syncer.model import Endpoint
from syncer.plan import Plan, calculate
from tests.syncer.helpers import OWNER, ep, ours, raw


def summary(plan: Plan) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [(c.action, c.name, c.type, c.targets) for c in plan.changes]


EXTERNALDNS_OWNERSHIP = '"heritage=external-dns,external-dns/owner=default"'


@dataclass(frozen=True)
class Case:
    title: str
    desired: list[Endpoint]
    current: list[CurrentRecord]
    policy: str
    expected: list[tuple[str, str, str, tuple[str, ...]]]  # (action, name, type, targets)


CASES = [
    Case("create A",
         desired=[ep("www.example.org", "A", "10.0.0.1")],
         current=[],
         policy="sync",
         expected=[("create", "www.example.org", "A", ("10.0.0.1",))]),
    Case("create AAAA",
         desired=[ep("www.example.org", "AAAA", "2001:db8::1")],
         current=[],
         policy="sync",
         expected=[("create", "www.example.org", "AAAA", ("2001:db8::1",))]),
    Case("create CNAME",
         desired=[ep("www.example.org", "CNAME", "lb.example.net")],
         current=[],
         policy="sync",
         expected=[("create", "www.example.org", "CNAME", ("lb.example.net",))]),
    Case("create SRV",
         desired=[ep("_web._tcp.www.example.org", "SRV", "0 50 30080 www.example.org")],
         current=[],
         policy="sync",
         expected=[("create", "_web._tcp.www.example.org", "SRV", ("0 50 30080 www.example.org",))]),
    Case("in sync: nothing",
         desired=[ep("www.example.org", "A", "10.0.0.1")],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="sync",
         expected=[]),
    Case("target changed: update",
         desired=[ep("www.example.org", "A", "10.0.0.2")],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="sync",
         expected=[("update", "www.example.org", "A", ("10.0.0.2",))]),
    Case("ttl changed: update",
         desired=[ep("www.example.org", "A", "10.0.0.1", ttl=60)],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="sync",
         expected=[("update", "www.example.org", "A", ("10.0.0.1",))]),
    Case("resource changed: update",
         desired=[ep("www.example.org", "A", "10.0.0.1", resource="service/default/other")],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="sync",
         expected=[("update", "www.example.org", "A", ("10.0.0.1",))]),
    Case("target added: update",
         desired=[ep("www.example.org", "A", "10.0.0.1", "10.0.0.2")],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="sync",
         expected=[("update", "www.example.org", "A", ("10.0.0.1", "10.0.0.2"))]),
    Case("no longer wanted: delete",
         desired=[],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="sync",
         expected=[("delete", "www.example.org", "A", ("10.0.0.1",))]),
    Case("A and AAAA at one name are separate",
         desired=[ep("www.example.org", "A", "10.0.0.1")],
         current=[ours("www.example.org", "A", "10.0.0.1"), ours("www.example.org", "AAAA", "2001:db8::1")],
         policy="sync",
         expected=[("delete", "www.example.org", "AAAA", ("2001:db8::1",))]),
    Case("upsert-only never deletes",
         desired=[],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="upsert-only",
         expected=[]),
    Case("upsert-only updates",
         desired=[ep("www.example.org", "A", "10.0.0.2")],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="upsert-only",
         expected=[("update", "www.example.org", "A", ("10.0.0.2",))]),
    Case("create-only never updates",
         desired=[ep("www.example.org", "A", "10.0.0.2")],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="create-only",
         expected=[]),
    Case("create-only never deletes",
         desired=[],
         current=[ours("www.example.org", "A", "10.0.0.1")],
         policy="create-only",
         expected=[]),
    Case("create-only creates",
         desired=[ep("new.example.org", "A", "10.0.0.1")],
         current=[],
         policy="create-only",
         expected=[("create", "new.example.org", "A", ("10.0.0.1",))]),
    Case("another owner's record is never deleted",
         desired=[],
         current=[ours("www.example.org", "A", "10.0.0.1", owner="other")],
         policy="sync",
         expected=[]),
    Case("another owner's record is never updated",
         desired=[ep("www.example.org", "A", "10.0.0.2")],
         current=[ours("www.example.org", "A", "10.0.0.1", owner="other")],
         policy="sync",
         expected=[]),
    Case("unowned hand-written record is never deleted",
         desired=[],
         current=[raw("/skydns/org/example/www", Record(host="10.0.0.9"))],
         policy="sync",
         expected=[]),
    Case("ExternalDNS random-leaf record is never deleted",
         desired=[],
         current=[raw("/skydns/org/example/www/0a1b2c3d", Record(host="10.0.0.9", targetstrip=1))],
         policy="sync",
         expected=[]),
    Case("our id on a random leaf: moved to the stable key",
         desired=[ep("www.example.org", "A", "10.0.0.9")],
         current=[raw("/skydns/org/example/www/0a1b2c3d", Record(host="10.0.0.9", targetstrip=1, owner=OWNER))],
         policy="sync",
         expected=[("update", "www.example.org", "A", ("10.0.0.9",))]),
    Case("our records next to a hand-written one still update",
         desired=[ep("www.example.org", "A", "10.0.0.2")],
         current=[ours("www.example.org", "A", "10.0.0.1"), raw("/skydns/org/example/www", Record(host="10.0.0.9"))],
         policy="sync",
         expected=[("update", "www.example.org", "A", ("10.0.0.2",))]),
    Case("TXT ownership records neither block nor get touched",
         desired=[ep("www.example.org", "A", "10.0.0.1")],
         current=[raw("/skydns/org/example/a-www/12345678", Record(text=EXTERNALDNS_OWNERSHIP, targetstrip=1)),
                  raw("/skydns/org/example/www/87654321", Record(text="hello", targetstrip=1))],
         policy="sync",
         expected=[("create", "www.example.org", "A", ("10.0.0.1",))]),
    Case("ExternalDNS <= 0.17 CNAME with its ownership text blocks",
         desired=[ep("www.example.org", "A", "10.0.0.1")],
         current=[raw("/skydns/org/example/www/12345678",
                      Record(host="lb.example.net", text=EXTERNALDNS_OWNERSHIP, targetstrip=1))],
         policy="sync",
         expected=[]),
    Case("a deeper name does not block",
         desired=[ep("www.example.org", "A", "10.0.0.1")],
         current=[raw("/skydns/org/example/www/sub", Record(host="10.0.0.9"))],
         policy="sync",
         expected=[("create", "www.example.org", "A", ("10.0.0.1",))]),
    Case("CNAME owned, A now wanted: CNAME deleted, A created",
         desired=[ep("www.example.org", "A", "10.0.0.1")],
         current=[ours("www.example.org", "CNAME", "lb.example.net")],
         policy="sync",
         expected=[("create", "www.example.org", "A", ("10.0.0.1",)),
                   ("delete", "www.example.org", "CNAME", ("lb.example.net",))]),
    Case("CNAME owned and kept by upsert-only: no A next to it",
         desired=[ep("www.example.org", "A", "10.0.0.1")],
         current=[ours("www.example.org", "CNAME", "lb.example.net")],
         policy="upsert-only",
         expected=[]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.title for c in CASES])
def test_plan_table(case: Case) -> None:
    assert summary(calculate(case.desired, case.current, OWNER, case.policy)) == case.expected


def test_nothing_created_at_a_name_with_foreign_records_and_the_skip_says_why() -> None:
    current = [ours("www.example.org", "A", "10.0.0.1", owner="other"),
               raw("/skydns/org/example/www", Record(host="lb.example.net"))]
    plan = calculate([ep("www.example.org", "AAAA", "2001:db8::1")], current, OWNER, "sync")
    assert plan.changes == []
    [skip] = plan.skipped
    assert skip.resource == "service/default/web"
    assert skip.value == "www.example.org AAAA 2001:db8::1"
    assert "owner 'other'" in skip.reason and "no owner" in skip.reason and "/skydns/org/example/www" in skip.reason


def test_a_wins_over_cname_with_a_warning_naming_both_objects() -> None:
    desired = [ep("www.example.org", "CNAME", "lb.example.net", resource="ingress/default/web"),
               ep("www.example.org", "A", "10.0.0.1", resource="service/default/web")]
    plan = calculate(desired, [], OWNER, "sync")
    assert summary(plan) == [("create", "www.example.org", "A", ("10.0.0.1",))]
    [warning] = plan.warnings
    assert "ingress/default/web" in warning and "service/default/web" in warning
    assert [s.resource for s in plan.skipped] == ["ingress/default/web"]


def test_a_targets_of_several_objects_are_unioned_with_the_smallest_ttl() -> None:
    desired = [ep("www.example.org", "A", "10.0.0.2", resource="service/b/web", ttl=300),
               ep("www.example.org", "A", "10.0.0.1", "10.0.0.2", resource="service/a/web", ttl=60)]
    [change] = calculate(desired, [], OWNER, "sync").changes
    assert change.targets == ("10.0.0.1", "10.0.0.2")
    assert change.ttl == 60
    assert change.resource == "service/a/web"
    assert {r.record.resource for r in change.records} == {"service/a/web"}


def test_cname_winner_is_the_smallest_object_then_sticks_to_the_current_owner() -> None:
    desired = [ep("www.example.org", "CNAME", "b.example.net", resource="service/default/b"),
               ep("www.example.org", "CNAME", "a.example.net", resource="service/default/a")]
    [change] = calculate(desired, [], OWNER, "sync").changes
    assert (change.targets, change.resource) == (("a.example.net",), "service/default/a")
    current = [ours("www.example.org", "CNAME", "b.example.net", resource="service/default/b")]
    plan = calculate(desired, current, OWNER, "sync")
    assert plan.changes == []
    assert [s.resource for s in plan.skipped] == ["service/default/a"]


def test_a_cname_keeps_one_target() -> None:
    plan = calculate([ep("www.example.org", "CNAME", "a.example.net", "b.example.net")], [], OWNER, "sync")
    assert summary(plan) == [("create", "www.example.org", "CNAME", ("a.example.net",))]
    assert plan.skipped[0].value == "www.example.org CNAME b.example.net"


def test_domain_filter_applies_to_current_records_too() -> None:
    current = [ours("www.example.org", "A", "10.0.0.1"), ours("www.other.org", "A", "10.0.0.1")]
    plan = calculate([], current, OWNER, "sync", DomainFilter(include=("example.org",)))
    assert summary(plan) == [("delete", "www.example.org", "A", ("10.0.0.1",))]
    plan = calculate([ep("x.other.org", "A", "10.0.0.1")], [], OWNER, "sync", DomainFilter(exclude=("other.org",)))
    assert plan.changes == []


def test_same_inputs_in_any_order_give_the_same_plan() -> None:
    desired = [ep(f"h{i % 7}.example.org", t, *tg, resource=f"service/ns/s{i}")
               for i, (t, tg) in enumerate([("A", ("10.0.0.1",)), ("CNAME", ("x.example.net",)),
                                             ("AAAA", ("2001:db8::5",)), ("A", ("10.0.0.3", "10.0.0.2"))] * 5)]
    current = [ours("h1.example.org", "CNAME", "y.example.net", resource="service/ns/s9"),
               ours("h3.example.org", "A", "10.9.9.9"), ours("gone.example.org", "A", "10.0.0.1")]
    first = calculate(desired, current, OWNER, "sync")
    rng = random.Random(4)
    for _ in range(10):
        d, c = desired[:], current[:]
        rng.shuffle(d)
        rng.shuffle(c)
        again = calculate(d, c, OWNER, "sync")
        assert again.changes == first.changes
        assert again.skipped == first.skipped
        assert again.warnings == first.warnings
    assert first.warnings  # the inputs do hold A-over-CNAME conflicts


def test_the_records_written_are_the_values_read_back_as_in_sync() -> None:
    desired = [ep("www.example.org", "A", "10.0.0.1", ttl=30, group="g1"),
               ep("_http._tcp.www.example.org", "SRV", "0 50 30080 www.example.org")]
    plan = calculate(desired, [], OWNER, "sync")
    current = [ours(c.name, c.type, r.target, ttl=c.ttl, group=r.record.group)
               for c in plan.changes for r in c.records]
    assert calculate(desired, current, OWNER, "sync").changes == []


def test_bad_policy_and_empty_owner_are_refused() -> None:
    with pytest.raises(ValueError, match="policy"):
        calculate([], [], OWNER, "everything")
    with pytest.raises(ValueError, match="owner"):
        calculate([], [], "", "sync")
