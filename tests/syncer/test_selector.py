"""Kubernetes label-selector syntax for --label-filter / --annotation-filter."""

from __future__ import annotations

import pytest

from syncer.selector import parse_selector

LABELS = {"app": "web", "tier": "front", "env": "prod", "kubernetes.io/ingress.class": "nginx", "empty": ""}

# (selector, matches LABELS?)
CASES = [
    ("", True),
    ("   ", True),
    ("app=web", True),
    ("app==web", True),
    ("app = web", True),
    ("app=api", False),
    ("app!=api", True),
    ("app!=web", False),
    ("missing!=x", True),  # != also matches a missing key
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("! app", False),
    ("app in (web,api)", True),
    ("app in ( api , web )", True),
    ("app in (api)", False),
    ("missing in (x)", False),
    ("app notin (api)", True),
    ("app notin (web,api)", False),
    ("missing notin (x)", True),
    ("app=web,tier=front", True),
    ("app=web, tier=back", False),
    ("app=web,!missing,env in (prod,dev)", True),
    ("kubernetes.io/ingress.class=nginx", True),
    ("kubernetes.io/ingress.class in (traefik)", False),
    ("empty=", True),
    ("empty=,app=web", True),
    ("app=", False),
    ("empty in (a,)", True),  # a trailing comma adds the empty value
]


@pytest.mark.parametrize(("text", "matches"), CASES, ids=[c[0] or "<empty>" for c in CASES])
def test_matches(text: str, matches: bool) -> None:
    assert parse_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app in web", "'in' must be followed by a parenthesised list"),
        ("app in (web", "missing ')'"),
        ("app in ()", "value list of 'app in' is empty"),
        ("app=web,", "it ends with ','"),
        (",app", "expected a key, found ','"),
        ("app=web tier=front", "expected ',' between requirements"),
        ("app > 5", "the operator '>' is not supported"),
        ("!", "'!' must be followed by a key"),
        ("-app=web", "'-app' is not a valid key"),
        ("app=-web", "'-web' is not a valid value"),
        ("Bad_Prefix/app=web", "not a valid key"),
        ("app=" + "v" * 64, "not a valid value"),
        ("app=(x)", "expected a value after app="),
        ("app in (a b)", "unexpected 'b'"),
    ],
)
def test_bad_syntax_is_a_clear_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_selector(text)
    assert f"invalid selector {text!r}" in str(info.value)
    assert message in str(info.value)


def test_selector_prints_back() -> None:
    sel = parse_selector("app==web, !old ,tier notin (b,a),x")
    assert str(sel) == "app=web,!old,tier notin (a,b),x"
    assert parse_selector(str(sel)) == sel
    assert parse_selector("").empty
