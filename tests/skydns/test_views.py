"""The view key layout shared by the syncer and the resolver."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from skydns.names import InvalidKeyError, key_to_name
from skydns.views import InvalidViewNameError, check_view_name, view_key, view_of_key, view_prefix


@dataclass(frozen=True)
class NameCase:
    name: str
    reason: str | None  # None: valid


NAME_CASES = [
    NameCase("inside", None),
    NameCase("a", None),
    NameCase("cluster-1", None),
    NameCase("0", None),
    NameCase("x" * 63, None),
    NameCase("", "empty"),
    NameCase("x" * 64, "over 63"),
    NameCase("Inside", "upper-case"),
    NameCase("-inside", "not first or last"),
    NameCase("inside-", "not first or last"),
    NameCase("in_side", "only a-z"),
    NameCase("in/side", "only a-z"),
    NameCase("in.side", "only a-z"),
    NameCase("in side", "only a-z"),
    NameCase("bücher", "only a-z"),
]


@pytest.mark.parametrize("case", NAME_CASES, ids=lambda c: repr(c.name))
def test_view_names(case: NameCase) -> None:
    if case.reason is None:
        assert check_view_name(case.name) == case.name
        return
    with pytest.raises(InvalidViewNameError, match=case.reason):
        check_view_name(case.name)


def test_a_views_records_use_the_skydns_layout_under_its_own_prefix() -> None:
    assert view_prefix("inside") == "/dnssync/views/inside"
    key = view_key("inside", "Shop.Example.ORG.")
    assert key == "/dnssync/views/inside/org/example/shop"
    assert key_to_name(key + "/1a2b3c4d", view_prefix("inside"), targetstrip=1) == "shop.example.org."
    assert not key.startswith("/skydns/"), "a view's keys are never under the default SkyDNS prefix"


def test_view_prefix_refuses_a_bad_name() -> None:
    with pytest.raises(InvalidViewNameError):
        view_prefix("In/side")


@dataclass(frozen=True)
class KeyCase:
    key: str
    view: str | None  # None: not a view key


KEY_CASES = [
    KeyCase("/dnssync/views/inside/org/example/shop", "inside"),
    KeyCase("/dnssync/views/inside/org", "inside"),
    KeyCase("/dnssync/views/inside", None),
    KeyCase("/dnssync/views/inside/", None),
    KeyCase("/dnssync/views/Inside/org", None),
    KeyCase("/skydns/org/example", None),
    KeyCase("/dnssync/viewsx/inside/org", None),
]


@pytest.mark.parametrize("case", KEY_CASES, ids=lambda c: c.key)
def test_view_of_key(case: KeyCase) -> None:
    if case.view is not None:
        assert view_of_key(case.key) == case.view
        return
    with pytest.raises(InvalidKeyError):
        view_of_key(case.key)
