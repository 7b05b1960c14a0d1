"""The in-memory store: whole revisions, reloads, subtree reads in etcd order, bad values, zone serials."""

from __future__ import annotations

import gc
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from resolver.store import Fields, Store, _fast_decode
from skydns.changes import KeyChange
from skydns.record import RecordDecodeError, decode


def put(key: str, value: str, rev: int, lease: float | None = None) -> KeyChange:
    return KeyChange(key, value.encode(), rev, lease)


def delete(key: str, rev: int) -> KeyChange:
    return KeyChange(key, None, rev)


def hosts(entries: list) -> list[str]:
    return [e.record.host for e in entries]


def test_subtree_reads_return_etcd_key_order_and_respect_the_slash() -> None:
    keys = ["/skydns/test/a/x", "/skydns/test/a/b/c", "/skydns/test/a/B", "/skydns/test/a1", "/skydns/test/a",
            "/skydns/test/a/-", "/skydns/test/a/\u00e9"]
    changes = [put(k, f'{{"host":"h{i}"}}', i + 1) for i, k in enumerate(keys)]
    random.Random(7).shuffle(changes)
    store = Store()
    store.replace(10, changes)
    under = [e.key for e in store.subtree("/skydns/test/a")]
    assert under == sorted(k for k in keys if k.startswith("/skydns/test/a/"))
    assert under == sorted(under, key=lambda k: k.encode())  # bytewise, as etcd
    assert "/skydns/test/a1" not in under and "/skydns/test/a" not in under
    assert store.get("/skydns/test/a") is not None
    assert store.exists("/skydns/test") and not store.exists("/skydns/tes")
    assert store.subtree("/skydns/nothing") == []


def test_apply_puts_and_deletes_and_tells_listeners_once_per_revision() -> None:
    store = Store()
    store.replace(5, [put("/skydns/t/a", '{"host":"10.0.0.1"}', 3), put("/skydns/t/b", '{"host":"10.0.0.2"}', 4)])
    seen: list[tuple[set[str] | None, list[str]]] = []
    # The listener reads the store: it must see the whole revision applied, never half of it.
    store.add_listener(lambda keys: seen.append((keys, hosts(store.subtree("/skydns/t")))))
    store.apply(6, [put("/skydns/t/a", '{"host":"10.0.0.9"}', 6), delete("/skydns/t/b", 6),
                    put("/skydns/t/c", '{"host":"10.0.0.3"}', 6)])
    assert store.revision == 6
    assert seen == [({"/skydns/t/a", "/skydns/t/b", "/skydns/t/c"}, ["10.0.0.9", "10.0.0.3"])]
    assert store.get("/skydns/t/b") is None
    store.apply(7, [delete("/skydns/t/missing", 7)])  # deleting what is not there changes nothing
    assert len(seen) == 1 and store.revision == 7


def test_a_failing_listener_does_not_break_the_store() -> None:
    store = Store()

    def boom(keys: set[str] | None) -> None:
        raise RuntimeError("listener bug")

    store.add_listener(boom)
    store.apply(2, [put("/skydns/t/a", '{"host":"10.0.0.1"}', 2)])
    assert store.get("/skydns/t/a") is not None and store.revision == 2


def test_replace_swaps_in_a_whole_new_state() -> None:
    store = Store()
    store.replace(5, [put("/skydns/t/a", '{"host":"10.0.0.1"}', 3), put("/skydns/t/b", '{"host":"10.0.0.2"}', 4)])
    notified: list[set[str] | None] = []
    store.add_listener(notified.append)
    store.replace(9, [put("/skydns/t/b", '{"host":"10.0.0.2"}', 4), put("/skydns/t/c", '{"host":"10.0.0.3"}', 8)])
    assert store.keys() == ["/skydns/t/b", "/skydns/t/c"]
    assert store.revision == 9
    assert notified == [None]


def test_keys_outside_the_prefix_are_ignored() -> None:
    store = Store("skydns/")
    store.replace(3, [put("/skydns2/t/a", '{"host":"10.0.0.1"}', 1), put("/other/a", "{}", 2),
                      put("/skydns/t/a", '{"host":"10.0.0.2"}', 3)])
    store.apply(4, [put("/skydnsx/a", "{}", 4)])
    assert store.keys() == ["/skydns/t/a"]


def test_stale_revisions_are_ignored() -> None:
    store = Store()
    store.apply(10, [put("/skydns/t/a", '{"host":"10.0.0.1"}', 10)])
    store.apply(9, [put("/skydns/t/a", '{"host":"10.0.0.9"}', 9)])
    entry = store.get("/skydns/t/a")
    assert entry is not None and entry.record is not None and entry.record.host == "10.0.0.1"


def bad_metric() -> float:
    return REGISTRY.get_sample_value("dnssync_resolver_bad_values_total") or 0.0


def test_bad_values_are_kept_as_existing_keys_without_data_and_counted_once_per_version() -> None:
    before = bad_metric()
    store = Store()
    good = put("/skydns/t/x/good", '{"host":"10.0.0.1"}', 2)
    bad = put("/skydns/t/x/bad", '{"host":"10.0.0.2","ttl":"60"}', 3)
    store.replace(3, [good, bad])
    assert store.bad_values == 1 and store.bad_keys == 1
    assert bad_metric() == before + 1
    entries = store.subtree("/skydns/t/x")
    assert [(e.key, e.record is None) for e in entries] == [("/skydns/t/x/bad", True), ("/skydns/t/x/good", False)]
    # A reload holding the same key version does not decode (nor count, nor log) it again.
    store.replace(4, [good, bad])
    assert store.bad_values == 1 and bad_metric() == before + 1
    # A new version of the key is decoded again; a fixed value stops being bad.
    store.apply(5, [put("/skydns/t/x/bad", "not json", 5)])
    assert store.bad_values == 2 and bad_metric() == before + 2
    store.apply(6, [put("/skydns/t/x/bad", '{"host":"10.0.0.2","ttl":60}', 6)])
    assert store.bad_keys == 0 and store.bad_values == 2


def test_entries_are_classified_once() -> None:
    store = Store()
    store.replace(9, [put("/skydns/t/v4", '{"host":"10.0.0.1"}', 1), put("/skydns/t/v6", '{"host":"2001:db8::1"}', 2),
                      put("/skydns/t/mapped", '{"host":"::ffff:10.0.0.2"}', 3),
                      put("/skydns/t/zeros", '{"host":"010.0.0.1"}', 4),  # not an IP for Go: a name
                      put("/skydns/t/name", '{"host":"www.example.org."}', 5),
                      put("/skydns/t/txt", '{"host":"x.example.org","text":"t"}', 6)])
    entries = [e for e in (store.get(k) for k in list(store.keys())) if e is not None]
    got = {e.key.rsplit("/", 1)[1]: (e.kind.value, e.ip) for e in entries}
    assert got == {"v4": ("A", bytes([10, 0, 0, 1])), "v6": ("AAAA", bytes.fromhex("20010db8" + "0" * 23 + "1")),
                   "mapped": ("A", bytes([10, 0, 0, 2])), "zeros": ("CNAME", b""), "name": ("CNAME", b""),
                   "txt": ("TXT", b"")}
    name = store.get("/skydns/t/name")
    assert name is not None and name.target == (b"www", b"example", b"org")


def test_last_change_tracks_puts_and_deletes_under_a_path() -> None:
    store = Store()
    store.replace(20, [put("/skydns/test/zone/a", "{}", 7), put("/skydns/test/zone/b/c", "{}", 11),
                       put("/skydns/test/elsewhere", "{}", 15)])
    store.track("/skydns/test/zone")
    store.track("/skydns/test/empty")
    assert store.last_change("/skydns/test/zone") == 11  # the newest key under it
    assert store.last_change("/skydns/test/empty") == 0  # nothing there: no change known
    store.apply(21, [put("/skydns/test/elsewhere", "{}", 21)])
    assert store.last_change("/skydns/test/zone") == 11
    store.apply(22, [delete("/skydns/test/zone/a", 22)])
    assert store.last_change("/skydns/test/zone") == 22  # deletes count
    # A reload with the same content keeps the serial; one with different content moves it to the reload.
    same = [put("/skydns/test/zone/b/c", "{}", 11), put("/skydns/test/elsewhere", "{}", 21)]
    store.replace(30, same)
    assert store.last_change("/skydns/test/zone") == 22
    store.replace(40, same[1:])
    assert store.last_change("/skydns/test/zone") == 40
    assert store.last_change("/skydns/test/empty") == 0


def test_first_load_after_tracking_uses_the_newest_key() -> None:
    store = Store()
    store.track("/skydns/test/zone")
    store.replace(50, [put("/skydns/test/zone/a", "{}", 33), put("/skydns/test/other", "{}", 44)])
    assert store.last_change("/skydns/test/zone") == 33


def test_lease_deadline_change_alone_updates_the_entry() -> None:
    store = Store()
    store.apply(2, [put("/skydns/t/a", '{"host":"10.0.0.1"}', 2, lease=100.0)])
    store.replace(3, [put("/skydns/t/a", '{"host":"10.0.0.1"}', 2, lease=200.0)])
    entry = store.get("/skydns/t/a")
    assert entry is not None and entry.lease_deadline == 200.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2), max_leaves=4)
field_names = st.sampled_from(["host", "port", "priority", "weight", "text", "mail", "ttl", "targetstrip", "group",
                               "owner", "resource", "Host", "TTL", "setIdentifier", "other"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, json_values, max_size=6) | json_values, st.sampled_from(["", " ", "\n"]))
def test_the_fast_decoder_agrees_with_the_codec(data: object, pad: str) -> None:
    raw = (pad + json.dumps(data) + pad).encode()
    try:
        expected: object = Fields.of(decode(raw, "k"))
    except RecordDecodeError as exc:
        expected = exc.reason
    try:
        got: object = _fast_decode(raw, "k")
    except RecordDecodeError as exc:
        got = exc.reason
    assert got == expected


def test_store_size_and_bad_records_are_exported() -> None:
    gc.collect()  # the gauges sum every live store: let no other store vanish between the samples
    gc.disable()
    try:
        exported_store_gauges()
    finally:
        gc.enable()


def exported_store_gauges() -> None:
    store = Store("/metrics-test")
    store.replace(3, [KeyChange("/metrics-test/t/a", b'{"host":"10.0.0.1"}', 1),
                      KeyChange("/metrics-test/t/b", b"bad", 2)])
    records = REGISTRY.get_sample_value("dnssync_resolver_records") or 0.0
    bad = REGISTRY.get_sample_value("dnssync_resolver_bad_records") or 0.0
    assert store.bad_keys == 1 and len(store) == 2
    store.apply(4, [KeyChange("/metrics-test/t/b", None, 4), KeyChange("/metrics-test/t/c", b"{}", 4)])
    assert store.bad_keys == 0
    assert REGISTRY.get_sample_value("dnssync_resolver_records") == records
    assert REGISTRY.get_sample_value("dnssync_resolver_bad_records") == bad - 1
    store.apply(5, [KeyChange("/metrics-test/t/a", b"[", 5)])
    assert store.bad_keys == 1
    store.replace(6, [KeyChange("/metrics-test/t/a", b"[", 5)])
    assert store.bad_keys == 1 and len(store) == 1


def test_a_lease_refresh_does_not_move_the_zone_serial() -> None:
    # A kept-alive lease makes the mirror hand the same key (value, mod revision) again with a new deadline, at
    # the store's current revision: the zone did not change, so its serial must not move.
    store = Store()
    store.replace(10, [put("/skydns/test/zone/a", '{"host":"10.0.0.1"}', 7, lease=100.0)])
    store.track("/skydns/test/zone")
    store.apply(12, [put("/skydns/test/other/b", "{}", 12)])
    store.apply(12, [put("/skydns/test/zone/a", '{"host":"10.0.0.1"}', 7, lease=130.0)])
    entry = store.get("/skydns/test/zone/a")
    assert entry is not None and entry.lease_deadline == 130.0
    assert store.last_change("/skydns/test/zone") == 7


def test_the_first_load_anchors_each_zone_at_its_newest_key_and_history_raises_the_serial() -> None:
    store = Store()
    store.track("/skydns/test/zone")
    store.track("/skydns/test/other")
    store.track("/skydns/test/empty")
    notified: list[set[str] | None] = []
    store.add_listener(notified.append)
    store.replace(50, [put("/skydns/test/zone/a", "{}", 33), put("/skydns/test/other/b", "{}", 44)])
    assert store.serial_anchors() == {"/skydns/test/zone": 33, "/skydns/test/other": 44}  # not the empty zone
    assert store.last_change("/skydns/test/zone") == 33
    store.apply_history("/skydns/test/zone", 47)  # a delete at 47 the load could not see
    assert store.last_change("/skydns/test/zone") == 47 and notified[-1] == {"/skydns/test/zone"}
    store.apply_history("/skydns/test/other", None)  # compacted: nothing learnt
    assert store.last_change("/skydns/test/other") == 44
    assert store.serial_anchors() == {}
    store.apply(52, [put("/skydns/test/zone/c", "{}", 52)])
    store.apply_history("/skydns/test/zone", 48)  # late news never lowers the serial
    assert store.last_change("/skydns/test/zone") == 52
    store.replace(60, [put("/skydns/test/zone/a", "{}", 33)])  # a reload: no anchors, never lower
    assert store.serial_anchors() == {} and store.last_change("/skydns/test/zone") == 60


def test_history_is_capped_at_the_load_revision() -> None:
    store = Store()
    store.track("/skydns/test/zone")
    store.replace(50, [put("/skydns/test/zone/a", "{}", 33)])
    store.apply_history("/skydns/test/zone", 70)  # beyond the load: the watch applies that itself
    assert store.last_change("/skydns/test/zone") == 50


def test_tracked_children_are_the_zone_keys_direct_children_with_targetstrip() -> None:
    store = Store()
    store.track("/skydns/test/zone")
    store.replace(5, [put("/skydns/test/zone/1a2b3c4d", '{"host":"10.0.0.1","targetstrip":1}', 1),
                      put("/skydns/test/zone/plain", '{"host":"10.0.0.2"}', 2),
                      put("/skydns/test/zone/deep/5e6f7a8b", '{"host":"10.0.0.3","targetstrip":1}', 3),
                      put("/skydns/test/zone2/9a9a9a9a", '{"host":"10.0.0.4","targetstrip":1}', 4)])
    keys = lambda: [e.key for e in store.tracked_children("/skydns/test/zone")]  # noqa: E731
    assert keys() == ["/skydns/test/zone/1a2b3c4d"]
    store.apply(6, [put("/skydns/test/zone/plain", '{"host":"10.0.0.2","targetstrip":1}', 6),
                    delete("/skydns/test/zone/1a2b3c4d", 6)])
    assert keys() == ["/skydns/test/zone/plain"]
    store.apply(7, [put("/skydns/test/zone/plain", "not json", 7)])
    assert keys() == []
