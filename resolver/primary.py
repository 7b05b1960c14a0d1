"""The hidden primary: the responder in front of the resolver that serves zone transfers, NOTIFY and TSIG.

:class:`Primary` wraps the resolver's responder chain (outermost). A query that :func:`resolver.transfer.
wants_primary` does not pick (everything but AXFR, IXFR, NOTIFY and TSIG-signed messages) goes to the inner
responder untouched. The rest:

* AXFR/IXFR from a client the access list and the TSIG key admit (:mod:`resolver.transfer`): a
  :class:`resolver.server.Stream` of messages over TCP; an IXFR over UDP one message. A zone whose records are
  not built yet, or a resolver whose serials are not yet exact (right after a start, :mod:`resolver.serials`),
  answers SERVFAIL: the secondary retries, and never sees a serial that would later go down.
* NOTIFY for a served zone: acknowledged; other zones REFUSED.
* any other signed query (a secondary's SOA check): verified, answered by the inner responder as if unsigned,
  the reply signed; a bad signature NOTAUTH.

It keeps one :class:`resolver.zonecontent.ZoneContent` per served zone, fed by the store's listener calls; a
reload's rebuild runs in slices on the event loop (:meth:`ZoneContent.build_steps`), so answering goes on. Each
time a zone's serial moves (and once when the serials become exact), the :class:`resolver.notify.Notifier` is
told. The zone contents are those of the main records: ``--view`` records are never transferred.

Every transfer is logged (``zone_transfer``: client, zone, kind - ``axfr``, ``ixfr`` for a difference,
``ixfr_full`` for a full zone in answer to an IXFR, ``ixfr_current`` when the client is up to date -, transport,
serial, the client's serial, records, messages, bytes, seconds, completed) and counted; a refused one is logged
as ``zone_transfer_refused`` with the reason. Metrics: ``dnssync_resolver_transfers_total{kind,result}``,
``..._transfer_records_total{kind}``, ``..._transfer_bytes_total{kind}``, ``..._transfer_seconds{kind}``,
``dnssync_resolver_zone_serial{zone}``, ``dnssync_resolver_journal_deltas{zone}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import dns.rcode
import dns.tsig
import structlog
from prometheus_client import Counter, Gauge, Histogram

from resolver import transfer
from resolver.journal import Journal
from resolver.lookup import Lookup
from resolver.notify import Notifier
from resolver.server import Reply, Respond, Stream
from resolver.transfer import Kind, Network, Rejected, Request
from resolver.zonecontent import ZoneContent

log = structlog.get_logger("resolver.primary")

TRANSFERS = Counter("dnssync_resolver_transfers", "Zone transfer requests, by kind and result", ["kind", "result"])
TRANSFER_RECORDS = Counter("dnssync_resolver_transfer_records", "Records sent in zone transfers", ["kind"])
TRANSFER_BYTES = Counter("dnssync_resolver_transfer_bytes", "Bytes sent in zone transfers", ["kind"])
TRANSFER_SECONDS = Histogram("dnssync_resolver_transfer_seconds", "Duration of zone transfers", ["kind"],
                             buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60))
ZONE_SERIAL = Gauge("dnssync_resolver_zone_serial", "The serial of each transferable zone", ["zone"])
JOURNAL_DELTAS = Gauge("dnssync_resolver_journal_deltas", "Deltas held in each zone's IXFR journal", ["zone"])


def _client_text(client: object) -> str:
    if isinstance(client, tuple) and len(client) >= 2:
        return f"{client[0]}:{client[1]}"
    return "-"


class Primary:
    """Zone transfers, NOTIFY and TSIG in front of ``inner`` (module docstring)."""

    def __init__(self, inner: Respond, lookup: Lookup, *, acl: Sequence[Network] = (), key: dns.tsig.Key | None = None,
                 inner_with_client: bool = False, notifier: Notifier | None = None,
                 journal_deltas: int = 1000, journal_records: int = 200_000) -> None:
        self.inner = inner
        self.inner_with_client = inner_with_client
        self.lookup = lookup
        self.acl = tuple(acl)
        self.key = key
        self.notifier = notifier
        self.exact = False  # the serials include etcd's history (set by the resolver after resolver.serials)
        loaded = getattr(lookup.store, "loaded_revision", 0) > 0  # else: built at the first load
        self.contents = {
            ".".join(zone.labels): ZoneContent(lookup, zone, build=loaded,
                                               journal=Journal(max_deltas=journal_deltas, max_records=journal_records))
            for zone in lookup.zones}
        self._builder: asyncio.Task[None] | None = None
        lookup.store.add_listener(self._on_change)
        self._schedule_build()

    # -- following the store -------------------------------------------------------------------------------

    def _on_change(self, keys: set[str] | None) -> None:
        for name, content in self.contents.items():
            delta = content.on_change(keys)
            if delta is not None:
                self._moved(name, content)
        self._schedule_build()

    def _moved(self, name: str, content: ZoneContent) -> None:
        ZONE_SERIAL.labels(name).set(content.serial)
        JOURNAL_DELTAS.labels(name).set(len(content.journal))
        if self.notifier is not None and self.exact and content.ready:
            self.notifier.changed(name)

    def _schedule_build(self) -> None:
        if any(c.building for c in self.contents.values()) and (self._builder is None or self._builder.done()):
            try:
                self._builder = asyncio.get_running_loop().create_task(self._build(), name="zone-build")
            except RuntimeError:  # no loop (a test driving the store by hand): build at once
                for content in self.contents.values():
                    content.build_now()

    async def _build(self) -> None:
        while True:
            pending = [(n, c) for n, c in self.contents.items() if c.building]
            if not pending:
                return
            for name, content in pending:
                was_ready, serial = content.ready, content.serial
                started = time.perf_counter()
                for _ in content.build_steps():
                    await asyncio.sleep(0)
                log.info("zone_built", zone=name, serial=content.serial, records=len(content.records or ()),
                         seconds=round(time.perf_counter() - started, 3), rebuild=was_ready)
                if not was_ready or content.serial != serial:
                    self._moved(name, content)

    def set_exact(self) -> None:
        """The serials are final (etcd's history read): NOTIFY every zone once, then at every change."""
        self.exact = True
        for name, content in self.contents.items():
            if content.ready:
                self._moved(name, content)

    def soa_now(self, zone: str) -> tuple[int, bytes] | None:
        """(serial, SOA wire) of a zone that can be transferred, for the notifier; None: not yet."""
        content = self.contents.get(zone)
        if content is None or not content.ready or not self.exact:
            return None
        return content.serial, content.soa()

    async def close(self) -> None:
        self.lookup.store.remove_listener(self._on_change)
        if self._builder is not None:
            self._builder.cancel()
        if self.notifier is not None:
            await self.notifier.close()

    # -- answering -----------------------------------------------------------------------------------------

    def respond(self, query: bytes, *, tcp: bool, client: Any = None) -> Reply:
        if not transfer.wants_primary(query):
            return self._inner(query, tcp, client)
        try:
            return self._primary(query, tcp, client)
        except Exception:
            log.exception("primary_request_failed", client=_client_text(client))
            return transfer._bare(query, dns.rcode.SERVFAIL)

    def _inner(self, query: bytes, tcp: bool, client: Any) -> Reply:
        return self.inner(query, tcp=tcp, client=client) if self.inner_with_client else self.inner(query, tcp=tcp)

    def _primary(self, query: bytes, tcp: bool, client: Any) -> Reply:
        parsed = transfer.parse_request(query, self.key)
        if isinstance(parsed, Rejected):
            if parsed.reason == "not_ours":
                return self._inner(query, tcp, client)
            self._refused("request", client, parsed.reason, tcp)
            return parsed.reply
        request = parsed
        if request.kind is Kind.NOTIFY:
            if request.zone in self.contents:
                return transfer.notify_ack(request, self.key)
            return transfer.refusal(request, dns.rcode.REFUSED, self.key)
        if request.kind is Kind.SIGNED:
            return self._signed(request, tcp, client)
        return self._transfer(request, tcp, client)

    def _signed(self, request: Request, tcp: bool, client: Any) -> Reply:
        reply = self._inner(transfer.unsigned_query(request), tcp, client)
        if isinstance(reply, bytes):
            return transfer.sign_reply(request, reply, self.key)
        return None  # a signed query that is forwarded: not something a secondary asks

    def _refused(self, kind: str, client: object, reason: str, tcp: bool, zone: str = "-") -> None:
        TRANSFERS.labels(kind, "refused").inc()
        log.warning("zone_transfer_refused", client=_client_text(client), zone=zone, kind=kind, reason=reason,
                    transport="tcp" if tcp else "udp")

    def _transfer(self, request: Request, tcp: bool, client: Any) -> Reply:
        kind = request.kind.value
        if not transfer.allowed(self.acl, client):
            self._refused(kind, client, "not_in_allow_transfer", tcp, request.zone)
            return transfer.refusal(request, dns.rcode.REFUSED, self.key)
        if self.key is not None and not request.signed:
            self._refused(kind, client, "tsig_required", tcp, request.zone)
            return transfer.refusal(request, dns.rcode.REFUSED, self.key)
        content = self.contents.get(request.zone)
        if content is None:
            self._refused(kind, client, "not_a_zone", tcp, request.zone)
            return transfer.refusal(request, dns.rcode.NOTAUTH, self.key)
        if not content.ready or not self.exact:
            TRANSFERS.labels(kind, "not_ready").inc()
            log.info("zone_transfer_not_ready", client=_client_text(client), zone=request.zone, kind=kind)
            return transfer.refusal(request, dns.rcode.SERVFAIL, self.key)
        if request.kind is Kind.AXFR:
            if not tcp:
                self._refused(kind, client, "axfr_over_udp", tcp, request.zone)
                return transfer.refusal(request, dns.rcode.REFUSED, self.key)
            records = transfer.axfr_records(content)
            return self._stream(request, "axfr", records, content.serial, client)
        assert request.serial is not None
        form, records = transfer.ixfr_records(content, request.serial)
        kind = {"incremental": "ixfr", "full": "ixfr_full", "current": "ixfr_current"}[form]
        if not tcp:
            started = time.perf_counter()
            reply = transfer.udp_ixfr(request, records, self.key, content.soa())
            sent = int.from_bytes(reply[6:8], "big")
            self._done(request, kind, "udp", client, content.serial, started, True, sent, 1, len(reply))
            return reply
        return self._stream(request, kind, records, content.serial, client)

    def _stream(self, request: Request, kind: str, records: list[bytes], serial: int, client: Any) -> Stream:
        started = time.perf_counter()

        def done(completed: bool, messages: int, size: int) -> None:
            self._done(request, kind, "tcp", client, serial, started, completed, len(records), messages, size)

        return Stream(transfer.stream(request, records, self.key), done)

    def _done(self, request: Request, kind: str, transport: str, client: Any, serial: int, started: float,
              completed: bool, records: int, messages: int, size: int) -> None:
        seconds = time.perf_counter() - started
        TRANSFERS.labels(kind, "ok" if completed else "aborted").inc()
        TRANSFER_RECORDS.labels(kind).inc(records)
        TRANSFER_BYTES.labels(kind).inc(size)
        TRANSFER_SECONDS.labels(kind).observe(seconds)
        log.info("zone_transfer", client=_client_text(client), zone=request.zone, kind=kind, transport=transport,
                 serial=serial, client_serial=request.serial, records=records, messages=messages, bytes=size,
                 seconds=round(seconds, 4), completed=completed, signed=request.signed)
