"""The plan as people and programs read it (stdout). Logs go elsewhere (stderr).

Text, one line per change, then skipped records, then the summary::

    + www.example.org A 203.0.113.10 ttl=60 service/default/web
    ~ api.example.org A 203.0.113.11 (was 203.0.113.9) ttl=- ingress/default/api
    - old.example.org CNAME lb.example.net ttl=- service/default/old
    * shop.example.org A 203.0.113.12 (was 203.0.113.9) ttl=- service/default/shop adopted from ExternalDNS owner
      ext-1, deleting its ownership TXT a-shop.example.org        (one line, wrapped here)
    ! service/default/bad: www.example.org A nope: 'nope' is not an IPv4 address
    3 to create, 1 to update, 0 to delete, 1 to adopt, 1 skipped

An adopt (``--adopt-txt-owner``) replaces ExternalDNS's records of that (name, type) by ours; one with no targets
(``-``) removes a type we do not want there. ``to adopt`` counts adopted names; it is left out when there are none.

JSON (``--output json``), one object::

    {"changes": [{"action", "name", "type", "targets", "ttl", "resource"}],
     "summary": {"create", "update", "delete", "skipped"},
     "skipped": [{"resource", "value", "reason"}]}

An ``adopt`` change also has ``"adopted": {"owners", "old_targets", "ownership_records"}`` (the ExternalDNS owner
ids, the targets it replaces, the names of the ownership TXTs it deletes); ``summary`` has ``"adopt"`` (names)
when the plan adopts any.

Names have no trailing dot, targets are sorted (SRV as ``priority weight port target``), ``ttl`` is null when
unset; ``resource`` is the source object (several, comma-separated, when objects share a record set).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from syncer.model import Skipped
from syncer.plan import Change, Plan

SYMBOLS = {"create": "+", "update": "~", "delete": "-", "adopt": "*"}
PAST_TENSE = {"create": "created", "update": "updated", "delete": "deleted", "adopt": "adopted"}  # log events


def summary(plan: Plan, skipped: Sequence[Skipped]) -> dict[str, int]:
    counts = {"create": plan.count("create"), "update": plan.count("update"), "delete": plan.count("delete")}
    adopted = len(plan.adopted_names)
    if adopted:
        counts["adopt"] = adopted
    counts["skipped"] = len(skipped)
    return counts


def _ownership_names(change: Change) -> list[str]:
    return sorted({r.name for r in change.ownership})


def change_dict(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"action": change.action, "name": change.name, "type": change.type,
                           "targets": list(change.targets), "ttl": change.ttl, "resource": change.resource}
    if change.action == "adopt":
        out["adopted"] = {"owners": list(change.adopted_from), "old_targets": list(change.old_targets),
                          "ownership_records": _ownership_names(change)}
    return out


def render_json(plan: Plan, skipped: Sequence[Skipped]) -> str:
    data = {
        "changes": [change_dict(c) for c in plan.changes],
        "summary": summary(plan, skipped),
        "skipped": [{"resource": s.resource, "value": s.value, "reason": s.reason} for s in skipped],
    }
    return json.dumps(data, indent=2, sort_keys=False)


def adoption_fields(change: Change) -> dict[str, str]:
    """The log fields of an adopt change (``record_adopted``): whose records, what they held, which TXTs went."""
    if change.action != "adopt":
        return {}
    return {"adopted_from": ",".join(change.adopted_from), "was": ",".join(change.old_targets),
            "ownership_records_deleted": ",".join(r.key for r in change.ownership)}


def change_line(change: Change) -> str:
    targets = ",".join(change.targets) or "-"
    if change.action in ("update", "adopt") and change.old_targets != change.targets:
        targets += f" (was {','.join(change.old_targets)})"
    ttl = "-" if change.ttl is None else str(change.ttl)
    line = f"{SYMBOLS[change.action]} {change.name} {change.type} {targets} ttl={ttl} {change.resource or '-'}"
    if change.action == "adopt":
        line += f" adopted from ExternalDNS owner {','.join(change.adopted_from)}"
        if change.ownership:
            line += f", deleting its ownership TXT {','.join(_ownership_names(change))}"
    return line


def summary_line(plan: Plan, skipped: Sequence[Skipped]) -> str:
    counts = summary(plan, skipped)
    line = f"{counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete"
    line += f", {counts['adopt']} to adopt" if counts.get("adopt") else ""
    return line + (f", {counts['skipped']} skipped" if counts["skipped"] else "")


def render_text(plan: Plan, skipped: Sequence[Skipped]) -> str:
    lines = [change_line(c) for c in plan.changes]
    lines += [f"! {s.resource or '-'}: {s.value}: {s.reason}" for s in skipped]
    if not plan.changes:
        lines.append("No changes: the records are up to date.")
    lines.append(summary_line(plan, skipped))
    return "\n".join(lines)


def render(plan: Plan, skipped: Sequence[Skipped], fmt: str) -> str:
    if fmt == "json":
        return render_json(plan, skipped)
    if fmt == "text":
        return render_text(plan, skipped)
    raise ValueError(f"--output must be text or json, not {fmt!r}")
