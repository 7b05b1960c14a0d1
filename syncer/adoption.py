"""Adopting an ExternalDNS installation (``--adopt-txt-owner ID``): which names ExternalDNS's TXT registry says are
owned by one of the given ids, read exactly as ExternalDNS reads them. Pure, no I/O.

What ExternalDNS (coredns provider + TXT registry) leaves in etcd for ``www.example.org A 10.0.0.1``:

* the record: ``<prefix>/org/example/www/<8 random hex>`` = ``{"host":"10.0.0.1","targetstrip":1}`` (``ttl`` and
  ``group`` when set; an ``owner`` field only with ``--coredns-strictly-owned``);
* its ownership record, a TXT at another name: ``<prefix>/org/example/a-www/<8 random hex>`` =
  ``{"text":"\\"heritage=external-dns,external-dns/owner=ID,external-dns/resource=service/ns/name\\"",
  "targetstrip":1}``; ExternalDNS <= 0.17 also wrote the old-format companion without the type, at the record's
  own name, which the coredns provider merged into the record's value as its ``text``.

**The TXT name** (ExternalDNS's ``AffixNameMapper``): ``<type>-`` goes in front of the first label (``a-``, ``aaaa-``,
``cname-``, ``ns-``, ``mx-``, ``srv-``, ``ptr-``, ``naptr-``, ``txt-``, ``dname-``); ``--txt-prefix P`` gives
``P<type>-<first label>.<rest>``, ``--txt-suffix S`` gives ``<type>-<first label>S.<rest>`` (one or the other);
``%{record_type}`` in the affix takes the place of the ``<type>-``; affixes are lower-cased; a leading ``*`` label
becomes ``--txt-wildcard-replacement`` when set. Reading goes the other way (:meth:`AffixMapper.endpoint_name`),
with ExternalDNS's own order of trials, so a TXT name maps to exactly the (name, type) ExternalDNS maps it to; a
TXT name that maps to no type is an old-format companion, which owns every type at its name except AAAA.

**The TXT value** (``endpoint.Labels``): the text with the double quotes around it dropped, split at ``,``; tokens
without ``=`` are ignored; ``heritage`` must be ``external-dns`` (else, or without it, the TXT is an ordinary TXT,
not an ownership record); ``external-dns/<key>=<value>`` are the labels; ``owner`` is the one that matters here.
Encrypted registries (``--txt-encrypt-enabled``) do not parse: their names are never adopted.

**A name is adoptable** when dnssync wants it and every record there that is not ours is owned, by ExternalDNS's
rules, by one of the ``--adopt-txt-owner`` ids: the ownership TXT of its (name, type), else - not for AAAA - the
old-format one; a record with an ``owner`` field must carry one of the ids too. Any ownership TXT at the name that
names another owner, a record without an ownership TXT, or one whose TXT does not parse, keeps the whole name as it
is: not ours - except records of a type that shares its name with others (TXT, MX, NS) and that we do not want
there, which are left alone (an ACME challenge TXT stays). An old-format ownership TXT at the name itself (text
only) is an ownership record, not a record. The ownership records of an adopted name (those naming one of the ids)
are deleted with it, in the same transaction (:mod:`syncer.plan`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from skydns.names import InvalidNameError, name_labels
from syncer.current import CurrentRecord

HERITAGE = "external-dns"
RECORD_TEMPLATE = "%{record_type}"
#: ExternalDNS's ``supportedRecords``, in its order (the order of trials when reading a TXT name)
SUPPORTED_TYPES = ("A", "AAAA", "CNAME", "NS", "MX", "PTR", "SRV", "NAPTR", "TXT", "DNAME")
LEGACY = ""  # the "type" of an old-format ownership TXT: it owns every type at its name but AAAA
COEXISTING_TYPES = frozenset({"TXT", "MX", "NS"})  # types that share their name with records of other types


def parse_heritage(text: str) -> dict[str, str] | None:
    """ExternalDNS's ``NewLabelsFromStringPlain``: the labels of an ownership TXT, or None for an ordinary TXT."""
    labels: dict[str, str] = {}
    found = False
    for token in text.strip('"').split(","):
        key, sep, value = token.partition("=")
        if not sep:
            continue
        if key == "heritage":
            if value != HERITAGE:
                return None
            found = True
        elif key.startswith(HERITAGE):
            labels[key.removeprefix(HERITAGE + "/")] = value
    return labels if found else None


@dataclass(frozen=True)
class AffixMapper:
    """ExternalDNS's ``AffixNameMapper`` (``--txt-prefix``, ``--txt-suffix``, ``--txt-wildcard-replacement``)."""

    prefix: str = ""
    suffix: str = ""
    wildcard_replacement: str = ""

    def __post_init__(self) -> None:
        if self.prefix and self.suffix:
            raise ValueError("the TXT prefix and suffix exclude each other (as in ExternalDNS)")
        object.__setattr__(self, "prefix", self.prefix.lower())
        object.__setattr__(self, "suffix", self.suffix.lower())
        object.__setattr__(self, "wildcard_replacement", self.wildcard_replacement.lower())

    @property
    def _templated(self) -> bool:
        return RECORD_TEMPLATE in self.prefix or RECORD_TEMPLATE in self.suffix

    def txt_name(self, name: str, record_type: str) -> str:
        """``ToTXTName``: where ExternalDNS writes the ownership TXT of ``name``'s ``record_type`` records."""
        first, dot, rest = name.partition(".")
        rtype = record_type.lower()
        if self.wildcard_replacement and first == "*":
            first = self.wildcard_replacement
        if not self._templated:
            first = f"{rtype}-{first}"
        prefix = self.prefix.replace(RECORD_TEMPLATE, rtype)
        suffix = self.suffix.replace(RECORD_TEMPLATE, rtype)
        return f"{prefix}{first}{suffix}{dot}{rest}"

    def legacy_txt_name(self, name: str) -> str:
        """Where an old-format (type-less) ownership TXT of ``name`` lives."""
        first, dot, rest = name.partition(".")
        if self.wildcard_replacement and first == "*":
            first = self.wildcard_replacement
        prefix, suffix = self.prefix.replace(RECORD_TEMPLATE, ""), self.suffix.replace(RECORD_TEMPLATE, "")
        return f"{prefix}{first}{suffix}{dot}{rest}"

    def endpoint_name(self, txt_name: str) -> tuple[str, str]:
        """``ToEndpointName``: the (lookup name, type) a TXT name is the ownership record of; type ``""`` for an
        old-format one; ``("", "")`` when the name does not carry the affix."""
        lower = txt_name.lower()
        if not self.suffix:
            return self._drop_affix(lower)
        dots = self.suffix.count(".")
        parts = lower.split(".", 1 + dots)
        if len(parts) <= dots:
            return "", ""
        name, rtype = self._drop_affix(".".join(parts[:1 + dots]))
        if len(parts) <= 1 + dots:
            return name, rtype
        return f"{name}.{parts[1 + dots]}", rtype

    def _drop_affix(self, name: str) -> tuple[str, str]:
        prefix, suffix = self.prefix, self.suffix
        if self._templated:
            for rtype in SUPPORTED_TYPES:
                lower = rtype.lower()
                with_type_prefix = prefix.replace(RECORD_TEMPLATE, lower)
                with_type_suffix = suffix.replace(RECORD_TEMPLATE, lower)
                if not suffix and name.startswith(with_type_prefix):
                    return name.removeprefix(with_type_prefix), rtype
                if suffix and name.endswith(with_type_suffix):
                    return name.removesuffix(with_type_suffix), rtype
            prefix, suffix = prefix.replace(RECORD_TEMPLATE, ""), suffix.replace(RECORD_TEMPLATE, "")
        if not suffix and name.startswith(prefix):
            return _type_in_front(name.removeprefix(prefix))
        if suffix and name.endswith(suffix):
            return _type_in_front(name.removesuffix(suffix))
        return "", ""

    def lookup_name(self, name: str) -> str:
        """The name ownership is looked up under (a leading ``*`` replaced, as ExternalDNS's registry does)."""
        first, dot, rest = name.partition(".")
        if self.wildcard_replacement and first == "*":
            return f"{self.wildcard_replacement}{dot}{rest}"
        return name

    def ownership_names(self, name: str) -> tuple[str, ...]:
        """Every TXT name that may hold an ownership record of ``name`` (each maps back to it)."""
        wanted = self.lookup_name(name)
        found = [n for n in (*(self.txt_name(name, t) for t in SUPPORTED_TYPES), self.legacy_txt_name(name))
                 if self.endpoint_name(n)[0] == wanted]
        return tuple(dict.fromkeys(found))

    def owned_names(self, txt_name: str) -> tuple[str, ...]:
        """The record names a TXT name may be the ownership record of (both spellings of a wildcard)."""
        name, _ = self.endpoint_name(txt_name)
        if not name:
            return ()
        first, dot, rest = name.partition(".")
        if self.wildcard_replacement and first == self.wildcard_replacement:
            return name, f"*{dot}{rest}"
        return (name,)


def _type_in_front(name: str) -> tuple[str, str]:
    """``extractRecordTypeDefaultPosition``: ``a-www.example.org`` -> (``www.example.org``, ``A``)."""
    head = name.split("-", 1)[0]
    for rtype in SUPPORTED_TYPES:
        if head == rtype.lower():
            return name.removeprefix(head + "-"), rtype
    return name, LEGACY


@dataclass(frozen=True)
class Claim:
    """One ownership TXT: the record holding it, the (lookup name, type) it owns and the owner it names."""

    record: CurrentRecord
    name: str
    type: str  # "" for an old-format one
    owner: str


@dataclass(frozen=True)
class Adoptable:
    """A name to adopt: the records of ExternalDNS's there (by the type ExternalDNS reads them as), and the
    ownership records naming one of our ids."""

    name: str
    owners: tuple[str, ...]
    records: dict[str, tuple[CurrentRecord, ...]]
    claims: tuple[Claim, ...]

    def ownership_records(self, kept_types: Iterable[str] = ()) -> tuple[CurrentRecord, ...]:
        """The ownership records to delete when the records of ``kept_types`` stay (``upsert-only``): a TXT
        stays while a record it owns stays."""
        kept = set(kept_types)
        own_keys = {r.key for recs in self.records.values() for r in recs}
        out: list[CurrentRecord] = []
        for claim in self.claims:
            still_owns = bool(kept - {"AAAA"}) if claim.type == LEGACY else claim.type in kept
            if not still_owns and claim.record.key not in own_keys:
                out.append(claim.record)
        return tuple(sorted({r.key: r for r in out}.values(), key=lambda r: r.key))


@dataclass(frozen=True)
class Refused:
    """Why a name holding ExternalDNS-looking records is not adopted."""

    reason: str


def adoption_type(record: CurrentRecord) -> str:
    """The type of a record of ExternalDNS's, for its ownership: its type, except that a name host with a text
    (ExternalDNS <= 0.17's CNAME with its merged ownership text, which CoreDNS serves as TXT) is a CNAME, and a host
    that is an SRV's ``priority weight port target`` (what ExternalDNS's coredns provider stores for SRV, under
    an ``srv-`` TXT) is an SRV."""
    if record.type == "TXT" and record.record.host:
        return "CNAME"
    parts = record.target.split()
    if record.type == "CNAME" and len(parts) == 4 and all(p.isdigit() for p in parts[:3]):
        return "SRV"
    return record.type


@dataclass
class OwnershipIndex:
    """The ownership TXTs among some records, by the lookup name they own."""

    claims: dict[str, list[Claim]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True)
class AdoptionRules:
    """``--adopt-txt-owner`` ids (at least one) and where ExternalDNS put its ownership TXTs."""

    owners: tuple[str, ...]
    mapper: AffixMapper = field(default_factory=AffixMapper)

    def index(self, records: Iterable[CurrentRecord]) -> OwnershipIndex:
        out = OwnershipIndex()
        for rec in records:
            text = rec.record.text
            if not text:
                continue
            labels = parse_heritage(text)
            if labels is None:
                continue
            name, rtype = self.mapper.endpoint_name(rec.name)
            if name:
                out.claims[name].append(Claim(rec, name, rtype, labels.get("owner", "")))
        return out

    def names_to_read(self, names: Iterable[str]) -> list[str]:
        """The names, and every name that may hold one of their ownership TXTs (those that can be names: an affix
        can push a label over 63 bytes, and ExternalDNS then wrote nothing there)."""
        out: dict[str, None] = {}
        for name in names:
            out[name] = None
            for txt in self.mapper.ownership_names(name):
                out[txt] = None
        return [name for name in out if _valid(name)]

    def owned_names(self, txt_name: str) -> tuple[str, ...]:
        return self.mapper.owned_names(txt_name)

    def decide(self, index: OwnershipIndex, name: str, foreign: Sequence[CurrentRecord],
               wanted_types: Iterable[str] = ()) -> Adoptable | Refused:
        """Whether the records not ours at ``name`` (``foreign``) are ExternalDNS's, owned by one of our ids, when
        we want records of ``wanted_types`` there (see the module docstring)."""
        wanted = set(wanted_types)
        claims = index.claims.get(self.mapper.lookup_name(name), [])
        claim_keys = {c.record.key for c in claims}
        strangers = sorted({c.owner for c in claims if c.owner not in self.owners})
        if strangers:
            return Refused(f"ExternalDNS's ownership TXT says owner {_owners(strangers)}, not one of "
                           f"--adopt-txt-owner {', '.join(self.owners)}")
        by_type: dict[str, list[Claim]] = defaultdict(list)
        for claim in claims:
            by_type[claim.type].append(claim)
        records: dict[str, list[CurrentRecord]] = defaultdict(list)
        owners: set[str] = set()
        for rec in foreign:
            if rec.key in claim_keys and not rec.record.host:
                continue  # an old-format ownership TXT at the name: deleted with the claims
            rtype = adoption_type(rec)
            found = by_type.get(rtype) or (by_type.get(LEGACY, []) if rtype != "AAAA" else [])
            if not found and rtype in COEXISTING_TYPES and rtype not in wanted:
                continue  # someone's TXT/MX/NS beside the records we want: left alone
            if not found:
                return Refused(f"its {rtype} record {rec.key} has no ExternalDNS ownership TXT "
                               f"({self.mapper.txt_name(name, rtype)}) that parses")
            if rec.owner and rec.owner not in self.owners:
                return Refused(f"its {rtype} record {rec.key} carries owner {rec.owner!r}")
            owners.update(c.owner for c in found)
            records[rtype].append(rec)
        return Adoptable(name, tuple(sorted(owners)), {t: tuple(rs) for t, rs in records.items()}, tuple(claims))


def _valid(name: str) -> bool:
    try:
        name_labels(name)
    except InvalidNameError:
        return False
    return True


def _owners(owners: Sequence[str]) -> str:
    return ", ".join(repr(o) if o else "(none)" for o in owners)
