"""The plan: desired endpoints against current records -> creates, updates and deletes. Pure, no I/O.

Rules (ExternalDNS's, made deterministic and per (name, type)):

* Desired endpoints come canonical from the sources (:mod:`syncer.sources`: normalised names without the trailing
  dot, targets in the spelling :mod:`syncer.keys` stores); the plan uses them as they are.
* Only the types we manage (A, AAAA, CNAME, SRV) are planned; the domain filter applies to desired endpoints
  *and* to current records (an owned record outside the filter is left alone).
* **Merging** the desired endpoints of one (name, type) that several objects want: A, AAAA and SRV targets are
  unioned; each target's value names the lexically smallest object that wants it; the TTL is the smallest TTL
  any of them sets (unset if none does). A CNAME has one target, so one object wins: the object that owns the
  current CNAME record if it still wants it (no flapping), else the lexically smallest object (then the
  smallest target). The others are skipped with a reason.
* **Conflicts**: a CNAME can't share its name with other data, so A/AAAA (and SRV) at a name win over a CNAME
  there; the CNAME is skipped with a warning that names both objects.
* **Ownership**: only records whose ``owner`` equals the owner id are updated or deleted. Nothing is created at
  a name that holds a managed-type record (A, AAAA, CNAME, SRV) of another owner or of none (written by hand or
  by ExternalDNS without ``--coredns-strictly-owned``), or a value with a host and a text (ExternalDNS <= 0.17
  merged its ownership text into the record; CoreDNS serves it as TXT); that record is skipped with a reason
  naming them. Text-only TXT records (such as ExternalDNS's ownership TXT keys, at ``a-<name>``, or an ACME
  challenge) never block and are never touched.
  Nor is a record created next to one of our own records it would conflict with (a CNAME and other data) when
  the policy keeps that record.
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
from dataclasses import dataclass, field

from skydns.names import DEFAULT_PREFIX
from skydns.record import Record
from syncer.current import CurrentRecord
from syncer.domains import DomainFilter
from syncer.keys import MANAGED_TYPES, record_key, record_value
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

    ``targets``/``ttl``/``resource`` describe the record set after the change (for a delete: the one removed).
    ``records`` are the values to write (create, update); ``current`` are our records it replaces or deletes,
    with the mod revisions they were read at.
    """

    action: str  # "create" | "update" | "delete"
    name: str
    type: str
    targets: tuple[str, ...]
    ttl: int | None
    resource: str
    records: tuple[DesiredRecord, ...] = ()
    current: tuple[CurrentRecord, ...] = ()

    @property
    def old_targets(self) -> tuple[str, ...]:
        return tuple(sorted({r.target for r in self.current}))


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
                    foreign: Sequence[CurrentRecord]) -> str:
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
                f"{', ...' if len(keys) > 3 else ''}); not ours to change")
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
              domain_filter: DomainFilter | None = None, prefix: str = DEFAULT_PREFIX) -> Plan:
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

    # Keys we may not write to: anything there that is not one of our managed records (another owner's
    # record at the very key, or a value of ours of another kind); the writer's compare would refuse anyway.
    occupied = {rec.key: rec for rec in current if rec.owner != owner_id or rec.type not in TYPE_ORDER}
    context = _Context(plan, owner_id, policy, prefix, occupied)
    for name in sorted(set(wanted) | set(owned), key=dns_order):
        _plan_name(context, name, wanted.get(name, {}), owned.get(name, {}), foreign.get(name, []))

    plan.changes.sort(key=lambda c: (dns_order(c.name), TYPE_ORDER.get(c.type, 99)))
    plan.skipped.sort(key=lambda s: (s.resource, s.value, s.reason))
    return plan


@dataclass(frozen=True)
class _Context:
    plan: Plan
    owner_id: str
    policy: str
    prefix: str
    occupied: dict[str, CurrentRecord]


def _plan_name(ctx: _Context, name: str, wanted: dict[str, list[Endpoint]], owned: dict[str, list[CurrentRecord]],
               foreign: list[CurrentRecord]) -> None:
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

    planned: list[Change] = []
    for record_type in sorted(set(merged) | set(owned), key=lambda t: TYPE_ORDER[t]):
        mine = sorted(owned.get(record_type, []), key=lambda r: r.key)
        want = merged.get(record_type)
        if want is None:
            if policy == "sync":
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
        blocked = _blocked_reason(name, taken, ctx.occupied, foreign if not mine else [])
        if blocked:
            plan.conflicts += 1
            for resource in sorted(set(want.target_resource.values())):
                plan.skipped.append(Skipped(resource, f"{name} {record_type} {','.join(targets)}", blocked))
            continue
        if not mine:
            planned.append(Change("create", name, record_type, targets, want.ttl, want.resources,
                                  records=tuple(records.values())))
        elif not _in_sync(records, mine) and policy != "create-only":
            planned.append(Change("update", name, record_type, targets, want.ttl, want.resources,
                                  records=tuple(records.values()), current=tuple(mine)))

    # A CNAME must not end up next to other data of ours that the policy keeps.
    kept = {t for t in owned if not any(c.type == t and c.action == "delete" for c in planned)}
    for change in list(planned):
        if change.action != "create":
            continue
        clash = sorted(t for t in kept if (t == "CNAME") != (change.type == "CNAME"))
        if clash:
            planned.remove(change)
            for resource in change.resource.split(","):
                plan.skipped.append(Skipped(
                    resource, f"{name} {change.type} {','.join(change.targets)}",
                    f"{name} holds our {'/'.join(clash)} record, which policy {policy} keeps; "
                    f"a CNAME can't share its name with other data"))
    plan.changes.extend(planned)
