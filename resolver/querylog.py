"""The query log (``--log-queries``, off by default; CoreDNS's ``log`` plugin): one structured line per query.

:class:`QueryLog` wraps a responder. Each query's line is the event ``dns_query`` with ``client`` (the source
address), ``port``, ``proto`` (udp/tcp), ``name``, ``type``, ``rcode`` (``-`` when nothing was sent), ``size``
(the reply's bytes) and ``duration`` (seconds, from the query handed over to the reply ready - for forwarded
questions, until the upstream's answer came back).

Sampling, so the log cannot become the bottleneck: at most ``rate`` lines per second are written (the first
``rate`` queries of each second); the queries over that are only counted, and one ``dns_queries_not_logged`` line
with that count (``skipped``) follows the second they happened in, when the next query arrives. The hot path of a
query that is not logged is one clock read and two comparisons; names, types and rcodes are decoded only for lines
that are written. With the flag off the wrapper is not installed at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import structlog

from resolver.server import Reply, Respond, Stream

DEFAULT_RATE = 100

_log = structlog.get_logger("resolver.queries")


def describe_query(query: bytes) -> tuple[str, str]:
    """The question's name and type as text, for the log (``?`` for what cannot be read)."""
    try:
        name, used = dns.name.from_wire(query, 12)
        if len(query) < 14 + used:
            return name.to_text(), "?"
        qtype = dns.rdatatype.RdataType.make(int.from_bytes(query[12 + used:14 + used], "big"))
        return name.to_text(), dns.rdatatype.to_text(qtype)
    except Exception:
        return "?", "?"


def reply_rcode(reply: bytes) -> str:
    """The reply's rcode as text, the extended bits included when the reply ends with an option-less OPT (as
    every reply we build does)."""
    if len(reply) < 4:
        return "?"
    rcode = reply[3] & 0x0F
    if len(reply) >= 23 and reply[-11:-8] == b"\x00\x00\x29" and reply[-2:] == b"\x00\x00":
        rcode |= reply[-6] << 4
    try:
        return dns.rcode.to_text(dns.rcode.Rcode.make(rcode))
    except Exception:
        return str(rcode)


def parse_rate(text: str) -> int:
    """``--log-queries-rate``: a whole number of lines per second, at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"--log-queries-rate: expected a whole number of lines per second (1 or more), got {text!r}")
    return int(text)


class QueryLog:
    """A responder that logs its queries through ``inner`` (see the module docstring)."""

    def __init__(self, inner: Respond, *, rate: int = DEFAULT_RATE, inner_with_client: bool = False,
                 logger: Any = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self.inner_with_client = inner_with_client
        self.rate = max(rate, 0)
        self.log = logger if logger is not None else _log
        self._clock = clock
        self._second = 0
        self._left = self.rate
        self._skipped = 0

    def respond(self, query: bytes, *, tcp: bool, client: Any = None) -> Reply:
        start = self._clock()
        reply = self.inner(query, tcp=tcp, client=client) if self.inner_with_client else self.inner(query, tcp=tcp)
        second = int(start)
        if second != self._second:
            self._new_second(second)
        if self._left <= 0:
            self._skipped += 1
            return reply
        self._left -= 1
        if reply is None or isinstance(reply, bytes):
            self._write(query, tcp, client, reply, self._clock() - start)
        elif isinstance(reply, Stream):  # a zone transfer: resolver.primary logs those
            pass
        else:
            reply.add_done_callback(lambda f: self._write(
                query, tcp, client, None if f.cancelled() or f.exception() else f.result(), self._clock() - start))
        return reply

    def _new_second(self, second: int) -> None:
        if self._skipped:
            self.log.info("dns_queries_not_logged", skipped=self._skipped, rate=self.rate)
        self._second, self._left, self._skipped = second, self.rate, 0

    def _write(self, query: bytes, tcp: bool, client: Any, reply: bytes | None, duration: float) -> None:
        try:
            name, qtype = describe_query(query)
            host, port = (client[0], client[1]) if client else ("-", 0)
            self.log.info("dns_query", client=host, port=port, proto="tcp" if tcp else "udp", name=name, type=qtype,
                          rcode=reply_rcode(reply) if reply is not None else "-",
                          size=len(reply) if reply is not None else 0, duration=round(duration, 6))
        except Exception:
            pass  # the log must never cost an answer
