"""Properties of the plan over random inputs: it converges in one step and never touches what isn't ours."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from skydns.record import Record
from syncer.current import CurrentRecord, classify
from syncer.keys import record_key
from syncer.model import Endpoint
from syncer.plan import Plan, calculate
from tests.syncer.helpers import OWNER, PREFIX

NAMES = ["a.example.org", "b.example.org", "c.example.org"]
TARGETS = {"A": ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "AAAA": ["2001:db8::1", "2001:db8::2"],
           "CNAME": ["x.example.net", "y.example.net"]}
RESOURCES = ["service/ns/one", "service/ns/two", "ingress/ns/three"]


@st.composite
def endpoints(draw: st.DrawFn) -> Endpoint:
    rtype = draw(st.sampled_from(sorted(TARGETS)))
    targets = draw(st.lists(st.sampled_from(TARGETS[rtype]), min_size=1, max_size=2, unique=True))
    return Endpoint(draw(st.sampled_from(NAMES)), rtype, tuple(sorted(targets)),
                    draw(st.sampled_from([None, 60])), draw(st.sampled_from(RESOURCES)))


@st.composite
def current_records(draw: st.DrawFn) -> CurrentRecord:
    name = draw(st.sampled_from(NAMES))
    rtype = draw(st.sampled_from(sorted(TARGETS)))
    target = draw(st.sampled_from(TARGETS[rtype]))
    owner = draw(st.sampled_from([OWNER, OWNER, "other", ""]))
    leaf = draw(st.sampled_from(["stable", "0a1b2c3d", "7f00ff00"]))
    key = record_key(PREFIX, name, rtype, target) if leaf == "stable" else \
        f"{record_key(PREFIX, name, rtype, target).rsplit('/', 1)[0]}/{leaf}"
    record = Record(host=target, ttl=draw(st.sampled_from([0, 60])), targetstrip=1, owner=owner,
                    resource=draw(st.sampled_from(RESOURCES)))
    return classify(key, record, PREFIX, 7)


def apply(plan: Plan, current: list[CurrentRecord]) -> list[CurrentRecord]:
    """What etcd holds after the plan is written (keys replaced exactly as the writer does)."""
    state = {r.key: r for r in current}
    for change in plan.changes:
        for old in change.current:
            state.pop(old.key, None)
    for change in plan.changes:
        for rec in change.records:
            assert rec.key == record_key(PREFIX, change.name, change.type, rec.target)
            assert rec.key not in state or state[rec.key].owner == OWNER  # never over another's value
            state[rec.key] = classify(rec.key, rec.record, PREFIX, 8)
    return list(state.values())


@settings(max_examples=300, deadline=None)
@given(st.lists(endpoints(), max_size=8), st.lists(current_records(), max_size=8),
       st.sampled_from(["sync", "upsert-only", "create-only"]))
def test_one_plan_converges_and_never_touches_foreign_records(desired: list[Endpoint],
                                                              current: list[CurrentRecord], policy: str) -> None:
    current = list({r.key: r for r in current}.values())
    plan = calculate(desired, current, OWNER, policy)
    for change in plan.changes:
        assert all(r.owner == OWNER for r in change.current)
        assert all(r.record.owner == OWNER and r.record.text == "" for r in change.records)
        if policy != "sync":
            assert change.action != "delete"
        if policy == "create-only":
            assert change.action == "create"
    after = apply(plan, current)
    foreign_before = {r.key: r.record for r in current if r.owner != OWNER}
    assert {r.key: r.record for r in after if r.owner != OWNER} == foreign_before
    assert calculate(desired, after, OWNER, policy).changes == []
    if policy == "sync":
        # Every owned record left is wanted, and no name ends up with our CNAME next to other data of ours.
        mine = [r for r in after if r.owner == OWNER]
        for name in NAMES:
            types = {r.type for r in mine if r.name == name}
            assert not ("CNAME" in types and len(types) > 1)
