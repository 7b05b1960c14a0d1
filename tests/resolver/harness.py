"""In-memory helpers for the answer-side tests: a store loaded from a fixture, and one query through respond()."""

from __future__ import annotations

import dns.message
import dns.rdatatype

from resolver.answers import Answerer
from resolver.store import Store
from skydns.changes import KeyChange


def load(fixture: list[tuple[str, str]], prefix: str = "/skydns") -> Store:
    """A store holding ``fixture``; key i gets mod_revision i + 1 and the store revision is len(fixture)."""
    store = Store(prefix)
    store.replace(len(fixture), [KeyChange(k, v.encode(), i + 1) for i, (k, v) in enumerate(fixture)])
    return store


def ask(answerer: Answerer, qname: str, qtype: str | int = "A", *, tcp: bool = False, edns: int = -1,
        payload: int = 1232, want_dnssec: bool = False) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, use_edns=edns, payload=payload, want_dnssec=want_dnssec)
    wire = answerer.respond(query.to_wire(), tcp=tcp)
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert response.id == query.id
    return response


def rdtype(name: str) -> int:
    return dns.rdatatype.from_text(name)
