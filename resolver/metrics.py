"""Prometheus metrics of the answer side (store, lookup, answer cache, the DNS server), in the default registry.

Rare events are plain counters. The per-query numbers (responses by rcode, cache hits and misses, answer durations)
are kept as plain integers on per-process objects (an attribute or list-item increment costs far less than a locked
counter on the hot path) and exported at scrape time by a collector that sums every live one:

* :class:`ResponseCounts` - responses by rcode of one responder, with the ``source`` it reports as:
  ``records`` (the answer layer, :class:`AnswerStats`: the main records and every view), ``loading`` (the SERVFAIL
  the server sends before the first load, :func:`resolver.server.servfail`) or ``forward`` (answers forwarded
  upstream or from the forward cache, :mod:`resolver.forward`). Every response the server sends is counted once,
  by the responder that made it (a view's answer replaced by the main records' answer is uncounted by
  :mod:`resolver.views`); zone transfers and NOTIFY replies of :mod:`resolver.primary` are not counted here.
* :class:`ServerStats` - per transport, how long answers took: from the query's datagram (UDP) or complete
  message (TCP) having been read to its answer having been handed to the socket, in nanoseconds counted into the
  buckets :data:`ANSWER_BUCKETS` (a ``bisect`` per answer). Answers the responder makes at once are kept apart
  (``answered="at_once"``) from those that come later (``answered="later"``: forwarded questions that waited for
  an upstream), so that the resolver's own speed can be watched apart from its upstreams'. Streamed zone
  transfers, dropped answers and queries that are not answered are not measured.

Metric names:

* ``dnssync_resolver_bad_values_total`` - stored values that did not decode (skipped, one per key version);
* ``dnssync_resolver_responses_total{rcode,source}`` - DNS responses sent, by rcode and ``source`` (above);
* ``dnssync_resolver_answer_duration_seconds{transport,answered}`` - histogram of answer durations, ``transport``
  ``udp`` or ``tcp``, ``answered`` ``at_once`` or ``later`` (above);
* ``dnssync_resolver_answer_cache_hits_total`` / ``..._misses_total`` - encoded-answer cache lookups;
* ``dnssync_resolver_answer_cache_invalidations_total`` - cached answers dropped because the records changed;
* ``dnssync_resolver_answer_cache_entries`` - cached answers now;
* ``dnssync_resolver_internal_errors_total`` - queries whose handling failed unexpectedly (answered SERVFAIL);
* ``dnssync_resolver_records`` / ``dnssync_resolver_bad_records`` - keys in the in-memory store now, and those of
  them whose value did not decode.

With ``--workers`` every worker exports its own series and the supervisor adds a ``worker`` label
(:mod:`resolver.workers`); sum ``without (worker)`` for totals (for the histogram: ``sum by (le, transport)``).
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterator
from typing import Any

import dns.rcode
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

BAD_VALUES = Counter("dnssync_resolver_bad_values", "Stored values that did not decode and were skipped")
INTERNAL_ERRORS = Counter("dnssync_resolver_internal_errors",
                          "Queries whose handling failed unexpectedly (answered SERVFAIL or dropped)")

RCODES = 24  # list length of ResponseCounts.rcodes: index = rcode (BADVERS is 16)
ANSWER_BUCKETS = (0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)  # seconds
BOUNDS_NS = tuple(round(b * 1e9) for b in ANSWER_BUCKETS)  # the same bounds in ns, for bisect_left
SOURCES = ("records", "loading", "forward")


class ResponseCounts:
    """Responses made by one responder, by rcode (plain integers, read by the collector at scrape time)."""

    __slots__ = ("__weakref__", "rcodes", "source")

    def __init__(self, source: str = "records") -> None:
        assert source in SOURCES, source
        self.source = source
        self.rcodes = [0] * RCODES
        _RESPONSES.add(self)

    def count(self, reply: bytes) -> None:
        """Count one response by its header rcode (off the hot path; the hot paths index ``rcodes`` inline)."""
        self.rcodes[reply[3] & 0x0F] += 1


class AnswerStats(ResponseCounts):
    """Plain-integer counters of one answerer (responses with ``source="records"``, the answer cache)."""

    __slots__ = ("cache_entries", "hits", "invalidations", "misses")

    def __init__(self) -> None:
        super().__init__("records")
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self.cache_entries = 0
        _ANSWERERS.add(self)


class Durations:
    """Answer durations of one transport: ``counts[i]`` answers took at most ``BOUNDS_NS[i]`` ns and more than the
    bound before (the last item: more than every bound), ``sum_ns`` their total."""

    __slots__ = ("counts", "sum_ns")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS_NS) + 1)
        self.sum_ns = 0

    def observe(self, ns: int) -> None:
        """Count one answer that took ``ns`` nanoseconds (the UDP hot path does the same inline)."""
        self.counts[bisect.bisect_left(BOUNDS_NS, ns)] += 1
        self.sum_ns += ns

    def cumulative(self) -> list[int]:
        """Answers at most each bound, then all of them (the ``le`` buckets, ``+Inf`` last)."""
        out, total = [], 0
        for n in self.counts:
            total += n
            out.append(total)
        return out


class ServerStats:
    """The answer durations of one DNS server, per transport, answered at once or later."""

    __slots__ = ("__weakref__", "tcp", "tcp_later", "udp", "udp_later")

    def __init__(self) -> None:
        self.udp = Durations()
        self.tcp = Durations()
        self.udp_later = Durations()
        self.tcp_later = Durations()
        _SERVERS.add(self)


_RESPONSES: weakref.WeakSet[ResponseCounts] = weakref.WeakSet()
_ANSWERERS: weakref.WeakSet[AnswerStats] = weakref.WeakSet()
_SERVERS: weakref.WeakSet[ServerStats] = weakref.WeakSet()
_STORES: weakref.WeakSet[Any] = weakref.WeakSet()


def track_store(store: Any) -> None:
    """Export ``len(store)`` and ``store.bad_keys`` at scrape time (the store calls this itself)."""
    _STORES.add(store)


def responses_family(counts: list[ResponseCounts]) -> CounterMetricFamily:
    """``dnssync_resolver_responses_total{rcode,source}`` summed over ``counts`` (rcodes never seen left out)."""
    family = CounterMetricFamily("dnssync_resolver_responses", "DNS responses sent, by rcode and by what made "
                                 "them (records, loading, forward)", labels=["rcode", "source"])
    for source in SOURCES:
        totals = [0] * RCODES
        for c in counts:
            if c.source == source:
                for i, n in enumerate(c.rcodes):
                    totals[i] += n
        for i, n in enumerate(totals):
            if n:
                family.add_metric([dns.rcode.to_text(dns.rcode.Rcode.make(i)), source], n)
    return family


def durations_family(servers: list[ServerStats]) -> HistogramMetricFamily:
    """``dnssync_resolver_answer_duration_seconds{transport,answered}`` summed over ``servers`` (no samples without
    a server)."""
    family = HistogramMetricFamily("dnssync_resolver_answer_duration_seconds",
                                   "Time from a query read to its answer handed to the socket (answered at once, or "
                                   "later: after waiting for an upstream)", labels=["transport", "answered"])
    if not servers:
        return family
    for transport in ("udp", "tcp"):
        for answered, attribute in (("at_once", transport), ("later", f"{transport}_later")):
            merged = Durations()
            for s in servers:
                d: Durations = getattr(s, attribute)
                merged.counts = [a + b for a, b in zip(merged.counts, d.counts, strict=True)]
                merged.sum_ns += d.sum_ns
            cumulative = merged.cumulative()
            buckets = [(floatToGoString(b), n) for b, n in zip(ANSWER_BUCKETS, cumulative, strict=False)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric([transport, answered], buckets, merged.sum_ns / 1e9)
    return family


class _AnswerCollector(Collector):
    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        yield responses_family(list(_RESPONSES))
        yield durations_family(list(_SERVERS))
        sources = list(_ANSWERERS)
        yield CounterMetricFamily("dnssync_resolver_answer_cache_hits", "Answers served from the encoded cache",
                                  value=sum(s.hits for s in sources))
        yield CounterMetricFamily("dnssync_resolver_answer_cache_misses", "Answers built from the records",
                                  value=sum(s.misses for s in sources))
        yield CounterMetricFamily("dnssync_resolver_answer_cache_invalidations",
                                  "Cached answers dropped because records they were built from changed",
                                  value=sum(s.invalidations for s in sources))
        yield GaugeMetricFamily("dnssync_resolver_answer_cache_entries", "Encoded answers cached now",
                                value=sum(s.cache_entries for s in sources))
        stores = list(_STORES)
        yield GaugeMetricFamily("dnssync_resolver_records", "Keys in the in-memory store",
                                value=sum(len(st) for st in stores))
        yield GaugeMetricFamily("dnssync_resolver_bad_records", "Keys in the store whose value did not decode",
                                value=sum(st.bad_keys for st in stores))

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        return iter(())


REGISTRY.register(_AnswerCollector())
