"""The CoreDNS ``etcd`` plugin's query semantics, as a pure function of the store and one question.

:meth:`Lookup.resolve` takes a question and returns the rcode and the three sections as ``(owner, ttl, type,
rdata)`` records (owner names as label tuples; :mod:`resolver.wire` encodes them), plus every etcd path it read
(the answer cache uses them to drop exactly the answers a change touches). Nothing here does I/O.

What is reproduced (see ``/work/shared/reference/coredns-etcd-plugin.md`` for the plugin's behaviour):

* Reads: a name reads its whole subtree (keys under ``path/``), and the exact key only when there is no
  subkey; nothing at all is a name error (NXDOMAIN). CNAME and PTR queries read the exact key only.
* Query wildcards: a label ``*`` or ``any`` cuts the read path before it; keys are then filtered position by
  position (keys may be longer than the name, shorter ones are dropped). Keys containing ``*`` are not
  wildcards.
* ``group`` (the shallowest key's group wins, group-less always kept, disagreement at that depth keeps all),
  ``targetstrip``, default SRV/MX priority 10, SRV weights ``floor(100*w/sum)`` per priority (0 counts as
  100, 0 becomes 1, the sum taken before deduplication), SRV dedupe by (target, port) for IP hosts.
* Host classification (``skydns.record.host_kind``): IP -> A/AAAA; a name -> CNAME (A/AAAA/TXT queries,
  chased), SRV target, MX exchange, PTR target; a name plus text -> TXT only.
* CNAME chasing for A/AAAA/TXT: skipped when the target is the name itself or below it, when the chain holds
  more than 10 CNAMEs or the target was already visited. A target in the same zone is resolved and the CNAME is
  dropped when that yields nothing (as CoreDNS). A target in another served zone is resolved there and the
  CNAME kept even when that yields nothing (what CoreDNS does through its self-upstream). A target outside
  every served zone is returned as is: **we are not a recursive resolver** and do not look it up (CoreDNS
  asks its upstream / forward plugin).
* Apex A/AAAA: ``apex.dns.<zone>`` first; only when that name does not exist, the whole zone (CoreDNS's
  fallback). NS: only at the apex, from ``ns.dns.<zone>``; elsewhere like an unknown type.
* SOA for any name in the zone (owner = the zone, no existence check), and in the authority section of
  NXDOMAIN/NODATA: ``<zone> 30 IN SOA ns.dns.<zone> hostmaster.<zone> SERIAL 7200 1800 86400 30``.
* Other types (ANY, CAA, ...) and NS below the apex: NODATA if an A lookup finds the name, else NXDOMAIN.
* TTL: ``ttl`` or 300; a leased key: the remaining lease seconds clamped to [min_lease_ttl, max_lease_ttl],
  the smaller of that and a non-zero ``ttl``.

Where this does better than CoreDNS (on purpose):

* a value that does not decode is skipped (the name's other records are still answered); CoreDNS SERVFAILs;
* the SOA serial is the etcd revision of the zone's latest change (CoreDNS: the current unix time);
* glue for SRV/MX/NS name targets inside any served zone carries A *and* AAAA (CoreDNS: only A), and MX glue is
  named after the (target-stripped) exchange it belongs to (CoreDNS uses the unstripped key name, ``mxip-01``);
* an NS value with a name host gives an NS to that name (CoreDNS SERVFAILs, ``bad-08``);
* names are built from keys with the full prefix removed, so multi-element prefixes work;
* TXT text is split in 255-byte strings without CoreDNS's empty trailing string at exact multiples of 255;
* records of one RRset share one TTL, the smallest (RFC 2181); CoreDNS may send differing TTLs;
* the zone apex is never NXDOMAIN (CoreDNS answers NXDOMAIN for the apex NS without ``dns/ns`` data and for
  the apex A of an empty zone; with RFC 8020 a resolver would then treat the whole zone as gone): NODATA;
* ``own_records_only`` (CoreDNS #3803, off by default): a name answers only its *own* records - the value at
  its exact key, plus the values of its direct child keys that are leaves (no subkeys) and have
  ``targetstrip >= 1`` (ExternalDNS's ``<name>/<random>`` per-target keys). Deeper names' records are not
  returned, and the zone apex no longer falls back to the whole zone. Existence (NXDOMAIN vs NODATA) is still
  decided on the subtree, so parents of records are empty non-terminals (NODATA). The special ``apex.dns`` and
  ``ns.dns`` reads keep the subtree rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from resolver.store import Entry, Labels, Store
from skydns.names import normalize_name
from skydns.record import HostKind

# DNS numbers used here (kept local: dnspython's enums are slow on this path).
T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_MX, T_TXT, T_AAAA, T_SRV = 1, 2, 5, 6, 12, 15, 16, 28, 33
NOERROR, NXDOMAIN, REFUSED = 0, 3, 5

DEFAULT_TTL = 300
DEFAULT_PRIORITY = 10
MAX_CNAME_CHAIN = 10
SOA_TTL = 30
SOA_TIMERS = (7200, 1800, 86400, 30)  # refresh, retry, expire, minimum

# One resource record: (owner labels, ttl, type, rdata). The rdata by type:
#   A/AAAA: packed address bytes; CNAME/NS/PTR: Labels; MX: (preference, Labels);
#   SRV: (priority, weight, port, Labels); TXT: tuple of byte strings; SOA: (mname, rname, serial, 4 timers).
RR = tuple[Labels, int, int, Any]
Svc = tuple[Entry, int]  # an entry with a record, and its TTL


@dataclass(slots=True)
class Result:
    """The outcome of one question. ``reads`` holds every etcd path the answer depends on."""

    rcode: int
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    reads: set[str] = field(default_factory=set)
    leased: bool = False  # some TTL came from a lease (it counts down)


@dataclass(frozen=True, slots=True)
class Zone:
    name: Labels  # lower case
    labels: tuple[str, ...]  # the same, as text
    path: str


class _Ctx:
    __slots__ = ("leased", "now", "reads")

    def __init__(self, now: float) -> None:
        self.now = now
        self.reads: set[str] = set()
        self.leased = False


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


def is_subdomain(child: Labels, parent: Labels) -> bool:
    """``child`` equals ``parent`` or lies below it (case-insensitive)."""
    n, k = len(child), len(parent)
    return k <= n and lower(child[n - k:]) == lower(parent)


def strip(labels: Labels, count: int) -> Labels:
    """Drop ``count`` leftmost labels, unless that would leave nothing (then keep the name whole)."""
    if count <= 0 or count >= len(labels):
        return labels
    return labels[count:]


def txt_strings(text: str) -> tuple[bytes, ...]:
    data = text.encode("utf-8")
    return tuple(data[i:i + 255] for i in range(0, len(data), 255)) or (b"",)


class Lookup:
    """CoreDNS ``etcd`` plugin semantics over a :class:`Store` (see the module docstring)."""

    def __init__(self, store: Store, zones: Sequence[str], *, own_records_only: bool = False,
                 min_lease_ttl: int = 30, max_lease_ttl: int = 86400) -> None:
        self.store = store
        self.own_records_only = own_records_only
        self.min_lease_ttl = min_lease_ttl
        self.max_lease_ttl = max_lease_ttl
        zs: list[Zone] = []
        for z in zones:
            text = normalize_name(z)
            labels = tuple(label for label in text.split(".") if label)
            zs.append(Zone(tuple(label.encode("ascii") for label in labels), labels, self._path(labels)))
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
        rdata = ((b"ns", b"dns", *zone.name), (b"hostmaster", *zone.name), self.serial(zone), *SOA_TIMERS)
        return (zone.name, SOA_TTL, T_SOA, rdata)

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

    # -- reads ---------------------------------------------------------------------------------------------

    def _services(self, ctx: _Ctx, labels: Sequence[str], qtype: int, *, exact: bool = False,
                  own: bool | None = None) -> list[Svc] | None:
        """CoreDNS ``Services``: read, wildcard filter, decode/TTL/pre-filter, group. None = name error."""
        store = self.store
        rev = list(reversed(labels))
        star = False
        cut = rev
        for i, label in enumerate(rev):
            if label == "*" or label == "any":
                cut = rev[:i]
                star = True
                break
        path = store.prefix + "".join("/" + label for label in cut)
        ctx.reads.add(path)
        entries: list[Entry]
        if exact:
            one = store.get(path)
            if one is None:
                return None
            entries = [one]
        else:
            entries = store.subtree(path)
            if not entries:
                one = store.get(path)
                if one is None:
                    return None
                entries = [one]
        base_len = len(store.prefix) + 1
        if star:
            kept: list[Entry] = []
            for e in entries:
                parts = e.key[base_len:].split("/")
                if len(parts) < len(rev):
                    continue
                if all(label in ("*", "any") or parts[i] == label for i, label in enumerate(rev)):
                    kept.append(e)
            entries = kept
        own_only = self.own_records_only if own is None else own
        if own_only and not exact:
            itself = store.get(path)
            if itself is not None and (not entries or entries[0] is not itself):
                entries = [itself, *entries]  # its own value counts even when it has subkeys
        if own_only:
            name_depth = store.prefix.count("/") + len(rev)
            entries = [e for e in entries
                       if e.depth == name_depth
                       or (e.depth == name_depth + 1 and e.record is not None and e.record.targetstrip >= 1
                           and not store.has_subkeys(e.key))]
        out: list[Svc] = []
        for e in entries:
            rec = e.record
            if rec is None:
                continue  # a value that did not decode: skipped (CoreDNS would SERVFAIL)
            if rec.host or (qtype == T_TXT and rec.text):
                out.append((e, self._ttl(ctx, e, rec.ttl)))
        return _group(out)

    def _apex_or_services(self, ctx: _Ctx, zone: Zone, labels: Sequence[str], qtype: int) -> list[Svc] | None:
        if tuple(labels) == zone.labels:
            found = self._services(ctx, ("apex", "dns", *zone.labels), qtype, own=False)
            if found is not None:
                return found
        return self._services(ctx, labels, qtype)

    # -- per type ------------------------------------------------------------------------------------------

    def _chase(self, ctx: _Ctx, zone: Zone, qname: Labels, e: Entry, ttl: int, qtype: int,
               chain: list[Labels], out: list[RR]) -> None:
        """A name host seen by an A/AAAA/TXT query: the CNAME and what it leads to (CoreDNS's rules)."""
        target = e.target
        if target is None or is_subdomain(target, qname):
            return
        low = lower(target)
        if len(chain) > MAX_CNAME_CHAIN or low in chain:
            return
        cname: RR = (qname, ttl, T_CNAME, target)
        tzone, tlabels = self._zone_of(target)
        if tzone is None:
            out.append(cname)  # outside every served zone: returned as is, not looked up
            return
        nxt = self._typed(ctx, tzone, target, tlabels, qtype, [*chain, low])
        if tzone is zone:
            if nxt:
                out.append(cname)
                out.extend(nxt)
            return
        out.append(cname)
        out.extend(nxt or ())

    def _typed(self, ctx: _Ctx, zone: Zone, qname: Labels, labels: Sequence[str], qtype: int,
               chain: list[Labels]) -> list[RR] | None:
        """A, AAAA or TXT records for ``qname`` (with CNAME chasing); None = name error."""
        if qtype == T_TXT:
            svcs = self._services(ctx, labels, qtype)
            want = HostKind.TXT
        else:
            svcs = self._apex_or_services(ctx, zone, labels, qtype)
            want = HostKind.A if qtype == T_A else HostKind.AAAA
        if svcs is None:
            return None
        out: list[RR] = []
        seen: set[Any] = set()
        for e, ttl in svcs:
            kind = e.kind
            if kind is HostKind.CNAME:
                self._chase(ctx, zone, qname, e, ttl, qtype, chain, out)
            elif kind is want:
                if want is HostKind.TXT:
                    assert e.record is not None
                    text = e.record.text
                    if text not in seen:
                        seen.add(text)
                        out.append((qname, ttl, T_TXT, txt_strings(text)))
                elif e.ip not in seen:
                    seen.add(e.ip)
                    out.append((qname, ttl, qtype, e.ip))
        return out

    def _glue(self, ctx: _Ctx, target: Labels, out: list[RR]) -> None:
        """A and AAAA (CNAME chains included) for a target name inside a served zone; nothing outside."""
        tzone, tlabels = self._zone_of(target)
        if tzone is None:
            return
        for qtype in (T_A, T_AAAA):
            out.extend(self._typed(ctx, tzone, target, tlabels, qtype, []) or ())

    def _srv(self, ctx: _Ctx, qname: Labels, labels: Sequence[str], res: Result) -> bool:
        svcs = self._services(ctx, labels, T_SRV)
        if svcs is None:
            return False
        totals: dict[int, int] = {}
        for e, _ in svcs:
            assert e.record is not None
            prio = e.record.priority or DEFAULT_PRIORITY
            totals[prio] = totals.get(prio, 0) + (e.record.weight or 100)
        dup: set[tuple[Labels, bytes, int]] = set()
        looked_up: set[Labels] = set()
        for e, ttl in svcs:
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
                if (low, e.ip, 0) not in dup:
                    dup.add((low, e.ip, 0))
                    res.additional.append(self._address(e, key_name, ttl))
        return True

    def _mx(self, ctx: _Ctx, qname: Labels, labels: Sequence[str], res: Result) -> bool:
        svcs = self._services(ctx, labels, T_MX)
        if svcs is None:
            return False
        looked_up: set[Labels] = set()
        dup: set[tuple[Labels, int]] = set()
        for e, ttl in svcs:
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
                res.additional.append(self._address(e, exchange, ttl))
        return True

    def _ns(self, ctx: _Ctx, zone: Zone, qname: Labels, res: Result) -> bool:
        svcs = self._services(ctx, ("ns", "dns", *zone.labels), T_NS, own=False)
        if svcs is None:
            return False
        seen: set[Labels] = set()
        for e, ttl in svcs:
            rec = e.record
            assert rec is not None
            target: Labels | None
            if e.kind is HostKind.A or e.kind is HostKind.AAAA:
                target = self._key_name(e, rec.targetstrip)
                if target is None:
                    continue
                res.additional.append(self._address(e, target, ttl))
            elif e.kind is HostKind.CNAME and e.target is not None:
                target = strip(e.target, rec.targetstrip)
                if lower(target) not in seen:
                    self._glue(ctx, target, res.additional)
            else:
                continue
            if lower(target) not in seen:
                seen.add(lower(target))
                res.answer.append((qname, ttl, T_NS, target))
        return True

    def _cname_or_ptr(self, ctx: _Ctx, qname: Labels, labels: Sequence[str], qtype: int, res: Result) -> bool:
        svcs = self._services(ctx, labels, qtype, exact=True)
        if svcs is None:
            return False
        seen: set[Labels] = set()
        for e, ttl in svcs:
            target = e.target  # None for IP hosts (and invalid names)
            if qtype == T_CNAME:
                if target is not None:  # only the first value counts; an IP gives nothing
                    res.answer.append((qname, ttl, T_CNAME, target))
                break
            if target is not None and lower(target) not in seen:
                seen.add(lower(target))
                res.answer.append((qname, ttl, T_PTR, target))
        return True

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
        found = False
        if labels is None:
            pass
        elif qtype == T_SOA:
            res.answer.append(self.soa(zone))
            ctx.reads.add(zone.path)
            found = True
        elif qtype in (T_A, T_AAAA, T_TXT):
            records = self._typed(ctx, zone, qname, labels, qtype, [])
            found = records is not None
            res.answer.extend(records or ())
        elif qtype in (T_CNAME, T_PTR):
            found = self._cname_or_ptr(ctx, qname, labels, qtype, res)
        elif qtype == T_SRV:
            found = self._srv(ctx, qname, labels, res)
        elif qtype == T_MX:
            found = self._mx(ctx, qname, labels, res)
        elif qtype == T_NS and tuple(labels) == zone.labels:
            found = self._ns(ctx, zone, qname, res)
        else:
            found = self._typed(ctx, zone, qname, labels, T_A, []) is not None
        if not found and (labels is None or tuple(labels) != zone.labels):  # the apex always exists
            res.rcode = NXDOMAIN
            res.answer.clear()
            res.additional.clear()
        if not res.answer:
            res.authority.append(self.soa(zone))
            ctx.reads.add(zone.path)
        res.reads = ctx.reads
        res.leased = ctx.leased
        return res


def _group(svcs: list[Svc]) -> list[Svc]:
    """CoreDNS ``msg.Group``: the shallowest key's group filters the set (module docstring)."""
    if not svcs:
        return svcs
    first = svcs[0][0]
    assert first.record is not None
    group = first.record.group
    depth = first.depth
    for e, _ in svcs:
        if e.depth < depth:
            assert e.record is not None
            if not e.record.group:
                break
            group = e.record.group
            depth = e.depth
    if not group:
        return svcs
    kept: list[Svc] = []
    for svc in svcs:
        e = svc[0]
        assert e.record is not None
        g = e.record.group
        if not g:
            kept.append(svc)
            continue
        if e.depth == depth and g != group:
            return svcs
        if g == group:
            kept.append(svc)
    return kept
