"""The answer cache is never stale: after any sequence of changes, a cached answer is byte for byte the answer
an answerer with an empty cache builds from the same store."""

from __future__ import annotations

import json

import dns.message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resolver.answers import Answerer
from resolver.store import Store
from skydns.changes import KeyChange

ZONES = ["t.test.", "o.test."]
KEYS = ["/skydns/test/t/a", "/skydns/test/t/b", "/skydns/test/t/c", "/skydns/test/t/a/b", "/skydns/test/t/a/x1",
        "/skydns/test/t/b/c/d", "/skydns/test/t/dns/apex/x", "/skydns/test/t/dns/ns/n1", "/skydns/test/o/a",
        "/skydns/test/o/b", "/skydns/test/t/w/p"]
VALUES = [json.dumps(v) for v in (
    {"host": "10.0.0.1"}, {"host": "10.0.0.2", "ttl": 60}, {"host": "2001:db8::1"}, {"host": "a.t.test"},
    {"host": "b.t.test"}, {"host": "d.c.b.t.test"}, {"host": "a.o.test"}, {"host": "x.example.org"},
    {"text": "some text"}, {"host": "b.a.t.test", "text": "owned"}, {"host": "10.0.0.3", "port": 80, "mail": True},
    {"host": "c.t.test", "port": 443, "priority": 20, "mail": True, "weight": 5}, {"host": "10.0.0.4", "group": "g1"},
    {"host": "10.0.0.5", "targetstrip": 1, "port": 53}, {"host": "t.test"}, {"host": "a.t.test", "group": "g2"},
)] + ['{"host": "10.0.0.9", "ttl": "bad"}', "not json"]
NAMES = ["t.test.", "a.t.test.", "b.t.test.", "c.t.test.", "b.a.t.test.", "x1.a.t.test.", "d.c.b.t.test.",
         "*.t.test.", "*.a.t.test.", "p.*.t.test.", "nx.t.test.", "o.test.", "a.o.test.", "c.b.t.test.", "w.t.test."]
TYPES = ["A", "AAAA", "TXT", "SRV", "MX", "CNAME", "NS", "SOA", "PTR", "CAA"]

op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.sampled_from(VALUES)),
    st.tuples(st.just("del"), st.sampled_from(KEYS), st.just("")),
    st.tuples(st.just("txn"), st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from([*VALUES, None])),
                                       min_size=1, max_size=4), st.just("")),
    st.tuples(st.just("reload"), st.just(""), st.just("")),
    st.tuples(st.just("ask"), st.sampled_from(NAMES), st.sampled_from(TYPES)),
    st.tuples(st.just("ask"), st.sampled_from(NAMES), st.sampled_from(TYPES)),
    st.tuples(st.just("ask"), st.sampled_from(NAMES), st.sampled_from(TYPES)),
)


def fresh_answer(store: Store, query: bytes, tcp: bool) -> bytes | None:
    cold = Answerer(store, ZONES)
    try:
        return cold.respond(query, tcp=tcp)
    finally:
        cold.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=60), st.booleans())
def test_cached_answers_equal_fresh_answers(ops: list[tuple], edns: bool) -> None:
    store = Store()
    state: dict[str, bytes] = {}
    revs: dict[str, int] = {}
    answerer = Answerer(store, ZONES)
    for kind, a, b in ops:
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
        else:
            query = dns.message.make_query(a, b, use_edns=0 if edns else -1).to_wire()
            for tcp in (False, True):
                for _ in range(2):  # the second one is a cache hit
                    assert answerer.respond(query, tcp=tcp) == fresh_answer(store, query, tcp), (a, b, tcp)
