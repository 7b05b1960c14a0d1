"""Prometheus metrics of the answer side (store, lookup, answer cache), in the default registry.

Rare events are plain counters. The per-query counts (responses by rcode, cache hits and misses) are kept as
plain integers on each :class:`AnswerStats` (an attribute increment costs far less than a locked counter on the
hot path) and exported at scrape time by a collector that sums every live ``AnswerStats``.

Metric names:

* ``dnssync_resolver_bad_values_total`` - stored values that did not decode (skipped, one per key version);
* ``dnssync_resolver_responses_total{rcode}`` - DNS responses sent (by the answer layer; dropped packets not);
* ``dnssync_resolver_answer_cache_hits_total`` / ``..._misses_total`` - encoded-answer cache lookups;
* ``dnssync_resolver_answer_cache_invalidations_total`` - cached answers dropped because the records changed;
* ``dnssync_resolver_answer_cache_entries`` - cached answers now;
* ``dnssync_resolver_internal_errors_total`` - queries whose handling failed unexpectedly (answered SERVFAIL);
* ``dnssync_resolver_records`` / ``dnssync_resolver_bad_records`` - keys in the in-memory store now, and those of
  them whose value did not decode.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import dns.rcode
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

BAD_VALUES = Counter("dnssync_resolver_bad_values", "Stored values that did not decode and were skipped")
INTERNAL_ERRORS = Counter("dnssync_resolver_internal_errors",
                          "Queries whose handling failed unexpectedly (answered SERVFAIL or dropped)")


class AnswerStats:
    """Plain-integer counters of one answerer, read by the collector at scrape time."""

    __slots__ = ("__weakref__", "cache_entries", "hits", "invalidations", "misses", "rcodes")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self.cache_entries = 0
        self.rcodes = [0] * 24  # index = rcode (BADVERS is 16)
        _SOURCES.add(self)


_SOURCES: weakref.WeakSet[AnswerStats] = weakref.WeakSet()
_STORES: weakref.WeakSet[Any] = weakref.WeakSet()


def track_store(store: Any) -> None:
    """Export ``len(store)`` and ``store.bad_keys`` at scrape time (the store calls this itself)."""
    _STORES.add(store)


class _AnswerCollector(Collector):
    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        sources = list(_SOURCES)
        responses = CounterMetricFamily("dnssync_resolver_responses", "DNS responses sent, by rcode",
                                        labels=["rcode"])
        totals = [0] * 24
        for s in sources:
            for i, n in enumerate(s.rcodes):
                totals[i] += n
        for i, n in enumerate(totals):
            if n:
                responses.add_metric([dns.rcode.to_text(dns.rcode.Rcode.make(i))], n)
        yield responses
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
