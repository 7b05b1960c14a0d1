"""Micro-benchmark of the answer side, in one process: Answerer.respond on cache hits and misses for 10,000
names, Store.apply of one key, and Store.replace of 100,000 records (time and RSS). Prints a table.

With ``--forward`` in front (resolver.forward): forwarded answers served from the forward cache (10,000 names
outside the zone, cached as an upstream would have answered them: no upstream is asked), beside authoritative
hits through the same Forwarder, and authoritative hits through the query log (``--log-queries``, past its rate).

    .venv/bin/python bench/answer_micro.py
"""

from __future__ import annotations

import gc
import logging
import resource
import time
from collections.abc import Callable

import dns.message
import dns.rrset
import structlog

from resolver.answers import Answerer
from resolver.forward import Forwarder, Upstreams
from resolver.forward_cache import entry_from_response, parse_question
from resolver.querylog import QueryLog
from resolver.store import Store
from skydns.changes import KeyChange

ZONE = "bench.test."
NAMES = 10_000


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _changes(n: int) -> list[KeyChange]:
    return [KeyChange(f"/skydns/test/bench/svc{i}/{i:08x}",
                      f'{{"host":"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}","ttl":60,"targetstrip":1}}'.encode(),
                      i + 1) for i in range(n)]


def _queries(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        q = dns.message.make_query(f"svc{i}.bench.test.", "A")
        out.append(q.to_wire())
    return out


def _rate(respond: Callable[..., object], queries: list[bytes], rounds: int, client: tuple[str, int]) -> str:
    """Responses per second of ``respond(q, tcp=False, client=client)`` (as DnsServer calls it with a client)."""
    t0 = time.perf_counter()
    for _ in range(rounds):
        for q in queries:
            respond(q, tcp=False, client=client)
    return f"{rounds * len(queries) / (time.perf_counter() - t0):,.0f} responses/s"


def _direct(answerer: Answerer) -> Callable[..., object]:
    """The answerer as a responder given the client address (what the server calls without any wrapper)."""
    def respond(query: bytes, *, tcp: bool, client: object = None) -> object:
        return answerer.respond(query, tcp=tcp)
    return respond


def _forward_rows(answerer: Answerer, queries: list[bytes], spellings: list[bytes],
                  rounds: int) -> list[tuple[str, str]]:
    forwarder = Forwarder(answerer.respond, Upstreams([("127.0.0.1", 9)]), [ZONE], ["127.0.0.0/8"])
    client = ("127.0.0.1", 40000)
    outside = []
    for i in range(NAMES):
        query = dns.message.make_query(f"svc{i}.bench.example.", "A")
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text(f"svc{i}.bench.example.", 3600, "IN", "A", "192.0.2.1"))
        question = parse_question(query.to_wire())
        assert question is not None
        entry, _ = entry_from_response(response, question.key[:len(question.qname)], time.monotonic())
        forwarder.cache.put(question.key, entry)
        outside.append(query.to_wire())
    rows = [("same harness: authoritative cache hits, no wrapper (+1 call)",
             _rate(_direct(answerer), queries, rounds, client))]
    rows.append(("--forward: forwarded cache hits (10k names x 20)", _rate(forwarder.respond, outside, rounds, client)))
    new_bytes = [q[:12] + q[12:].replace(b"svc", b"SVC") for q in outside]
    rows.append(("--forward: forwarded cache hits via parse-and-patch", _rate(forwarder.respond, new_bytes, 1, client)))
    rows.append(("--forward: authoritative cache hits through it", _rate(forwarder.respond, queries, rounds, client)))
    assert all(forwarder.respond(q, tcp=False, client=client) is not None for q in spellings[:10])
    quiet = QueryLog(answerer.respond, rate=100, logger=structlog.get_logger("bench.null"))
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    rows.append(("--log-queries: authoritative cache hits (past the rate)", _rate(quiet.respond, queries, rounds,
                                                                                   client)))
    structlog.reset_defaults()
    return rows


def main() -> None:
    rows: list[tuple[str, str]] = []
    store = Store()
    store.replace(NAMES, _changes(NAMES))
    answerer = Answerer(store, [ZONE])
    queries = _queries(NAMES)

    t0 = time.perf_counter()
    for q in queries:
        answerer.respond(q, tcp=False)
    miss = time.perf_counter() - t0
    rows.append(("respond, cache misses (10k names)", f"{NAMES / miss:,.0f} responses/s"))

    rounds = 20
    t0 = time.perf_counter()
    for _ in range(rounds):
        for q in queries:
            answerer.respond(q, tcp=False)
    hit = time.perf_counter() - t0
    rows.append(("respond, cache hits (10k names x 20)", f"{rounds * NAMES / hit:,.0f} responses/s"))

    edns = [dns.message.make_query(f"svc{i}.bench.test.", "A", use_edns=0, payload=1232).to_wire()
            for i in range(NAMES)]
    t0 = time.perf_counter()
    for _ in range(rounds):
        for q in edns:
            answerer.respond(q, tcp=False)
    hit = time.perf_counter() - t0
    rows.append(("respond, cache hits with EDNS", f"{rounds * NAMES / hit:,.0f} responses/s"))

    # Query bytes not seen before for a question already cached (a new ID and a new case spelling each time):
    # the parse-and-patch path behind the exact-bytes lane.
    spellings = []
    for r in range(rounds):
        for i in range(NAMES):
            name = "".join(ch.upper() if (j + r) % (r + 2) == 0 else ch for j, ch in enumerate(f"svc{i}.bench.test."))
            spellings.append(dns.message.make_query(name, "A").to_wire())
    t0 = time.perf_counter()
    for q in spellings:
        answerer.respond(q, tcp=False)
    hit = time.perf_counter() - t0
    rows.append(("respond, cache hits via parse-and-patch (new bytes)", f"{len(spellings) / hit:,.0f} responses/s"))
    rows.extend(_forward_rows(answerer, queries, spellings, rounds))

    # The zone apex without apex.dns falls back to the whole zone (as CoreDNS), as does "*.<zone>": the
    # costliest miss there is - the event loop answers nothing else meanwhile.
    for name in ("bench.test.", "*.bench.test."):
        q = dns.message.make_query(name, "A").to_wire()
        t0 = time.perf_counter()
        answerer.respond(q, tcp=True)
        took = time.perf_counter() - t0
        rows.append((f"respond, cache miss for {name} A (all 10k records)", f"{took * 1000:,.1f} ms"))

    applies = 2000
    t0 = time.perf_counter()
    for i in range(applies):
        rev = store.revision + 1
        store.apply(rev, [KeyChange(f"/skydns/test/bench/svc{i}/{i:08x}", b'{"host":"10.9.9.9"}', rev)])
    took = time.perf_counter() - t0
    rows.append(("Store.apply, one key (10k store, warm cache)", f"{took / applies * 1e6:,.1f} us each"))

    # A change, then the first query for it: what a client waits for on top of the watch delivery.
    latencies = []
    for i in range(applies, applies + 2000):
        rev = store.revision + 1
        t0 = time.perf_counter()
        store.apply(rev, [KeyChange(f"/skydns/test/bench/svc{i}/{i:08x}", b'{"host":"10.8.8.8"}', rev)])
        answerer.respond(queries[i], tcp=False)
        latencies.append(time.perf_counter() - t0)
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    rows.append(("apply + first answer of the changed name, p50 / p99", f"{p50 * 1e6:,.0f} / {p99 * 1e6:,.0f} us"))

    del answerer, store, queries, edns, spellings
    gc.collect()
    big = 100_000
    changes = _changes(big)
    before = _rss_mb()
    store = Store()
    t0 = time.perf_counter()
    store.replace(big, changes)
    took = time.perf_counter() - t0
    del changes
    gc.collect()
    rows.append(("Store.replace, 100,000 records", f"{took:.2f} s"))
    rows.append(("RSS with 100,000 records (process)", f"{_rss_mb():.0f} MB (before load {before:.0f} MB)"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 30}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
