"""Answers to one question from the SkyDNS records, as a pure function of the store: always valid DNS.

:meth:`Lookup.resolve` takes a question and returns the rcode and the three sections as ``(owner, ttl, type,
rdata)`` records (owner names as label tuples; :mod:`resolver.wire` encodes them), plus every etcd path it read
(the answer cache uses them to drop exactly the answers a change touches). Nothing here does I/O.

The SkyDNS model is kept: records are etcd keys (the reversed name under the prefix), one record per key, and a
name answers the records of its own key, its per-target leaf keys and, for SkyDNS service entries, the instance
keys below it. On top of that every answer is valid DNS (RFC 1034, 2181, 2308, 4592, 6604, 8020, 8482), which
CoreDNS's ``etcd`` plugin does not guarantee (see ``/work/shared/reference/coredns-etcd-plugin.md``).

**Which keys a name reads.** For a name N at key path P (the three modes are mutually exclusive):

* N's *own records*: the value at P itself, and the values of P's direct children that are leaves (no subkeys)
  with ``targetstrip >= 1`` (the ``<name>/<leaf>`` per-target keys ExternalDNS and dnssync write). Every mode.
* N's *instances* (default mode): P's other direct children that are leaves - the instance keys of a SkyDNS
  service (``_sip._tcp`` answers the SRV of ``_sip/pbx`` and ``_sip/backup``; ``dual`` the A of ``dual/x1`` and
  the AAAA of ``dual/x2``). Nothing deeper: a key two levels down belongs to a name below N, which answers for it
  (a ``<name>/<leaf>`` key to that name, an instance key to its parent), so a name with names below it and no
  records of its own (``_tcp`` above ``_sip._tcp``) is an empty non-terminal: NODATA. A ``*`` child is a
  wildcard's key, never one of N's records (in this mode and the next).
* ``own_records_only``: own records only, never instances.
* ``subtree_answers`` (CoreDNS compatibility): CoreDNS's read - every key under ``P/`` at any depth (SkyDNS's
  "every service under ``east``"), and the value at P only when there is none (``region2`` ignores its own key)
  - plus CoreDNS's query wildcards: a query label ``*`` or ``any`` cuts the read before it and the keys read are
  filtered position by position (keys may be longer than the name, shorter ones are dropped). Without the flag
  nothing treats ``*``/``any`` in a query as special.
* The zone apex never aggregates the zone: it answers its own records (the zone key and its per-target leaves)
  and every key at or under ``dns/apex`` (``dns/apex/v4``, ``dns/apex/mx``, ``dns/apex/spf``: the documented
  place for apex A, AAAA, MX, TXT and SRV). Only under ``subtree_answers`` does the apex read as CoreDNS does:
  A/AAAA from ``apex.dns`` and, when that does not exist, the whole zone; other types the whole zone.

``group`` then filters the keys read (the shallowest key's group wins, group-less kept, disagreement at that
depth keeps all; CoreDNS's rule), after CoreDNS's pre-filter (a key counts when it has a ``host``, or ``text``
for TXT). A value that does not decode is skipped (CoreDNS SERVFAILs). Keys with upper case are never found.

**CNAMEs** (RFC 1034 §3.6.2, RFC 2181 §10.1): an *alias* is an own record whose host is a name and that carries
no ``text``, ``port``, ``priority``, ``weight`` or ``mail`` (those make it TXT, SRV or MX data). A name with an
alias is a CNAME and nothing else: it answers every type with that one CNAME (the first alias in key order, so
never two) followed by the chase of the target inside the served zones, and a CNAME or ANY question with the
CNAME alone. Records below a name never contribute a CNAME (a name host there is only ever an SRV or MX
target). The apex is never a CNAME (it holds the SOA and NS), nor is any name in a reverse zone (under
``in-addr.arpa.``/``ip6.arpa.``), where a name host is a PTR target. The chase follows the target through the
served zones (wildcards included) for the question's type; at most 10 CNAMEs, a repeated name stops it; the
rcode and the authority section are those of the last name (RFC 6604), so a CNAME to a missing name of ours is
NXDOMAIN with the CNAME in the answer; a target outside every served zone ends the chain with the CNAME alone:
**we are not a recursive resolver** (the client's resolver follows it).

**Existence and wildcards** (RFC 4592): a name exists when some key is at or below it (empty non-terminals
exist: NODATA, never NXDOMAIN, so RFC 8020 resolvers keep the names below). A name that does not exist is
answered from the wildcard ``*.<closest encloser>`` when that exists (the closest encloser is the longest
existing ancestor; owner = QNAME; a record name with ``*`` as its leftmost label is a wildcard, e.g. the key
``apps/*/<leaf>`` dnssync writes for ``*.apps.example.org``); otherwise NXDOMAIN. No synthesis where the name
exists, and a ``*`` elsewhere in a name is an ordinary label. The apex always exists.

**Types.** A/AAAA: the IP hosts of the matching family (deduplicated). TXT: ``text`` values (a ``text`` next to
an IP host is never served, a name host with ``text`` is TXT only - CoreDNS's classification). SRV: one record
per key with a port other than -1 (IP hosts get the key's name as target, with glue; name hosts are the target,
``targetstrip`` applied; default priority 10, weights ``floor(100*w/sum)`` per priority, 0 counting as 100 and
becoming 1, deduplicated by (target, port) for IP hosts). MX: keys with ``mail``, likewise. Glue for in-zone
name targets carries A and AAAA (CNAME chains included). PTR: the own name hosts. NS at the apex, from
``ns.dns.<zone>`` (an IP host names its key, with glue; a name host is the NS target), and at a zone cut in
the referral's authority section. SOA at the apex only
(owner = the zone). ANY (RFC 8482): one RRset - the CNAME, else the first of A, AAAA, MX, TXT, SRV (PTR in a
reverse zone) that has data - else a synthesised ``HINFO "RFC8482" ""``. Everything else: NODATA. NODATA and
NXDOMAIN carry the zone's SOA in the authority section.

**Zone cuts** (RFC 1034 §4.3.2, RFC 2181 §6, RFC 9471): a name C strictly below a served zone's apex with NS
records at ``ns.dns.C`` (the keys ``C/dns/ns/<leaf>`` dnssync writes for an NS endpoint; read as the apex's
NS set is) is a delegation, and every name at or below C belongs to the child zone. A question for C or any name
below it, of any type, gets a *referral*: NOERROR, AA clear, no answer, C's NS RRset (owner C) in authority,
and in additional the addresses of the NS targets - *glue* for a target below a cut (C's own, "in-domain", or
another cut's, RFC 9471's sibling glue), read from the target's keys as if there were no cut (no wildcard), and
the zone's own A/AAAA answer for a target elsewhere in a served zone; an answer that cannot carry C's in-domain
glue is truncated (TC) rather than sent without it (:attr:`Result.glue_required`). The one exception is DS at C
itself, which the parent answers: we hold no DS, so NODATA with the SOA, authoritatively. The highest cut wins (a
cut below a cut is the child's business). Nothing at or below C is answered from the parent's data: the
cut check comes before the name's own records, its existence and any wildcard, so a wildcard above C never
synthesises C or a name below it. A CNAME chase that enters C ends there with the referral's authority and
additional data after the CNAMEs (RFC 1034 §4.3.2 step 3b after step 3a; the answer then starts with our
CNAME, so AA stays set). A cut needs at least one NS record that decodes; ``dns/ns`` keys without one cut
nothing. A served zone more specific than the cut (the child served here too) answers its own names.

**TTL**: ``ttl`` or 300; a leased key: the remaining lease seconds clamped to [min_lease_ttl, max_lease_ttl],
the smaller of that and a non-zero ``ttl``; one RRset shares the smallest TTL (RFC 2181, in :mod:`resolver.wire`).

**SOA**: ``<zone> MINIMUM IN SOA MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM`` with CoreDNS's values by
default (``ns.dns.<zone>``, ``hostmaster.<zone>``, 7200 1800 86400 30; the TTL is MINIMUM, so that negative
answers are cached for MINIMUM seconds as RFC 2308 computes it). The serial is the etcd revision of the zone's
latest change (:meth:`resolver.store.Store.last_change`).

**Reads recorded** (for the answer cache): a name's path (its key and everything below), the wildcard path and
every ancestor tried for the closest encloser, CNAME targets and glue names, ``dns/ns`` and ``dns/apex``, and
``<C>/dns/ns`` for every cut candidate C between the apex and the name (so an NS key appearing under it drops
the answers below C); for the
apex's own records the marker ``<zone path>/`` (any direct child of the zone key changes) and the paths of its
per-target leaf candidates; the zone's path for every answer holding its SOA (the serial moves with any change).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from resolver.store import Entry, Labels, Store
from skydns.names import InvalidNameError, name_labels, normalize_name
from skydns.record import HostKind

# DNS numbers used here (kept local: dnspython's enums are slow on this path).
T_A, T_NS, T_CNAME, T_SOA, T_HINFO, T_PTR, T_MX, T_TXT, T_AAAA, T_SRV, T_DS, T_ANY = (
    1, 2, 5, 6, 13, 12, 15, 16, 28, 33, 43, 255)
NOERROR, NXDOMAIN, REFUSED = 0, 3, 5

DEFAULT_TTL = 300
DEFAULT_PRIORITY = 10
MAX_CNAME_CHAIN = 10
HINFO_TTL = 3789  # RFC 8482's example; the synthesised HINFO never changes
ANY_ORDER = (T_A, T_AAAA, T_MX, T_TXT, T_SRV)

# One resource record: (owner labels, ttl, type, rdata). The rdata by type:
#   A/AAAA: packed address bytes; CNAME/NS/PTR: Labels; MX: (preference, Labels); HINFO: (cpu, os) byte strings;
#   SRV: (priority, weight, port, Labels); TXT: tuple of byte strings; SOA: (mname, rname, serial, 4 timers).
RR = tuple[Labels, int, int, Any]
Item = tuple[Entry, int, bool]  # an entry with a record, its TTL, and whether it is one of the name's own records


class Mode(enum.Enum):
    """Which keys a name reads (module docstring)."""

    DEFAULT = "default"
    OWN = "own"  # --own-records-only
    SUBTREE = "subtree"  # --subtree-answers


@dataclass(frozen=True, slots=True)
class SoaFields:
    """The synthesised SOA's fields; ``mname``/``rname`` None: ``ns.dns.<zone>`` / ``hostmaster.<zone>``."""

    mname: Labels | None = None
    rname: Labels | None = None
    refresh: int = 7200
    retry: int = 1800
    expire: int = 86400
    minimum: int = 30


def soa_name(text: str, *, mailbox: bool = False) -> Labels:
    """An SOA MNAME, or with ``mailbox`` an RNAME (``hostmaster@example.org`` is accepted and written as
    ``hostmaster.example.org``, a dot in the local part kept inside its label). Raises ``ValueError``."""
    local: list[bytes] = []
    if mailbox and "@" in text:
        user, _, text = text.partition("@")
        if not user or len(user) > 63:
            raise ValueError(f"invalid mailbox {user!r}@{text!r}")
        local = [user.encode("ascii", "strict")]
    try:
        labels = name_labels(normalize_name(text))
    except (InvalidNameError, UnicodeError) as exc:
        raise ValueError(str(exc)) from None
    if not labels:
        raise ValueError(f"invalid name {text!r}: the root is not a host name")
    return tuple(local) + tuple(label.encode("ascii") for label in labels)


@dataclass(slots=True)
class Result:
    """The outcome of one question. ``reads`` holds every etcd path the answer depends on."""

    rcode: int
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    reads: set[str] = field(default_factory=set)
    leased: bool = False  # some TTL came from a lease (it counts down)
    authoritative: bool = True  # False: a referral (the question's name is below a zone cut), AA clear
    glue_required: bool = False  # a referral with in-domain glue: drop it only with TC (RFC 9471)


@dataclass(frozen=True, slots=True)
class Zone:
    name: Labels  # lower case
    labels: tuple[str, ...]  # the same, as text
    path: str
    reverse: bool  # under in-addr.arpa. or ip6.arpa.: name hosts are PTR targets, never CNAMEs


@dataclass(slots=True)
class _Node:
    """What one name holds for one question type: its items (after group) and its CNAME, if it is one."""

    items: list[Item]
    alias: Item | None = None


@dataclass(frozen=True, slots=True)
class _Cut:
    """A zone cut at or above a name: its label count, and its NS targets as (target, TTL, address glue of an
    IP host key or None)."""

    depth: int
    targets: list[tuple[Labels, int, RR | None]]


class _Ctx:
    __slots__ = ("glue", "leased", "now", "reads")

    def __init__(self, now: float) -> None:
        self.now = now
        self.reads: set[str] = set()
        self.leased = False
        self.glue = 0  # glue lookups under way: a referral met there adds no addresses


def lower(labels: Labels) -> Labels:
    return tuple(label.lower() for label in labels)


def text_labels(labels: Labels) -> list[str] | None:
    """Lower-case text labels for a key path, or None when a label cannot be a key element."""
    out: list[str] = []
    for raw in labels:
        try:
            label = raw.decode("ascii").lower()
        except UnicodeDecodeError:
            return None
        if "/" in label or any(ch <= " " or ch == "\x7f" for ch in label):
            return None
        out.append(label)
    return out


def strip(labels: Labels, count: int) -> Labels:
    """Drop ``count`` leftmost labels, unless that would leave nothing (then keep the name whole)."""
    if count <= 0 or count >= len(labels):
        return labels
    return labels[count:]


def txt_strings(text: str) -> tuple[bytes, ...]:
    data = text.encode("utf-8")
    return tuple(data[i:i + 255] for i in range(0, len(data), 255)) or (b"",)


def is_alias(entry: Entry) -> bool:
    """A name host that is neither TXT, SRV nor MX data: a CNAME when it is one of a name's own records."""
    rec = entry.record
    return (entry.kind is HostKind.CNAME and entry.target is not None and rec is not None and not rec.mail
            and rec.port in (0, -1) and not rec.priority and not rec.weight)


def _per_target(entry: Entry) -> bool:
    return entry.record is not None and entry.record.targetstrip >= 1


def _leaf(sub: list[Entry], i: int) -> bool:
    """``sub[i]`` has no subkeys (``sub`` is a subtree in key order, so they would follow it at once)."""
    return i + 1 == len(sub) or not sub[i + 1].key.startswith(sub[i].key + "/")


class Lookup:
    """Valid-DNS answers over a :class:`Store` (see the module docstring)."""

    def __init__(self, store: Store, zones: Sequence[str], *, mode: Mode = Mode.DEFAULT,
                 own_records_only: bool = False, soa: SoaFields | None = None, min_lease_ttl: int = 30,
                 max_lease_ttl: int = 86400) -> None:
        self.store = store
        self.mode = Mode.OWN if own_records_only and mode is Mode.DEFAULT else mode
        self.soa_fields = soa or SoaFields()
        self.min_lease_ttl = min_lease_ttl
        self.max_lease_ttl = max_lease_ttl
        zs: list[Zone] = []
        for z in zones:
            text = normalize_name(z)
            labels = tuple(label for label in text.split(".") if label)
            zs.append(Zone(tuple(label.encode("ascii") for label in labels), labels, self._path(labels),
                           labels[-2:] in (("in-addr", "arpa"), ("ip6", "arpa"))))
        # Longest first, so the first match is the longest matching zone.
        self.zones = sorted(zs, key=lambda z: len(z.labels), reverse=True)
        for zone in self.zones:
            store.track(zone.path)

    # -- helpers -------------------------------------------------------------------------------------------

    def _path(self, labels: Sequence[str]) -> str:
        return self.store.prefix + "".join("/" + label for label in reversed(labels))

    def zone_for(self, labels: Sequence[str]) -> Zone | None:
        n = len(labels)
        for zone in self.zones:
            k = len(zone.labels)
            if k <= n and tuple(labels[n - k:]) == zone.labels:
                return zone
        return None

    def _zone_of(self, name: Labels) -> tuple[Zone | None, list[str]]:
        labels = text_labels(name)
        if labels is None:
            return None, []
        return self.zone_for(labels), labels

    def serial(self, zone: Zone) -> int:
        return self.store.last_change(zone.path) & 0xFFFFFFFF

    def soa(self, zone: Zone) -> RR:
        f = self.soa_fields
        mname = f.mname if f.mname is not None else (b"ns", b"dns", *zone.name)
        rname = f.rname if f.rname is not None else (b"hostmaster", *zone.name)
        rdata = (mname, rname, self.serial(zone), f.refresh, f.retry, f.expire, f.minimum)
        return (zone.name, f.minimum, T_SOA, rdata)

    def _ttl(self, ctx: _Ctx, entry: Entry, ttl: int) -> int:
        deadline = entry.lease_deadline
        if deadline is None:
            return ttl or DEFAULT_TTL
        ctx.leased = True
        remaining = int(deadline - ctx.now)
        lease_ttl = min(max(remaining, self.min_lease_ttl), self.max_lease_ttl)
        return min(lease_ttl, ttl) if ttl else lease_ttl

    def _key_name(self, entry: Entry, count: int) -> Labels | None:
        """The name a key spells (the whole prefix removed), with ``count`` leftmost labels stripped."""
        parts = entry.key[len(self.store.prefix) + 1:].split("/")
        labels = tuple(part.encode("utf-8") for part in reversed(parts))
        if any(not 0 < len(label) <= 63 for label in labels) or sum(len(label) + 1 for label in labels) >= 255:
            return None
        return strip(labels, count)

    @staticmethod
    def _address(e: Entry, owner: Labels, ttl: int) -> RR:
        return (owner, ttl, T_A if e.kind is HostKind.A else T_AAAA, e.ip)

    def _negative(self, ctx: _Ctx, zone: Zone, res: Result, rcode: int) -> None:
        """NODATA (NOERROR) or NXDOMAIN for the last name of the answer: the zone's SOA in authority."""
        res.rcode = rcode
        res.authority.append(self.soa(zone))
        ctx.reads.add(zone.path)

    # -- reads ---------------------------------------------------------------------------------------------

    def _read_name(self, ctx: _Ctx, path: str) -> list[tuple[Entry, bool]] | None:
        """The keys a (non-apex) name reads, as (entry, own); None when no key is at or under ``path``."""
        store = self.store
        ctx.reads.add(path)
        exact = store.get(path)
        sub = store.subtree(path)
        if exact is None and not sub:
            return None
        mode = self.mode
        out: list[tuple[Entry, bool]] = []
        if exact is not None and (mode is not Mode.SUBTREE or not sub):
            out.append((exact, True))
        base = len(path) + 1
        for i, e in enumerate(sub):
            rel = e.key[base:]
            if mode is Mode.SUBTREE:
                out.append((e, "/" not in rel and _per_target(e) and _leaf(sub, i)))
            elif "/" not in rel and rel != "*" and _leaf(sub, i):
                if _per_target(e):
                    out.append((e, True))
                elif mode is Mode.DEFAULT:
                    out.append((e, False))  # an instance key
        return out

    def _read_apex(self, ctx: _Ctx, zone: Zone, qtype: int) -> list[tuple[Entry, bool]]:
        """The apex's own records: the zone key, its per-target leaves, ``dns/apex`` (module docstring)."""
        store = self.store
        if self.mode is Mode.SUBTREE:
            return self._read_apex_coredns(ctx, zone, qtype)
        path = zone.path
        ctx.reads.add(path[:path.rfind("/") + 1])  # the zone key itself (and its siblings)
        ctx.reads.add(path + "/")  # any direct child of the zone key
        out: list[tuple[Entry, bool]] = []
        exact = store.get(path)
        if exact is not None:
            out.append((exact, True))
        for e in store.tracked_children(path):
            ctx.reads.add(e.key)  # it stops (or starts) being a leaf when keys appear (vanish) below it
            rec = e.record
            if rec is not None and rec.targetstrip >= 1 and not store.has_subkeys(e.key):
                out.append((e, True))
        apex = path + "/dns/apex"
        ctx.reads.add(apex)
        apex_exact = store.get(apex)
        if apex_exact is not None:
            out.append((apex_exact, True))
        out.extend((e, True) for e in store.subtree(apex))
        out.sort(key=lambda item: item[0].key)
        return out

    def _read_apex_coredns(self, ctx: _Ctx, zone: Zone, qtype: int) -> list[tuple[Entry, bool]]:
        """CoreDNS's apex: A/AAAA from ``apex.dns`` (whole zone when it does not exist), other types the zone."""
        if qtype in (T_A, T_AAAA):
            found = self._read_coredns(ctx, self._path(("apex", "dns", *zone.labels)), ())
            if found is not None:
                return found
        return self._read_coredns(ctx, zone.path, ()) or []

    def _read_coredns(self, ctx: _Ctx, path: str, pattern: Sequence[str]) -> list[tuple[Entry, bool]] | None:
        """CoreDNS's ``Records``: the keys under ``path/`` (the exact key when there are none), filtered by a
        query-wildcard ``pattern`` (the reversed labels after the cut). None: no key at all."""
        store = self.store
        ctx.reads.add(path)
        entries = store.subtree(path)
        if not entries:
            exact = store.get(path)
            if exact is None:
                return None
            entries = [exact]
        if pattern:
            base_len = len(store.prefix) + 1
            start = path.count("/") - store.prefix.count("/")
            kept: list[Entry] = []
            for e in entries:
                parts = e.key[base_len:].split("/")[start:]
                if len(parts) >= len(pattern) and all(
                        label in ("*", "any") or parts[i] == label for i, label in enumerate(pattern)):
                    kept.append(e)
            entries = kept
        return [(e, False) for e in entries]

    def _items(self, ctx: _Ctx, read: list[tuple[Entry, bool]], qtype: int) -> list[Item]:
        """CoreDNS's pre-filter (a host, or text for TXT), TTLs, then ``group``."""
        out: list[Item] = []
        for e, own in read:
            rec = e.record
            if rec is None:
                continue  # a value that did not decode: skipped (CoreDNS would SERVFAIL)
            if rec.host or (qtype == T_TXT and rec.text):
                out.append((e, self._ttl(ctx, e, rec.ttl), own))
        return _group(out)

    def _node(self, ctx: _Ctx, zone: Zone, labels: Sequence[str], qtype: int) -> _Node | None:
        """What the name holds for ``qtype`` (wildcard synthesis included); None: it does not exist."""
        below = len(labels) - len(zone.labels)
        if below == 0:
            return _Node(self._items(ctx, self._read_apex(ctx, zone, qtype), qtype))
        if self.mode is Mode.SUBTREE:
            rev = list(reversed(labels))
            for i, label in enumerate(rev):
                if label in ("*", "any") and i >= len(zone.labels):
                    cut = self.store.prefix + "".join("/" + x for x in rev[:i])
                    read = self._read_coredns(ctx, cut, rev[i:])
                    return None if read is None else _Node(self._items(ctx, read, qtype))
        read = self._read_name(ctx, self._path(labels))
        if read is None:
            read = self._wildcard(ctx, zone, labels)
            if read is None:
                return None
        items = self._items(ctx, read, qtype)
        alias = None
        if not zone.reverse:
            alias = next((item for item in items if item[2] and is_alias(item[0])), None)
        return _Node(items, alias)

    def _wildcard(self, ctx: _Ctx, zone: Zone, labels: Sequence[str]) -> list[tuple[Entry, bool]] | None:
        """RFC 4592: the records of ``*.<closest encloser>`` for a name that does not exist, or None."""
        store = self.store
        for cut in range(1, len(labels) - len(zone.labels) + 1):
            encloser = self._path(labels[cut:])
            ctx.reads.add(encloser)
            if cut == len(labels) - len(zone.labels) or store.exists(encloser):
                return self._read_name(ctx, encloser + "/*")
        return None

    # -- answering one name --------------------------------------------------------------------------------

    def _answer(self, ctx: _Ctx, zone: Zone, qname: Labels, labels: list[str] | None, qtype: int, res: Result,
                chain: list[Labels]) -> None:
        """Append the answer for ``qname``; the rcode and authority are set for the last name (RFC 6604)."""
        cut = None if labels is None else self._cut(ctx, zone, labels)
        if cut is not None:
            assert labels is not None
            if qtype == T_DS and cut.depth == len(labels):
                self._negative(ctx, zone, res, NOERROR)  # the parent's side of the cut: we hold no DS
                return
            self._referral(ctx, qname, cut, res)
            if not res.answer:
                res.authoritative = False
            return
        node = None if labels is None else self._node(ctx, zone, labels, qtype)
        if node is None:
            self._negative(ctx, zone, res, NXDOMAIN)
            return
        if node.alias is not None:
            e, ttl, _ = node.alias
            assert e.target is not None
            res.answer.append((qname, ttl, T_CNAME, e.target))
            res.rcode = NOERROR
            if qtype not in (T_CNAME, T_ANY):
                self._chase(ctx, e.target, qtype, res, [*chain, lower(qname)])
            return
        assert labels is not None
        apex = len(labels) == len(zone.labels)
        if qtype == T_ANY:
            found = self._any(ctx, zone, qname, labels, node, res)
        else:
            found = self._typed(ctx, zone, qname, node, qtype, apex, res)
        if found:
            res.rcode = NOERROR
        else:
            self._negative(ctx, zone, res, NOERROR)

    def _chase(self, ctx: _Ctx, target: Labels, qtype: int, res: Result, chain: list[Labels]) -> None:
        """Follow a CNAME target through the served zones; outside them, a loop or a long chain end it."""
        if lower(target) in chain or len(chain) >= MAX_CNAME_CHAIN:
            return
        tzone, tlabels = self._zone_of(target)
        if tzone is None:
            return  # outside every served zone: the client's resolver follows it
        self._answer(ctx, tzone, target, tlabels, qtype, res, chain)

    def _typed(self, ctx: _Ctx, zone: Zone, qname: Labels, node: _Node, qtype: int, apex: bool,
               res: Result) -> bool:
        """The records of one type at a name that is not a CNAME; False: none (NODATA)."""
        if qtype in (T_A, T_AAAA):
            want = HostKind.A if qtype == T_A else HostKind.AAAA
            seen: set[bytes] = set()
            for e, ttl, _ in node.items:
                if e.kind is want and e.ip not in seen:
                    seen.add(e.ip)
                    res.answer.append((qname, ttl, qtype, e.ip))
            return bool(seen)
        if qtype == T_TXT:
            texts: set[str] = set()
            for e, ttl, _ in node.items:
                if e.kind is HostKind.TXT:
                    assert e.record is not None
                    text = e.record.text
                    if text not in texts:
                        texts.add(text)
                        res.answer.append((qname, ttl, T_TXT, txt_strings(text)))
            return bool(texts)
        if qtype == T_SRV:
            return self._srv(ctx, qname, node.items, res)
        if qtype == T_MX:
            return self._mx(ctx, qname, node.items, res)
        if qtype == T_PTR:
            targets: set[Labels] = set()
            for e, ttl, own in node.items:
                if own and e.target is not None and lower(e.target) not in targets:
                    targets.add(lower(e.target))
                    res.answer.append((qname, ttl, T_PTR, e.target))
            return bool(targets)
        if qtype == T_NS and apex:
            return self._ns(ctx, zone, qname, res)
        if qtype == T_SOA and apex:
            res.answer.append(self.soa(zone))
            ctx.reads.add(zone.path)
            return True
        return False

    def _any(self, ctx: _Ctx, zone: Zone, qname: Labels, labels: list[str], node: _Node, res: Result) -> bool:
        """RFC 8482: one RRset of the name (the first type with data), else a synthesised HINFO."""
        apex = len(labels) == len(zone.labels)
        for qtype in (*ANY_ORDER, T_PTR) if zone.reverse else ANY_ORDER:
            typed = self._node(ctx, zone, labels, qtype) or node
            part = Result(NOERROR)
            if self._typed(ctx, zone, qname, typed, qtype, apex, part):
                res.answer.extend(part.answer)
                res.additional.extend(part.additional)
                return True
        res.answer.append((qname, HINFO_TTL, T_HINFO, (b"RFC8482", b"")))
        return True

    # -- per type ------------------------------------------------------------------------------------------

    def _glue(self, ctx: _Ctx, target: Labels, out: list[RR]) -> None:
        """A and AAAA (CNAME chains included) for a target name inside a served zone; nothing outside, nor
        below a zone cut (a referral answers nothing)."""
        tzone, tlabels = self._zone_of(target)
        if tzone is None:
            return
        ctx.glue += 1
        for qtype in (T_A, T_AAAA):
            part = Result(NOERROR)
            self._answer(ctx, tzone, target, tlabels, qtype, part, [])
            out.extend(part.answer)
        ctx.glue -= 1

    def _srv(self, ctx: _Ctx, qname: Labels, items: list[Item], res: Result) -> bool:
        totals: dict[int, int] = {}
        for e, _, _ in items:
            assert e.record is not None
            prio = e.record.priority or DEFAULT_PRIORITY
            totals[prio] = totals.get(prio, 0) + (e.record.weight or 100)
        dup: set[tuple[Labels, bytes, int]] = set()
        looked_up: set[Labels] = set()
        found = False
        for e, ttl, _ in items:
            rec = e.record
            assert rec is not None
            if rec.port == -1:
                continue
            prio = rec.priority or DEFAULT_PRIORITY
            total = totals[prio]
            share = math.floor(100.0 * (rec.weight or 100) / total) if total > 0 else 0
            weight = min(max(share, 1), 0xFFFF)
            port = rec.port & 0xFFFF
            kind = e.kind
            if kind is HostKind.CNAME:
                if e.target is None:
                    continue
                target = strip(e.target, rec.targetstrip)
                res.answer.append((qname, ttl, T_SRV, (prio & 0xFFFF, weight, port, target)))
                found = True
                if lower(target) not in looked_up:
                    looked_up.add(lower(target))
                    self._glue(ctx, target, res.additional)
            elif kind is HostKind.A or kind is HostKind.AAAA:
                key_name = self._key_name(e, rec.targetstrip)
                if key_name is None:
                    continue
                low = lower(key_name)
                if (low, b"", port) not in dup:
                    dup.add((low, b"", port))
                    res.answer.append((qname, ttl, T_SRV, (prio & 0xFFFF, weight, port, key_name)))
                    found = True
                if (low, e.ip, 0) not in dup:
                    dup.add((low, e.ip, 0))
                    res.additional.append(self._address(e, key_name, ttl))
        return found

    def _mx(self, ctx: _Ctx, qname: Labels, items: list[Item], res: Result) -> bool:
        looked_up: set[Labels] = set()
        dup: set[tuple[Labels, int]] = set()
        found = False
        for e, ttl, _ in items:
            rec = e.record
            assert rec is not None
            if not rec.mail:
                continue
            pref = (rec.priority or DEFAULT_PRIORITY) & 0xFFFF
            if e.kind is HostKind.CNAME:
                if e.target is None:
                    continue
                target = strip(e.target, rec.targetstrip)
                res.answer.append((qname, ttl, T_MX, (pref, target)))
                found = True
                if lower(target) not in looked_up:
                    looked_up.add(lower(target))
                    self._glue(ctx, target, res.additional)
            elif e.kind is HostKind.A or e.kind is HostKind.AAAA:
                exchange = self._key_name(e, rec.targetstrip)
                if exchange is None:
                    continue
                if (lower(exchange), pref) not in dup:
                    dup.add((lower(exchange), pref))
                    res.answer.append((qname, ttl, T_MX, (pref, exchange)))
                    found = True
                res.additional.append(self._address(e, exchange, ttl))
        return found

    def _ns_targets(self, ctx: _Ctx, path: str) -> list[tuple[Labels, int, RR | None]]:
        """The NS targets of the keys at ``path`` (``ns.dns.<name>``) as (target, TTL, glue): an IP host names its
        key and its address is the glue; a name host is the target as it is (``targetstrip`` applied)."""
        out: list[tuple[Labels, int, RR | None]] = []
        for e, ttl, _ in self._items(ctx, self._read_coredns(ctx, path, ()) or [], T_NS):
            rec = e.record
            assert rec is not None
            if e.kind is HostKind.A or e.kind is HostKind.AAAA:
                target = self._key_name(e, rec.targetstrip)
                if target is not None:
                    out.append((target, ttl, self._address(e, target, ttl)))
            elif e.kind is HostKind.CNAME and e.target is not None:
                out.append((strip(e.target, rec.targetstrip), ttl, None))
        return out

    def _ns(self, ctx: _Ctx, zone: Zone, qname: Labels, res: Result) -> bool:
        seen: set[Labels] = set()
        for target, ttl, glue in self._ns_targets(ctx, self._path(("ns", "dns", *zone.labels))):
            low = lower(target)
            if glue is not None:
                res.additional.append(glue)
            elif low not in seen:
                self._glue(ctx, target, res.additional)
            if low not in seen:
                seen.add(low)
                res.answer.append((qname, ttl, T_NS, target))
        return bool(seen)

    # -- zone cuts -------------------------------------------------------------------------------------------

    def _cut(self, ctx: _Ctx, zone: Zone, labels: Sequence[str]) -> _Cut | None:
        """The highest zone cut at or above the name and strictly below the apex: a name C with NS records at
        ``ns.dns.C``; None when there is none. Every candidate's ``dns/ns`` path is a read."""
        store = self.store
        path = zone.path
        n = len(labels)
        for depth in range(len(zone.labels) + 1, n + 1):
            path += "/" + labels[n - depth]
            ns_path = path + "/dns/ns"
            ctx.reads.add(ns_path)
            if store.exists(ns_path):
                targets = self._ns_targets(ctx, ns_path)
                if targets:
                    return _Cut(depth, targets)
        return None

    def _referral(self, ctx: _Ctx, qname: Labels, cut: _Cut, res: Result) -> None:
        """The delegation's NS RRset in authority and its targets' addresses in additional (RFC 1034 §4.3.2,
        RFC 9471). Not inside a glue lookup: there the addresses are not wanted (and could loop)."""
        owner = qname[len(qname) - cut.depth:]
        seen: set[Labels] = set()
        for target, ttl, glue in cut.targets:
            low = lower(target)
            if ctx.glue == 0:
                if glue is not None:
                    res.additional.append(glue)
                    res.glue_required = True
                elif low not in seen:
                    self._referral_glue(ctx, target, lower(owner), res)
            if low not in seen:
                seen.add(low)
                res.authority.append((owner, ttl, T_NS, target))
        res.rcode = NOERROR

    def _referral_glue(self, ctx: _Ctx, target: Labels, cut_name: Labels, res: Result) -> None:
        """A and AAAA of one NS target: below a zone cut (in-domain or sibling glue), the records at the
        target's own key read as if there were no cut (no wildcard); in a served zone otherwise, its answer."""
        tzone, tlabels = self._zone_of(target)
        if tzone is None:
            return
        if self._cut(ctx, tzone, tlabels) is None:
            self._glue(ctx, target, res.additional)
            return
        read = self._read_name(ctx, self._path(tlabels))
        if read is None:
            return
        node = _Node(self._items(ctx, read, T_A))
        part = Result(NOERROR)
        for qtype in (T_A, T_AAAA):
            self._typed(ctx, tzone, target, node, qtype, False, part)
        res.additional.extend(part.answer)
        if part.answer and lower(target)[len(target) - len(cut_name):] == cut_name:
            res.glue_required = True

    # -- zone transfers --------------------------------------------------------------------------------------

    def name_data(self, qname: Labels, now: float) -> tuple[list[RR], list[RR]]:
        """Every record a name with keys answers at itself, for A, AAAA, TXT, SRV, MX and PTR (and NS at an apex)
        - or its CNAME alone - as one read of the name instead of one :meth:`resolve` per type; and the apex
        NS answer's additional records (glue). The same records as those :meth:`resolve` answers with that
        owner; for :mod:`resolver.zonecontent`. At a zone cut: the delegation's NS RRset and its in-domain
        glue (the addresses of the targets at or below the cut); below a cut: nothing."""
        labels = text_labels(qname)
        zone = None if labels is None else self.zone_for(labels)
        if zone is None or labels is None:
            return [], []
        if len(labels) > len(zone.labels) and not self.store.exists(self._path(labels)):
            return [], []  # a name without keys: only a wildcard would answer it, and that is its own name
        ctx = _Ctx(now)
        cut = self._cut(ctx, zone, labels)
        if cut is not None:
            if cut.depth < len(labels):
                return [], []  # below a zone cut: the child's (the glue comes with the cut)
            res = Result(NOERROR)
            self._referral(ctx, qname, cut, res)
            low = lower(qname)
            return res.authority, [rr for rr in res.additional if lower(rr[0])[len(rr[0]) - len(low):] == low]
        node = self._node(ctx, zone, labels, T_A)
        if node is None:
            return [], []
        if node.alias is not None:
            e, ttl, _ = node.alias
            assert e.target is not None
            return [(qname, ttl, T_CNAME, e.target)], []
        apex = len(labels) == len(zone.labels)
        res = Result(NOERROR)
        for qtype in (T_A, T_AAAA, T_SRV, T_MX, T_PTR):
            self._typed(ctx, zone, qname, node, qtype, apex, res)
        text = self._node(ctx, zone, labels, T_TXT)
        if text is not None:
            self._typed(ctx, zone, qname, text, T_TXT, apex, res)
        if not apex:
            return res.answer, []
        glue = Result(NOERROR)
        self._typed(ctx, zone, qname, node, T_NS, apex, glue)
        return res.answer + glue.answer, glue.additional

    # -- entry point ---------------------------------------------------------------------------------------

    def resolve(self, qname: Labels, qtype: int, now: float) -> Result:
        """Answer one question (class IN). ``qname`` keeps the query's case; owner names use it as given."""
        labels = text_labels(qname)
        zone: Zone | None
        if labels is None:
            # A label that cannot be a key element: the name cannot exist. Find the zone on the raw labels.
            zone = self.zone_for([label.decode("latin-1").lower() for label in qname])
        else:
            zone = self.zone_for(labels)
        if zone is None:
            return Result(REFUSED)
        ctx = _Ctx(now)
        res = Result(NOERROR)
        self._answer(ctx, zone, qname, labels, qtype, res, [])
        res.reads = ctx.reads
        res.leased = ctx.leased
        return res


def _group(items: list[Item]) -> list[Item]:
    """CoreDNS ``msg.Group``: the shallowest key's group filters the set (module docstring)."""
    if not items:
        return items
    first = items[0][0]
    assert first.record is not None
    group = first.record.group
    depth = first.depth
    for e, _, _ in items:
        if e.depth < depth:
            assert e.record is not None
            if not e.record.group:
                break
            group = e.record.group
            depth = e.depth
    if not group:
        return items
    kept: list[Item] = []
    for item in items:
        e = item[0]
        assert e.record is not None
        g = e.record.group
        if not g:
            kept.append(item)
            continue
        if e.depth == depth and g != group:
            return items
        if g == group:
            kept.append(item)
    return kept
