"""The answer cache is never stale: after any sequence of changes, a cached answer is byte for byte the answer
an answerer with an empty cache builds from the same store, in every answer mode.

Universes of keys: a broad one (CNAMEs, SRV/MX, groups, bad values, query wildcards, reloads, serials), and
two small ones where the reads the answers depend on least obviously - a wildcard's closest encloser, the
apex's own per-target leaf keys, the zone key itself - change often enough for a short run to hit them."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import dns.message
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from resolver.answers import Answerer
from resolver.store import Store
from skydns.changes import KeyChange

ZONES = ["t.test.", "o.test."]
ZONE_PATHS = ["/skydns/test/t", "/skydns/test/o"]
MODES = [{}, {"own_records_only": True}, {"subtree_answers": True}]


def _values(*values: dict[str, object]) -> list[str]:
    return [json.dumps(v) for v in values]


@dataclass(frozen=True)
class Universe:
    keys: list[str]
    values: list[str]
    names: list[str]
    types: list[str]


BROAD = Universe(
    keys=["/skydns/test/t/a", "/skydns/test/t/b", "/skydns/test/t/c", "/skydns/test/t/a/b", "/skydns/test/t/a/x1",
          "/skydns/test/t/b/c/d", "/skydns/test/t/dns/apex/x", "/skydns/test/t/dns/ns/n1", "/skydns/test/o/a",
          "/skydns/test/o/b", "/skydns/test/t/w/p", "/skydns/test/t", "/skydns/test/t/1a2b3c4d",
          "/skydns/test/t/1a2b3c4d/x", "/skydns/test/t/*", "/skydns/test/t/w/*/x1", "/skydns/test/t/a/*",
          "/skydns/test/t/w/q/r"],
    values=[*_values(
        {"host": "10.0.0.1"}, {"host": "10.0.0.2", "ttl": 60}, {"host": "2001:db8::1"}, {"host": "a.t.test"},
        {"host": "b.t.test"}, {"host": "d.c.b.t.test"}, {"host": "a.o.test"}, {"host": "x.example.org"},
        {"text": "some text"}, {"host": "b.a.t.test", "text": "owned"},
        {"host": "10.0.0.3", "port": 80, "mail": True},
        {"host": "c.t.test", "port": 443, "priority": 20, "mail": True, "weight": 5},
        {"host": "10.0.0.4", "group": "g1"}, {"host": "10.0.0.5", "targetstrip": 1, "port": 53}, {"host": "t.test"},
        {"host": "a.t.test", "group": "g2"}, {"host": "10.0.0.6", "targetstrip": 1},
        {"host": "foo.t.test", "targetstrip": 1}, {"text": "leaf text", "targetstrip": 1},
    ), '{"host": "10.0.0.9", "ttl": "bad"}', "not json"],
    names=["t.test.", "a.t.test.", "b.t.test.", "c.t.test.", "b.a.t.test.", "x1.a.t.test.", "d.c.b.t.test.",
           "*.t.test.", "*.a.t.test.", "p.*.t.test.", "nx.t.test.", "o.test.", "a.o.test.", "c.b.t.test.",
           "w.t.test.", "foo.t.test.", "q.w.t.test.", "x1.q.w.t.test.", "z.a.t.test.", "any.t.test.",
           "1a2b3c4d.t.test."],
    types=["A", "AAAA", "TXT", "SRV", "MX", "CNAME", "NS", "SOA", "PTR", "CAA", "ANY"],
)

WILDCARD = Universe(
    keys=["/skydns/test/t/w/p", "/skydns/test/t/w/*", "/skydns/test/t/w/*/1a1a1a1a", "/skydns/test/t/w/q/r",
          "/skydns/test/t/w/q/*", "/skydns/test/t/w/q"],
    values=_values({"host": "10.0.0.1"}, {"host": "10.0.0.2", "targetstrip": 1}, {"host": "w.t.test"},
                   {"host": "x.example.org", "targetstrip": 1}),
    names=["x1.q.w.t.test.", "r.q.w.t.test.", "z.w.t.test.", "q.w.t.test.", "*.w.t.test.", "w.t.test."],
    types=["A", "CNAME", "SOA"],
)

APEX = Universe(
    keys=["/skydns/test/t", "/skydns/test/t/2b2b2b2b", "/skydns/test/t/2b2b2b2b/s", "/skydns/test/t/dns/apex/v4",
          "/skydns/test/o"],
    values=_values({"host": "10.0.0.1"}, {"host": "10.0.0.2", "targetstrip": 1}, {"text": "spf", "targetstrip": 1},
                   {"host": "x.example.org", "targetstrip": 1}),
    names=["t.test.", "2b2b2b2b.t.test.", "o.test."],
    types=["A", "TXT", "SOA"],
)


def steps_from(rng: random.Random, u: Universe, count: int) -> list[tuple]:
    """``count`` uniformly drawn steps (hypothesis's own draws favour the first choices too much to reach the
    interleavings that matter here: a name cached, then its closest encloser or the apex's leaves changed)."""
    out: list[tuple] = []
    for _ in range(count):
        kind = rng.choices(["put", "del", "txn", "reload", "history", "ask"], weights=[8, 2, 2, 1, 1, 6])[0]
        if kind == "put":
            out.append((kind, rng.choice(u.keys), rng.choice(u.values)))
        elif kind == "del":
            out.append((kind, rng.choice(u.keys), ""))
        elif kind == "txn":
            out.append((kind, [(rng.choice(u.keys), rng.choice([*u.values, None]))
                               for _ in range(rng.randint(1, 4))], ""))
        elif kind == "history":
            out.append((kind, rng.choice(ZONE_PATHS), ""))
        else:
            out.append((kind, "", rng.choice(u.types) if kind == "ask" else ""))
    return out


def fresh_answer(store: Store, query: bytes, tcp: bool, mode: dict[str, bool]) -> bytes | None:
    cold = Answerer(store, ZONES, **mode)
    try:
        return cold.respond(query, tcp=tcp)
    finally:
        cold.close()


def apply_write(store: Store, step: tuple, state: dict[str, bytes], revs: dict[str, int]) -> bool:
    """Apply a write step (put, del, txn, reload, history) to the store and the expected ``state``; ``False`` for
    an ask step, which the caller handles."""
    kind, a, b = step
    rev = store.revision + 1
    if kind == "put":
        state[a], revs[a] = b.encode(), rev
        store.apply(rev, [KeyChange(a, b.encode(), rev)])
    elif kind == "del":
        state.pop(a, None)
        store.apply(rev, [KeyChange(a, None, rev)])
    elif kind == "txn":
        changes = {}
        for key, value in a:  # the last write of a key in one transaction wins, as in etcd
            changes[key] = KeyChange(key, value.encode() if value is not None else None, rev)
            if value is None:
                state.pop(key, None)
            else:
                state[key], revs[key] = value.encode(), rev
        store.apply(rev, list(changes.values()))
    elif kind == "reload":
        store.replace(rev, [KeyChange(k, v, revs[k]) for k, v in state.items()])
    elif kind == "history":  # a delete before the load, found in etcd's history: the serial moves
        store.apply_history(a, store.loaded_revision)
    else:
        return False
    return True


def run(u: Universe, steps: list[tuple], edns: bool, mode: dict[str, bool]) -> None:
    store = Store()
    state: dict[str, bytes] = {}
    revs: dict[str, int] = {}
    answerer = Answerer(store, ZONES, **mode)
    for step in steps:
        if apply_write(store, step, state, revs):
            continue
        rtype = step[2]  # an ask: ("ask", "", type)
        for name in u.names:
            query = dns.message.make_query(name, rtype, use_edns=0 if edns else -1).to_wire()
            for tcp in (False, True):
                fresh = fresh_answer(store, query, tcp, mode)
                for _ in range(2):  # the second one is a cache hit
                    assert answerer.respond(query, tcp=tcp) == fresh, (name, rtype, tcp)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=True), st.integers(1, 40), st.booleans(), st.sampled_from(MODES))
def test_cached_answers_equal_fresh_answers(rng: random.Random, count: int, edns: bool,
                                            mode: dict[str, bool]) -> None:
    steps = steps_from(rng, BROAD, count)
    note(f"steps: {steps}")
    run(BROAD, steps, edns, mode)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=True), st.sampled_from(MODES), st.sampled_from([WILDCARD, APEX]))
def test_wildcard_and_apex_answers_follow_their_reads(rng: random.Random, mode: dict[str, bool],
                                                      universe: Universe) -> None:
    steps = steps_from(rng, universe, 30)
    note(f"steps: {steps}")
    run(universe, steps, False, mode)
