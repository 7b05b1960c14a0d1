"""The message layer: one DNS query in (bytes), the response out (bytes), with a cache of encoded answers.

:meth:`Answerer.respond` never raises. Protocol decisions:

* A packet shorter than a header, or with QR=1 (a response), gets no answer at all (``None``); every other
  packet gets one.
* Opcode other than QUERY -> NOTIMP. No question, more than one question, an unparsable question, trailing
  bytes after the message, a malformed OPT, two OPTs -> FORMERR (question omitted when it cannot be parsed).
  EDNS version other than 0 -> BADVERS (RFC 6891) with an OPT of version 0 and the query's DO bit (RFC 3225
  §3). A TSIG-signed query -> NOTAUTH (this answerer holds no keys; :mod:`resolver.primary` verifies signed
  queries before they get here). Every error reply to a query that carries an OPT - even one we could not
  parse - carries an OPT too (RFC 6891 §7).
* QCLASS IN is answered; QCLASS ANY is answered like IN (records are class IN); any other class -> REFUSED.
  QTYPE AXFR/IXFR -> REFUSED over UDP and TCP alike (this answerer transfers no zone: an answer, never silence;
  with ``--allow-transfer`` the hidden primary of :mod:`resolver.primary`, in front of it, takes those);
  the meta types OPT/TSIG/TKEY as a question -> FORMERR.
* Names outside every served zone -> REFUSED (not an open resolver). AA is set on answers from a zone; RD
  and CD are copied from the query; RA is never set.
* EDNS: a query with an OPT gets an OPT back (payload 1232, DO echoed, no options - options in the query are
  ignored). UDP answers are sized to the client's payload (512 without EDNS, never below 512). When the answer
  does not fit, the additional section is dropped first (no TC: it only holds glue); when it still does not fit,
  the reply carries TC=1 and only the question (+ OPT), so the client retries over TCP. TCP allows 65535 bytes.
  A referral (a name below a zone cut, :mod:`resolver.lookup`) has AA clear, and when its additional section
  holds in-domain glue that does not fit, the reply is truncated instead (RFC 9471: glue is not optional there).

The cache: encoded answers keyed by the lower-cased question (qname wire bytes, then qtype and qclass). EDNS,
payload size, the DO bit and UDP/TCP do not split the key: each entry keeps the full answer and, when it is over
512 bytes and has glue, the answer without the additional section; a hit picks the largest form that fits (or
makes the truncated form: header with TC and the question) and appends the OPT. On a hit the reply is
the cached bytes with the query's ID, RD/CD bits and question name (original case, same length) patched in;
owner names that are compression pointers into the question follow the query's case. The hit path parses the
header and question with slicing (no dnspython); anything unusual goes to the dnspython slow path. In front of
that sits an exact-bytes lane: the query bytes after the ID (flags, counts, question, OPT) map to the reply bytes
after the ID that were last sent for them, per transport, as long as the cache entry they came from is valid;
a repeated query then costs one dict lookup and one concatenation.

Invalidation is driven by the store, never by TTL: while an answer is built, every etcd path it read is
recorded (:mod:`resolver.lookup` lists them: names with everything below them, closest-encloser and wildcard
reads, CNAME targets, glue, apex/NS reads, and the zone for negative and SOA answers, whose serial changes with
any change in the zone). A change of key K drops the entries registered under K and under every ancestor path
of K, and those registered under the marker ``<parent of K>/`` (answers that read the direct children of a
path); :meth:`Store.replace` drops everything, a serial that moves drops what was registered under its zone. Answers
built from leased records (their TTL counts down) are served from the cache for at most one second. The cache
holds at most ``cache_size`` entries (100,000 by default, about 60 MB at worst); when full, the oldest eighth is
dropped. The exact-bytes lane holds at most a quarter of that and is simply cleared when full.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Sequence

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import structlog

from resolver import metrics, wire
from resolver.lookup import RR, Lookup, Mode, SoaFields
from resolver.store import Store

log = structlog.get_logger()

ADVERTISED_PAYLOAD = 1232
LEASED_CACHE_SECONDS = 1.0
DEFAULT_CACHE_SIZE = 100_000

_OPT_PLAIN = struct.pack("!BHHIH", 0, 41, ADVERTISED_PAYLOAD, 0, 0)
_OPT_DO = struct.pack("!BHHIH", 0, 41, ADVERTISED_PAYLOAD, 0x8000, 0)
_QDCOUNT1_NOAR = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_QDCOUNT1_AR1 = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_ONE_QUESTION = _QDCOUNT1_NOAR
_HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")

_REFUSED_TYPES = {dns.rdatatype.AXFR, dns.rdatatype.IXFR}
_FORMERR_TYPES = {dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY}


class _Cached:
    """One question's encoded answer: the full reply, maybe the reply without the additional section, and
    where the question ends (the truncated reply is the header and question of the full one, made on demand)."""

    __slots__ = ("deps", "expires", "full", "noextra", "qend", "rcode", "valid")

    def __init__(self, full: bytes, noextra: bytes | None, qend: int, rcode: int, deps: tuple[str, ...],
                 expires: float) -> None:
        self.full = full
        self.noextra = noextra
        self.qend = qend
        self.rcode = rcode
        self.deps = deps
        self.expires = expires
        self.valid = True  # False once dropped: replies remembered from it must not be served any more


def _compose(entry: _Cached, head4: bytes, qname: bytes, edns: bool, do: bool, payload: int, tcp: bool) -> bytes:
    """The reply to one query from a cache entry (see the module docstring)."""
    if tcp:
        limit = 65535 - 11 if edns else 65535  # the OPT record (11 bytes) must fit too, or TCP cannot frame it
    elif edns:
        limit = (payload if payload > 512 else 512) - 11
    else:
        limit = 512
    wire = entry.full
    qend = entry.qend
    if len(wire) > limit:
        nx = entry.noextra
        if nx is not None and len(nx) <= limit:
            wire = nx
        else:  # truncated: the header with TC and empty sections, and the question
            wire = wire[:2] + bytes((wire[2] | 0x02,)) + wire[3:4] + _ONE_QUESTION + wire[12:qend + 4]
    flags = bytes((wire[2] | (head4[2] & 0x01), wire[3] | (head4[3] & 0x10)))
    if edns:
        arcount = ((wire[10] << 8) | wire[11]) + 1
        return b"".join((head4[:2], flags, wire[4:10], arcount.to_bytes(2, "big"), qname, wire[qend:],
                         _OPT_DO if do else _OPT_PLAIN))
    return b"".join((head4[:2], flags, wire[4:12], qname, wire[qend:]))


def _bare(query: bytes, rcode: int, opt_flags: int | None = None) -> bytes:
    """A header-only reply: the query's ID, opcode and RD, QR set, the rcode; with ``opt_flags`` (the query's
    OPT flags) our OPT, DO copied."""
    qid, flags = struct.unpack_from("!HH", query)
    out_flags = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | (rcode & 0xF)
    if opt_flags is None:
        return _HEADER.pack(qid, out_flags, 0, 0, 0, 0)
    return _HEADER.pack(qid, out_flags, 0, 0, 0, 1) + (_OPT_DO if opt_flags & 0x8000 else _OPT_PLAIN)


def _skip_name(q: bytes, pos: int) -> int:
    """The offset after the (maybe compressed) name at ``pos``; IndexError/ValueError when it is broken."""
    while True:
        length = q[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(q):
                raise IndexError("cut pointer")
            return pos + 2
        if length > 63:
            raise ValueError("bad label type")
        pos += length + 1


def query_opt_flags(q: bytes) -> int | None:
    """The flags (DO at 0x8000) of the first OPT record in a query's additional section, read as far as the
    message can be walked at all; None when there is none (or the message breaks before it)."""
    try:
        qd, an, ns, ar = struct.unpack_from("!HHHH", q, 4)
        pos = 12
        for _ in range(qd):
            pos = _skip_name(q, pos) + 4
        for i in range(an + ns + ar):
            pos = _skip_name(q, pos)
            rtype, _, ttl, rdlen = struct.unpack_from("!HHIH", q, pos)
            if i >= an + ns and rtype == 41:
                return ttl & 0xFFFF
            pos += 10 + rdlen
    except (IndexError, ValueError, struct.error):
        return None
    return None


class Answerer:
    """Answers DNS queries for ``zones`` from ``store`` (see the module docstring)."""

    def __init__(self, store: Store, zones: Sequence[str], *, own_records_only: bool = False,
                 subtree_answers: bool = False, soa: SoaFields | None = None,
                 min_lease_ttl: int = 30, max_lease_ttl: int = 86400,
                 cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.store = store
        mode = Mode.SUBTREE if subtree_answers else Mode.OWN if own_records_only else Mode.DEFAULT
        self.lookup = Lookup(store, zones, mode=mode, soa=soa, min_lease_ttl=min_lease_ttl,
                             max_lease_ttl=max_lease_ttl)
        self.cache_size = max(cache_size, 8)
        # The exact-bytes lane holds a copy of each reply: keep it to the hot part (a flood of new names or of
        # 0x20 case spellings just clears it now and then).
        self._seen_size = max(self.cache_size // 4, 1024)
        self.stats = metrics.AnswerStats()
        self._cache: dict[bytes, _Cached] = {}
        self._deps: dict[str, bytes | set[bytes]] = {}
        # Exact query bytes after the ID -> (entry, reply after the ID), per transport (sizes differ).
        self._seen_udp: dict[bytes, tuple[_Cached, bytes]] = {}
        self._seen_tcp: dict[bytes, tuple[_Cached, bytes]] = {}
        store.add_listener(self._on_change)

    # -- the public entry point ----------------------------------------------------------------------------

    def respond(self, query: bytes, *, tcp: bool) -> bytes | None:
        """The response to one DNS message, or None when nothing must be sent. Never raises."""
        try:
            # The fastest lane: these exact bytes (after the ID) were answered before from an entry that is
            # still valid, so the reply is that reply with this query's ID.
            seen = (self._seen_tcp if tcp else self._seen_udp).get(query[2:])
            if seen is not None:
                entry = seen[0]
                if entry.valid and (entry.expires == 0.0 or time.monotonic() < entry.expires):
                    stats = self.stats
                    stats.hits += 1
                    stats.rcodes[entry.rcode] += 1
                    return query[:2] + seen[1]
            return self._respond(query, tcp)
        except Exception:
            metrics.INTERNAL_ERRORS.inc()
            try:
                log.exception("query_failed", size=len(query))
                if len(query) >= 12 and not query[2] & 0x80:
                    self.stats.rcodes[dns.rcode.SERVFAIL] += 1
                    return _bare(query, dns.rcode.SERVFAIL)
            except Exception:
                pass
            return None

    def _respond(self, q: bytes, tcp: bool) -> bytes | None:
        n = len(q)
        if n < 12:
            return None
        b2 = q[2]
        if b2 & 0x80:
            return None
        counts = q[4:12]
        if not b2 & 0x78 and counts in (_QDCOUNT1_NOAR, _QDCOUNT1_AR1):
            # Fast path: one plain question, maybe one OPT.
            pos = 12
            while pos < n:
                length = q[pos]
                if length == 0 or length > 63:
                    break
                pos += length + 1
            if pos < n and q[pos] == 0 and pos - 12 < 255 and pos + 5 <= n:
                qend = pos + 1
                p = qend + 4
                edns = False
                do = False
                payload = 512
                ok = False
                if counts[7] == 0:
                    ok = p == n
                elif p + 11 <= n and q[p] == 0 and q[p + 1] == 0 and q[p + 2] == 41 and q[p + 6] == 0:
                    rdlen = (q[p + 9] << 8) | q[p + 10]
                    end = p + 11 + rdlen
                    if end == n:
                        i = p + 11
                        while i + 4 <= end:
                            i += 4 + ((q[i + 2] << 8) | q[i + 3])
                        ok = i == end
                        edns = True
                        payload = (q[p + 3] << 8) | q[p + 4]
                        do = bool(q[p + 7] & 0x80)
                if ok:
                    qname = q[12:qend]
                    entry = self._entry(qname, q[qend:p])
                    reply = _compose(entry, q[:4], qname, edns, do, payload, tcp)
                    seen = self._seen_tcp if tcp else self._seen_udp
                    if len(seen) >= self._seen_size and q[2:] not in seen:
                        seen.clear()
                    seen[q[2:]] = (entry, reply[2:])
                    return reply
        return self._slow(q, tcp)

    # -- the dnspython path for everything unusual ---------------------------------------------------------

    def _slow(self, q: bytes, tcp: bool) -> bytes | None:
        _, flags = struct.unpack_from("!HH", q)
        opcode = (flags >> 11) & 0xF
        msg: dns.message.Message | None = None
        rcode_if_bad = dns.rcode.FORMERR
        try:
            msg = dns.message.from_wire(q)
        except dns.message.UnknownTSIGKey:
            rcode_if_bad = dns.rcode.NOTAUTH
        except Exception:
            msg = None
        if opcode != dns.opcode.QUERY:
            return self._error(q, msg, dns.rcode.NOTIMP)
        if msg is None or len(msg.question) != 1:
            return self._error(q, msg if rcode_if_bad == dns.rcode.FORMERR else None, rcode_if_bad)
        if msg.edns > 0:
            return self._error(q, msg, dns.rcode.BADVERS)
        question = msg.question[0]
        qname = question.name.to_wire()
        assert isinstance(qname, bytes)
        entry = self._entry(qname, struct.pack("!HH", question.rdtype, question.rdclass))
        edns = msg.edns == 0
        do = bool(msg.ednsflags & dns.flags.DO)
        return _compose(entry, q[:4], qname, edns, do, msg.payload, tcp)

    def _error(self, q: bytes, msg: dns.message.Message | None, rcode: int) -> bytes:
        self.stats.rcodes[rcode] += 1
        if msg is not None and len(msg.question) <= 1:
            try:
                response = dns.message.make_response(msg)
                response.flags |= msg.flags & dns.flags.CD
                if msg.edns >= 0:  # our OPT (version 0 also for BADVERS), the query's DO bit copied
                    response.use_edns(0, msg.ednsflags & dns.flags.DO, ADVERTISED_PAYLOAD)
                response.set_rcode(dns.rcode.Rcode.make(rcode))
                return response.to_wire()
            except Exception:
                pass
        opt_flags = (msg.ednsflags if msg.edns >= 0 else None) if msg is not None else query_opt_flags(q)
        return _bare(q, rcode, opt_flags)

    # -- building and caching answers ----------------------------------------------------------------------

    def _entry(self, qname: bytes, type_class: bytes) -> _Cached:
        """The cached answer to a question (name in wire form, then QTYPE and QCLASS bytes), built on a miss."""
        key = qname.lower() + type_class
        entry = self._cache.get(key)
        if entry is not None and (entry.expires == 0.0 or time.monotonic() < entry.expires):
            stats = self.stats
            stats.hits += 1
            stats.rcodes[entry.rcode] += 1
            return entry
        qtype, qclass = _TYPE_CLASS.unpack(type_class)
        return self._build(key, qname, qtype, qclass)

    def _build(self, key: bytes, qname_wire: bytes, qtype: int, qclass: int) -> _Cached:
        self.stats.misses += 1
        deps: tuple[str, ...] = ()
        leased = False
        answer: list[RR] = []
        authority: list[RR] = []
        additional: list[RR] = []
        rcode: int
        authoritative, glue_required = True, False
        if qtype in _FORMERR_TYPES:
            rcode = dns.rcode.FORMERR
        elif qtype in _REFUSED_TYPES or qclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
            rcode = dns.rcode.REFUSED
        else:
            result = self.lookup.resolve(wire.wire_labels(qname_wire), qtype, time.monotonic())
            rcode = result.rcode
            answer, authority, additional = result.answer, result.authority, result.additional
            deps = tuple(result.reads)
            leased = result.leased
            authoritative, glue_required = result.authoritative, result.glue_required
        aa = authoritative and rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
        flags = wire.QR | (wire.AA if aa else 0)
        qend = 12 + len(qname_wire)
        full = wire.render(qname_wire, qtype, qclass, flags, rcode, answer, authority, additional)
        noextra: bytes | None = None
        if full is None:  # over 65535 bytes: only the truncated form exists
            full = wire.question(qname_wire, qtype, qclass, flags | wire.TC, rcode)
        elif additional and len(full) > 512 and not glue_required:
            noextra = wire.render(qname_wire, qtype, qclass, flags, rcode, answer, authority, [])
        expires = time.monotonic() + LEASED_CACHE_SECONDS if leased else 0.0
        entry = _Cached(full, noextra, qend, rcode, deps, expires)
        self._store(key, entry)
        self.stats.rcodes[rcode] += 1
        return entry

    def _store(self, key: bytes, entry: _Cached) -> None:
        cache = self._cache
        if key in cache:
            self._drop(key)
        if len(cache) >= self.cache_size:
            for old in list(itertools.islice(iter(cache), max(self.cache_size // 8, 1))):
                self._drop(old)
        cache[key] = entry
        deps = self._deps
        for path in entry.deps:
            holders = deps.get(path)
            if holders is None:
                deps[path] = key  # one holder is kept bare (a set per path costs 200+ bytes)
            elif isinstance(holders, bytes):
                if holders != key:
                    deps[path] = {holders, key}
            else:
                holders.add(key)
        self.stats.cache_entries = len(cache)

    def _drop(self, key: bytes) -> bool:
        entry = self._cache.pop(key, None)
        if entry is None:
            return False
        entry.valid = False
        deps = self._deps
        for path in entry.deps:
            holders = deps.get(path)
            if holders is None:
                continue
            if isinstance(holders, bytes):
                if holders == key:
                    del deps[path]
            else:
                holders.discard(key)
                if not holders:
                    del deps[path]
        return True

    def _on_change(self, keys: set[str] | None) -> None:
        if keys is None:
            self.stats.invalidations += len(self._cache)
            for entry in self._cache.values():
                entry.valid = False
            self._cache.clear()
            self._deps.clear()
            self._seen_udp.clear()
            self._seen_tcp.clear()
            self.stats.cache_entries = 0
            return
        dropped = 0
        deps = self._deps
        for key in keys:
            children = deps.get(key[:key.rfind("/") + 1])  # answers that read the direct children of its parent
            if children is not None:
                if isinstance(children, bytes):
                    dropped += self._drop(children)
                else:
                    for cache_key in list(children):
                        dropped += self._drop(cache_key)
            path = key
            while path:
                holders = deps.get(path)
                if holders is not None:
                    if isinstance(holders, bytes):
                        dropped += self._drop(holders)
                    else:
                        for cache_key in list(holders):
                            dropped += self._drop(cache_key)
                cut = path.rfind("/")
                if cut <= 0:
                    break
                path = path[:cut]
        self.stats.invalidations += dropped
        self.stats.cache_entries = len(self._cache)

    def cached_answers(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        """Stop following the store (for answerers that are thrown away while the store lives on)."""
        self.store.remove_listener(self._on_change)
        self._on_change(None)
