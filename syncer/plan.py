"""The plan: desired endpoints against current records -> creates, updates and deletes. Pure, no I/O.

Rules (ExternalDNS's, made deterministic and per (name, type)):

* Desired endpoints come canonical from the sources (:mod:`syncer.sources`: normalised names without the trailing
  dot, targets in the spelling :mod:`syncer.keys` stores); the plan uses them as they are.
* Only the types we manage (:data:`syncer.keys.MANAGED_TYPES`: A, AAAA, CNAME, SRV, MX, TXT, NS) are
  planned; the domain filter applies to desired endpoints
  *and* to current records (an owned record outside the filter is left alone).
* **Merging** the desired endpoints of one (name, type) that several objects want: A, AAAA and SRV targets are
  unioned; each target's value names the lexically smallest object that wants it; the TTL is the smallest TTL
  any of them sets (unset if none does). A CNAME has one target, so one object wins: the object that owns the
  current CNAME record if it still wants it (no flapping), else the lexically smallest object (then the
  smallest target). The others are skipped with a reason.
* **Conflicts**: a CNAME can't share its name with other data, so A/AAAA (and SRV) at a name win over a CNAME
  there; the CNAME is skipped with a warning that names both objects.
* **Ownership**: only records whose ``owner`` equals the owner id are updated or deleted (and, adopting,
  ExternalDNS's records and TXTs of the adopted ids, see below). Nothing is created at
  a name that holds a record of another owner or of none (written by hand or by ExternalDNS without
  ``--coredns-strictly-owned``) that it would clash with (:func:`syncer.keys.blocks`): one of the same type, a
  CNAME (or a value with a host and a text: ExternalDNS <= 0.17 merged its ownership text into the record; CoreDNS
  serves it as TXT) before anything, anything before a CNAME, and A/AAAA/SRV before each other; that record is
  skipped with a reason naming them. MX, TXT and NS records share their name with other types: a foreign TXT
  (ExternalDNS's ownership TXT keys, at ``a-<name>``, an ACME challenge) blocks only our TXT there, and is never
  touched but by an adoption.
  Nor is a record created next to one of our own records it would conflict with (a CNAME and other data) when
  the policy keeps that record.
* **Adoption** (``--adopt-txt-owner``, :mod:`syncer.adoption`): at a name we want, records that ExternalDNS's TXT
  registry says one of the given ids owns are treated as ours: each (name, type) holding them is an ``adopt``
  change that puts our records and deletes theirs, and the first ``adopt`` change of the name also deletes their
  ownership TXTs (``a-<name>`` ...), so the writer does all of it in the name's one transaction. A type we do not
  want there is removed with ``sync`` and kept (with the TXT that owns it) with ``upsert-only``; ``create-only``
  adopts nothing. A name whose records are not all adoptable stays blocked, the reason says why.
* **Policies**: ``sync`` creates, updates and deletes; ``upsert-only`` never deletes; ``create-only`` never
  updates or deletes.
* A (name, type) is in sync when our records there are exactly one key per desired target, at the stable key
  (:func:`syncer.keys.leaf`), holding exactly the value we would write. Anything else is an update, which
  also moves records from random leaf keys (ExternalDNS strictly-owned data with our owner id) to stable ones.

The same inputs always give the same plan: changes are sorted by name (in DNS order: reversed labels) and type,
skipped records by object.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from skydns.names import DEFAULT_PREFIX
from skydns.record import Record
from syncer.adoption import Adoptable, AdoptionRules, Refused
from syncer.current import CurrentRecord
from syncer.domains import DomainFilter
from syncer.keys import MANAGED_TYPES, blocks, record_key, record_value
from syncer.model import Endpoint, Skipped

POLICIES = ("sync", "upsert-only", "create-only")
TYPE_ORDER = {t: i for i, t in enumerate(MANAGED_TYPES)}


@dataclass(frozen=True)
class DesiredRecord:
    """One target to write and its full value (owner included)."""

    target: str
    record: Record
    key: str  # where it is written: <prefix>/<reversed name>/<leaf>


@dataclass(frozen=True)
class Change:
    """One planned change of a (name, type).

    ``targets``/``ttl``/``resource`` describe the record set after the change (for a delete: the one removed;
    for an adopt that removes a type: none). ``records`` are the values to write (create, update, adopt);
    ``current`` are the records it replaces or deletes (ours, and for an adopt ExternalDNS's), with the mod
    revisions they were read at; ``ownership`` the ExternalDNS ownership TXTs an adopt deletes with them, and
    ``adopted_from`` the ExternalDNS owner ids.
    """

    action: str  # "create" | "update" | "delete" | "adopt"
    name: str
    type: str
    targets: tuple[str, ...]
    ttl: int | None
    resource: str
    records: tuple[DesiredRecord, ...] = ()
    current: tuple[CurrentRecord, ...] = ()
    ownership: tuple[CurrentRecord, ...] = ()
    adopted_from: tuple[str, ...] = ()

    @property
    def old_targets(self) -> tuple[str, ...]:
        return tuple(sorted({_served_target(r) for r in self.current}))


def _served_target(record: CurrentRecord) -> str:
    """A record's target; for a name host with a text (ExternalDNS <= 0.17's CNAME) the host, not the text."""
    if record.type == "TXT" and record.record.host:
        return record.record.host.rstrip(".").lower()
    return record.target


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conflicts: int = 0  # record sets not written because another owner holds their name or key

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def adopted_names(self) -> list[str]:
        return sorted({c.name for c in self.changes if c.action == "adopt"}, key=dns_order)


@dataclass
class _Merged:
    """The desired record set of one (name, type) after merging."""

    type: str
    target_resource: dict[str, str]
    target_group: dict[str, str]
    ttl: int | None

    @property
    def resources(self) -> str:
        return ",".join(sorted(set(self.target_resource.values())))


def dns_order(name: str) -> tuple[str, ...]:
    """Sort key that keeps a zone's names together and a name before the names below it."""
    return tuple(reversed(name.split(".")))


def _blocked_reason(name: str, taken: list[str], occupied: Mapping[str, CurrentRecord],
                    foreign: Sequence[CurrentRecord], not_adopted: str = "") -> str:
    """Why we must not write this record set ("" when we may): our key holds someone else's value, or we would
    create at a name that holds another owner's (or unowned) records."""
    if taken:
        holder = occupied[taken[0]]
        return (f"the key {taken[0]} is held by a {holder.type} record of {_describe_owner(holder.owner)}; "
                f"not ours to overwrite")
    if foreign:
        owners = sorted({_describe_owner(r.owner) for r in foreign})
        keys = sorted(r.key for r in foreign)
        return (f"{name} holds records of {'; '.join(owners)} ({', '.join(keys[:3])}"
                f"{', ...' if len(keys) > 3 else ''}); not ours to change"
                f"{f' (not adopted: {not_adopted})' if not_adopted else ''}")
    return ""


def _describe_owner(owner: str) -> str:
    return f"owner {owner!r}" if owner else "no owner (written by hand or by another tool)"


def _merge(record_type: str, endpoints: list[Endpoint]) -> _Merged:
    target_resource: dict[str, str] = {}
    target_group: dict[str, str] = {}
    for ep in sorted(endpoints, key=lambda e: (e.resource, e.targets, e.group)):
        for target in ep.targets:
            if target not in target_resource:  # the smallest resource wanting it comes first
                target_resource[target] = ep.resource
                target_group[target] = ep.group
    ttls = [ep.ttl for ep in endpoints if ep.ttl]
    return _Merged(record_type, target_resource, target_group, min(ttls) if ttls else None)


def _pick_cname(name: str, endpoints: list[Endpoint], owned: list[CurrentRecord],
                skipped: list[Skipped]) -> Endpoint:
    """One CNAME winner (see the module docstring); the losers are skipped."""
    current_resources = {r.resource for r in owned}
    ordered = sorted(endpoints, key=lambda e: (e.resource not in current_resources, e.resource, e.targets))
    winner = ordered[0]
    for loser in ordered[1:]:
        if loser.targets == winner.targets:
            continue
        why = "it owns the current record" if winner.resource in current_resources else "lexically smallest object"
        skipped.append(Skipped(loser.resource, f"{name} CNAME {','.join(loser.targets)}",
                               f"{winner.resource} also wants a CNAME at {name} and wins ({why})"))
    if len(winner.targets) > 1:
        first, *rest = winner.targets
        for target in rest:
            skipped.append(Skipped(winner.resource, f"{name} CNAME {target}",
                                   f"a CNAME has one target; {first} is used"))
        winner = Endpoint(winner.name, winner.type, (first,), winner.ttl, winner.resource, winner.group)
    return winner


def _in_sync(desired: dict[str, DesiredRecord], owned: list[CurrentRecord]) -> bool:
    """Exactly one owned record per desired target, at the key and with the value we would write."""
    if len(owned) != len(desired):
        return False
    for rec in owned:
        want = desired.get(rec.target)
        if want is None or rec.key != want.key or rec.record != want.record:
            return False
    return True


def calculate(desired: list[Endpoint], current: list[CurrentRecord], owner_id: str, policy: str,
              domain_filter: DomainFilter | None = None, prefix: str = DEFAULT_PREFIX, *,
              adoption: AdoptionRules | None = None) -> Plan:
    """The changes that make the current records match the desired endpoints (see the module docstring)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: one of {', '.join(POLICIES)}")
    if not owner_id:
        raise ValueError("the owner id must not be empty")
    domain_filter = domain_filter or DomainFilter()
    plan = Plan()

    wanted: dict[str, dict[str, list[Endpoint]]] = defaultdict(lambda: defaultdict(list))
    for ep in desired:
        if not domain_filter.matches(ep.name):
            continue
        if ep.type not in TYPE_ORDER:
            plan.skipped.append(Skipped(ep.resource, f"{ep.name} {ep.type} {','.join(ep.targets)}",
                                        f"record type {ep.type} is not managed (only {', '.join(MANAGED_TYPES)})"))
            continue
        if ep.targets:
            wanted[ep.name][ep.type].append(ep)

    owned: dict[str, dict[str, list[CurrentRecord]]] = defaultdict(lambda: defaultdict(list))
    foreign: dict[str, list[CurrentRecord]] = defaultdict(list)
    for rec in current:
        if not domain_filter.matches(rec.name):
            continue
        if rec.type not in TYPE_ORDER:
            if rec.record.host:  # a name host with a text (ExternalDNS <= 0.17's CNAME): someone's record
                foreign[rec.name].append(rec)
            continue
        if rec.owner == owner_id:
            owned[rec.name][rec.type].append(rec)
        else:
            foreign[rec.name].append(rec)

    adopted, refused = _adoptions(adoption, policy, current, wanted, foreign)
    adopted_keys = {r.key for a in adopted.values() for recs in a.records.values() for r in recs}
    # Keys we may not write to: anything there that is not one of our managed records (another owner's
    # record at the very key, or a value of ours of another kind); the writer's compare would refuse anyway.
    occupied = {rec.key: rec for rec in current
                if (rec.owner != owner_id or rec.type not in TYPE_ORDER) and rec.key not in adopted_keys}
    context = _Context(plan, owner_id, policy, prefix, occupied, refused)
    for name in sorted(set(wanted) | set(owned), key=dns_order):
        _plan_name(context, name, wanted.get(name, {}), owned.get(name, {}), foreign.get(name, []),
                   adopted.get(name))

    plan.changes.sort(key=lambda c: (dns_order(c.name), TYPE_ORDER.get(c.type, 99)))
    plan.skipped.sort(key=lambda s: (s.resource, s.value, s.reason))
    return plan


def _adoptions(adoption: AdoptionRules | None, policy: str, current: list[CurrentRecord],
               wanted: Mapping[str, Mapping[str, object]], foreign: dict[str, list[CurrentRecord]]
               ) -> tuple[dict[str, Adoptable], dict[str, str]]:
    """The wanted names whose blocking records are ExternalDNS's, owned by an adopted id (taken out of
    ``foreign``), and why the others are not."""
    adopted: dict[str, Adoptable] = {}
    refused: dict[str, str] = {}
    candidates = [name for name in wanted if foreign.get(name)]
    if adoption is None or policy == "create-only" or not candidates:
        return adopted, refused
    index = adoption.index(current)
    taken: set[str] = set()  # an ownership TXT two names map to (a wildcard and its replacement) goes with one
    for name in sorted(candidates, key=dns_order):
        decision = adoption.decide(index, name, foreign[name], wanted[name])
        if isinstance(decision, Refused):
            refused[name] = decision.reason
            continue
        claims = tuple(c for c in decision.claims if c.record.key not in taken)
        taken.update(c.record.key for c in claims)
        adopted[name] = replace(decision, claims=claims)
        del foreign[name]
    return adopted, refused


@dataclass(frozen=True)
class _Context:
    plan: Plan
    owner_id: str
    policy: str
    prefix: str
    occupied: dict[str, CurrentRecord]
    refused: dict[str, str] = field(default_factory=dict)


def _plan_name(ctx: _Context, name: str, wanted: dict[str, list[Endpoint]], owned: dict[str, list[CurrentRecord]],
               foreign: list[CurrentRecord], adopted: Adoptable | None = None) -> None:
    plan, owner_id, policy = ctx.plan, ctx.owner_id, ctx.policy
    wanted = {t: list(eps) for t, eps in wanted.items()}
    if "CNAME" in wanted and len(wanted) > 1:
        winners = sorted({ep.resource for t, eps in wanted.items() if t != "CNAME" for ep in eps})
        for ep in wanted.pop("CNAME"):
            other = next(t for t in MANAGED_TYPES if t in wanted)
            message = (f"CNAME at {name} from {ep.resource} conflicts with {other} from {', '.join(winners)}; "
                       f"A/AAAA win over CNAME")
            plan.warnings.append(message)
            plan.skipped.append(Skipped(ep.resource, f"{name} CNAME {','.join(ep.targets)}", message))

    merged: dict[str, _Merged] = {}
    for record_type, eps in wanted.items():
        if record_type == "CNAME":
            eps = [_pick_cname(name, eps, owned.get("CNAME", []), plan.skipped)]
        merged[record_type] = _merge(record_type, eps)

    theirs_by_type = adopted.records if adopted is not None else {}
    adopted_from = adopted.owners if adopted is not None else ()
    planned: list[Change] = []
    for record_type in sorted(set(merged) | set(owned) | set(theirs_by_type), key=lambda t: TYPE_ORDER.get(t, 99)):
        mine = sorted(owned.get(record_type, []), key=lambda r: r.key)
        theirs = sorted(theirs_by_type.get(record_type, ()), key=lambda r: r.key)
        want = merged.get(record_type)
        if want is None:
            if policy == "sync" and theirs:
                planned.append(Change("adopt", name, record_type, (), None,
                                      ",".join(sorted({r.resource for r in mine if r.resource})),
                                      current=(*mine, *theirs), adopted_from=adopted_from))
            elif policy == "sync" and mine:
                planned.append(Change("delete", name, record_type, tuple(sorted({r.target for r in mine})),
                                      mine[0].ttl, ",".join(sorted({r.resource for r in mine if r.resource})),
                                      current=tuple(mine)))
            continue
        records = {t: DesiredRecord(t, record_value(record_type, t, ttl=want.ttl, group=want.target_group[t],
                                                    owner=owner_id, resource=r),
                                    record_key(ctx.prefix, name, record_type, t))
                   for t, r in sorted(want.target_resource.items())}
        targets = tuple(sorted(records))
        taken = sorted(r.key for r in records.values() if r.key in ctx.occupied)
        blocking = [r for r in foreign if blocks(r.type, r.record, record_type)] if not mine else []
        blocked = _blocked_reason(name, taken, ctx.occupied, blocking, ctx.refused.get(name, ""))
        if blocked:
            plan.conflicts += 1
            for resource in sorted(set(want.target_resource.values())):
                plan.skipped.append(Skipped(resource, f"{name} {record_type} {','.join(targets)}", blocked))
            continue
        if theirs:
            planned.append(Change("adopt", name, record_type, targets, want.ttl, want.resources,
                                  records=tuple(records.values()), current=(*mine, *theirs),
                                  adopted_from=adopted_from))
        elif not mine:
            planned.append(Change("create", name, record_type, targets, want.ttl, want.resources,
                                  records=tuple(records.values())))
        elif not _in_sync(records, mine) and policy != "create-only":
            planned.append(Change("update", name, record_type, targets, want.ttl, want.resources,
                                  records=tuple(records.values()), current=tuple(mine)))

    # A CNAME must not end up next to other data of ours (or adopted data) that the policy keeps.
    kept = {t for t in set(owned) | set(theirs_by_type)
            if not any(c.type == t and c.action in ("delete", "adopt") and not c.records for c in planned)}
    for change in list(planned):
        if change.action not in ("create", "adopt") or not change.records:
            continue
        clash = sorted(t for t in kept if (t == "CNAME") != (change.type == "CNAME"))
        if clash:
            planned.remove(change)
            for resource in change.resource.split(","):
                plan.skipped.append(Skipped(
                    resource, f"{name} {change.type} {','.join(change.targets)}",
                    f"{name} holds our {'/'.join(clash)} record, which policy {policy} keeps; "
                    f"a CNAME can't share its name with other data"))
    if adopted is not None:
        planned = _with_ownership(planned, adopted)
    plan.changes.extend(planned)


def _with_ownership(planned: list[Change], adopted: Adoptable) -> list[Change]:
    """The name's first adopt change also deletes ExternalDNS's ownership TXTs - except those that still own a
    type we keep as it is (``upsert-only``)."""
    adopts = [i for i, c in enumerate(planned) if c.action == "adopt"]
    if not adopts:
        return planned
    kept = {t for t in adopted.records if not any(c.type == t for c in planned)}
    first = adopts[0]
    out = list(planned)
    out[first] = replace(planned[first], ownership=adopted.ownership_records(kept))
    return out
