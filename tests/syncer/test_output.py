"""The plan as text and JSON: one line per change, a summary, skipped records with object, value and reason."""

from __future__ import annotations

import json

from syncer.model import Skipped
from syncer.output import render
from syncer.plan import calculate
from tests.syncer.helpers import OWNER, ep, ours


def sample():
    desired = [ep("new.example.org", "A", "10.0.0.2", "10.0.0.1", ttl=60),
               ep("_web._tcp.new.example.org", "SRV", "0 50 30080 new.example.org"),
               ep("moved.example.org", "A", "10.0.0.5", resource="ingress/default/moved")]
    current = [ours("moved.example.org", "A", "10.0.0.4", resource="ingress/default/moved"),
               ours("gone.example.org", "CNAME", "lb.example.net", resource="service/default/gone")]
    plan = calculate(desired, current, OWNER, "sync")
    skipped = [Skipped("service/default/bad", "ttl=abc", "not a duration; the default TTL is used")]
    return plan, skipped


def test_text_plan_lines_and_summary() -> None:
    plan, skipped = sample()
    assert render(plan, skipped, "text").splitlines() == [
        "- gone.example.org CNAME lb.example.net ttl=- service/default/gone",
        "~ moved.example.org A 10.0.0.5 (was 10.0.0.4) ttl=- ingress/default/moved",
        "+ new.example.org A 10.0.0.1,10.0.0.2 ttl=60 service/default/web",
        "+ _web._tcp.new.example.org SRV 0 50 30080 new.example.org ttl=- service/default/web",
        "! service/default/bad: ttl=abc: not a duration; the default TTL is used",
        "2 to create, 1 to update, 1 to delete, 1 skipped",
    ]


def test_json_plan_shape() -> None:
    plan, skipped = sample()
    data = json.loads(render(plan, skipped, "json"))
    assert set(data) == {"changes", "summary", "skipped"}
    assert data["summary"] == {"create": 2, "update": 1, "delete": 1, "skipped": 1}
    assert all(set(c) == {"action", "name", "type", "targets", "ttl", "resource"} for c in data["changes"])
    assert data["changes"][2] == {"action": "create", "name": "new.example.org", "type": "A",
                                  "targets": ["10.0.0.1", "10.0.0.2"], "ttl": 60, "resource": "service/default/web"}
    assert data["changes"][3]["targets"] == ["0 50 30080 new.example.org"]
    assert data["changes"][0]["ttl"] is None
    assert data["skipped"] == [{"resource": "service/default/bad", "value": "ttl=abc",
                                "reason": "not a duration; the default TTL is used"}]


def test_no_changes_says_so() -> None:
    plan = calculate([ep("www.example.org", "A", "10.0.0.1")], [ours("www.example.org", "A", "10.0.0.1")], OWNER,
                     "sync")
    assert render(plan, [], "text").splitlines() == ["No changes: the records are up to date.",
                                                     "0 to create, 0 to update, 0 to delete"]
