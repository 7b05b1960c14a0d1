"""The zone a transfer sends, over random change sequences (hypothesis):

* applying each IXFR difference the journal holds to the zone before it gives exactly the zone after it (every
  deleted record was there, every added one was not), chained from any serial in the journal to the newest;
* the zone kept up to date change by change equals the zone built from scratch from the same store (so an
  IXFR client and an AXFR client end up with the same records);
* the records at each name are exactly what the resolver answers at that name, type by type.

The universes of keys are the answer-cache property test's (CNAMEs, SRV/MX, groups, bad values, wildcards, the
apex's leaves, ``dns/ns`` and ``dns/apex``, reloads and serials moved by etcd's history)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from resolver.lookup import T_A, T_AAAA, T_CNAME, T_MX, T_NS, T_PTR, T_SRV, T_TXT, Lookup, Mode
from resolver.store import Store
from resolver.zonecontent import END_OF_TIME, ZoneContent, rrsets_wire
from tests.resolver.test_answers_cache_property import (
    APEX,
    BROAD,
    WILDCARD,
    ZONES,
    Universe,
    apply_write,
    steps_from,
)

NS_UNIVERSE = Universe(
    keys=["/skydns/test/t/dns/ns/n1", "/skydns/test/t/dns/ns/n2", "/skydns/test/t/n3", "/skydns/test/t/n3/x",
          "/skydns/test/t/a", "/skydns/test/o/a"],
    values=[*BROAD.values[:8], '{"host": "n3.t.test"}', '{"host": "a.o.test"}'],
    names=["t.test."], types=["NS"],
)


def apply_steps(store: Store, steps: list[tuple], state: dict[str, bytes], revs: dict[str, int]) -> None:
    """The answer-cache test's sequences against the store (asks are no-ops here)."""
    for step in steps:
        apply_write(store, step, state, revs)


def fresh(store: Store, mode: Mode, zone_index: int) -> set[bytes]:
    lookup = Lookup(store, ZONES, mode=mode)
    content = ZoneContent(lookup, lookup.zones[zone_index])
    content.build_now()
    return set(content.records_now())


def run(universe: Universe, steps: list[tuple], mode: Mode) -> None:
    store = Store()
    store.replace(1, [])
    lookup = Lookup(store, ZONES, mode=mode)
    contents = [ZoneContent(lookup, zone) for zone in lookup.zones]
    for content in contents:
        content.build_now()
    history: list[list[tuple[int, set[bytes]]]] = [[(c.serial, set(c.records_now()))] for c in contents]

    def follow(keys: set[str] | None) -> None:
        for content in contents:
            content.on_change(keys)
            content.build_now()  # a reload's rebuild, run to its end at once

    store.add_listener(follow)
    state: dict[str, bytes] = {}
    revs: dict[str, int] = {}
    for step in steps:
        apply_steps(store, [step], state, revs)
        for i, content in enumerate(contents):
            assert set(content.records_now()) == fresh(store, mode, i), (content.name, step)
            if content.serial != history[i][-1][0]:
                history[i].append((content.serial, set(content.records_now())))
    for i, content in enumerate(contents):
        snapshots = dict(history[i])
        for start, before in history[i]:
            chain = content.journal.since(start)
            if chain is None:
                continue
            zone = set(before)
            for delta in chain:
                assert set(delta.deleted) <= zone, (content.name, delta)
                assert not set(delta.added) & zone, (content.name, delta)
                zone -= set(delta.deleted)
                zone |= set(delta.added)
                if delta.new in snapshots:
                    assert zone == snapshots[delta.new], (content.name, start, delta.new)
            assert zone == set(content.records_now())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=True), st.integers(1, 40), st.sampled_from(list(Mode)))
def test_ixfr_differences_rebuild_the_new_zone(rng: random.Random, count: int, mode: Mode) -> None:
    steps = steps_from(rng, BROAD, count)
    note(f"steps: {steps}")
    run(BROAD, steps, mode)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=True), st.sampled_from([WILDCARD, APEX, NS_UNIVERSE]))
def test_ixfr_differences_follow_wildcards_apex_and_glue(rng: random.Random, universe: Universe) -> None:
    steps = steps_from(rng, universe, 30)
    note(f"steps: {steps}")
    run(universe, steps, Mode.DEFAULT)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=True), st.integers(1, 30))
def test_a_name_holds_what_the_resolver_answers_there(rng: random.Random, count: int) -> None:
    store = Store()
    store.replace(1, [])
    apply_steps(store, steps_from(rng, BROAD, count), {}, {})
    lookup = Lookup(store, ZONES)
    for zone in lookup.zones:
        content = ZoneContent(lookup, zone)
        for key in [zone.path, *(e.key for e in store.subtree(zone.path))]:
            labels = key[len(store.prefix) + 1:].split("/")[::-1]
            if lookup.zone_for(labels) is not zone or any(label != label.lower() for label in labels):
                continue
            qname = tuple(label.encode() for label in labels)
            apex = len(labels) == len(zone.labels)
            expected = []
            cname = [rr for rr in lookup.resolve(qname, T_CNAME, END_OF_TIME).answer if rr[0] == qname]
            if cname and not apex:
                expected = cname
            else:
                for qtype in (T_A, T_AAAA, T_TXT, T_SRV, T_MX, T_PTR, *((T_NS,) if apex else ())):
                    expected += [rr for rr in lookup.resolve(qname, qtype, END_OF_TIME).answer
                                 if rr[0] == qname and rr[2] == qtype]
            got = content.name_records(labels)
            want = rrsets_wire(expected)
            if apex:  # the apex also holds the in-zone glue of its NS hosts: address records of other names
                assert want <= got, key
                assert all(rr_type(rr) in (T_A, T_AAAA) for rr in got - want), key
            else:
                assert got == want, key


def rr_type(rr: bytes) -> int:
    pos = 0
    while rr[pos]:
        pos += rr[pos] + 1
    return int.from_bytes(rr[pos + 1:pos + 3], "big")
