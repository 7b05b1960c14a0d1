"""The syncer's copy of the records under its prefix, as the etcd mirror and its own writes keep it."""

from __future__ import annotations

from skydns.changes import KeyChange
from skydns.record import Record, encode
from syncer.current import CurrentRecords

KEY = "/skydns/org/example/web/1a2b3c4d"
OURS = encode(Record(host="10.0.0.1", targetstrip=1, owner="me"))


def test_changes_name_the_names_they_touch_and_deletes_forget_the_record() -> None:
    seen: list[tuple[set[str] | None, int]] = []
    records = CurrentRecords("/skydns", on_change=lambda names, rev: seen.append((names, rev)))
    records.replace(5, [])
    records.apply(6, [KeyChange(KEY, OURS, 6)])
    assert [r.target for r in records.at(["web.example.org"])] == ["10.0.0.1"]
    assert records.owned_at("web.example.org", "me") and not records.owned_at("web.example.org", "other")
    records.apply(7, [KeyChange(KEY, None, 7)])
    assert records.at(["web.example.org"]) == []
    assert seen == [(None, 5), ({"web.example.org"}, 6), ({"web.example.org"}, 7)]


def test_our_own_write_is_applied_at_once_and_its_replay_by_the_watch_is_a_no_op() -> None:
    seen: list[tuple[set[str] | None, int]] = []
    records = CurrentRecords("/skydns", on_change=lambda names, rev: seen.append((names, rev)))
    records.write_through(9, [(KEY.encode(), OURS)])
    [record] = records.at(["web.example.org"])
    assert (record.mod_revision, record.target) == (9, "10.0.0.1")  # the next plan compares the right revision
    records.apply(9, [KeyChange(KEY, OURS, 9)])  # the watch brings it again
    assert seen == []
    records.apply(10, [KeyChange(KEY, encode(Record(host="10.6.6.6", targetstrip=1, owner="me")), 10)])
    assert seen == [({"web.example.org"}, 10)] and records.at(["web.example.org"])[0].target == "10.6.6.6"
    records.write_through(11, [(KEY.encode(), None)])
    assert records.at(["web.example.org"]) == []


def test_a_value_that_does_not_decode_is_kept_aside_and_never_planned_on() -> None:
    records = CurrentRecords("/skydns")
    records.apply(3, [KeyChange(KEY, b"not json", 3)])
    assert records.at(["web.example.org"]) == [] and KEY in records.malformed
    records.apply(4, [KeyChange(KEY, OURS, 4)])
    assert KEY not in records.malformed
