"""ExternalDNS annotation reading: prefixes, lists, TTL values, controller, enumerations."""

from __future__ import annotations

import pytest

from syncer.annotations import Annotations, parse_go_duration, parse_ttl, split_list

A = "external-dns.alpha.kubernetes.io/"
N = "external-dns.kubernetes.io/"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a.example.org", ["a.example.org"]),
        ("a.example.org., b.example.org", ["a.example.org", "b.example.org"]),
        (" a .example.org ,\tb.example.org\n", ["a.example.org", "b.example.org"]),
        ("a.example.org,,", ["a.example.org"]),
        (",", []),
        ("", []),
        ("x.org..", ["x.org."]),  # one trailing dot is trimmed; the name is then invalid and skipped by the source
    ],
)
def test_split_list(raw: str, expected: list[str]) -> None:
    assert split_list(raw) == expected


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("60", 60),
        ("1", 1),
        ("2147483647", 2147483647),
        ("1m", 60),
        ("10s", 10),
        ("1h30m", 5400),
        ("1.9s", 1),  # fractions truncated
        ("1.5m", 90),
        (".5m", 30),
        ("1h0m1s", 3601),
        ("+5s", 5),
        ("3000ms", 3),
        ("1500ms", 1),
        (" 60 ", 60),
    ],
)
def test_valid_ttl(raw: str, seconds: int) -> None:
    assert parse_ttl(raw) == (seconds, None)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("0", "0 seconds is outside 1..2147483647"),
        ("-1", "-1 seconds is outside"),
        ("2147483648", "2147483648 seconds is outside"),
        ("999ms", "0 seconds is outside"),
        ("-1m", "-60 seconds is outside"),
        ("1.5", "not a number of seconds or a duration"),
        ("1h30", "not a number of seconds or a duration"),
        ("ten", "not a number of seconds or a duration"),
        ("1d", "not a number of seconds or a duration"),
        ("", "not a number of seconds or a duration"),
    ],
)
def test_invalid_ttl_falls_back_with_a_warning(raw: str, why: str) -> None:
    ttl, warning = parse_ttl(raw)
    assert ttl is None
    assert warning is not None
    assert warning.startswith(f"invalid ttl {raw!r}")
    assert why in warning
    assert warning.endswith("; using the default")


def test_go_duration_units_and_zero() -> None:
    assert parse_go_duration("0") == 0
    assert parse_go_duration("1ns") == 1
    assert parse_go_duration("1us") == parse_go_duration("1µs") == 1000
    assert parse_go_duration("2h45m") == (2 * 3600 + 45 * 60) * 10**9
    for bad in ("", "s", ".s", "1", "1x", "--1s"):
        with pytest.raises(ValueError):
            parse_go_duration(bad)


def test_newer_prefix_wins_whatever_the_order() -> None:
    raw = {N + "hostname": "new.example.org", A + "hostname": "old.example.org", A + "ttl": "5"}
    for prefixes in ((A, N), (N, A)):
        ann = Annotations.read(raw, prefixes)
        assert ann.hostnames() == ["new.example.org"]
        assert ann.ttl() == (5, None)  # a key under one prefix only is read from there


def test_only_the_configured_prefix_is_read() -> None:
    raw = {A + "hostname": "old.example.org", N + "target": "1.2.3.4"}
    assert Annotations.read(raw, (N,)).hostnames() == []
    assert Annotations.read(raw, (N,)).targets() == ["1.2.3.4"]
    assert Annotations.read(raw, (A,)).targets() == []
    assert Annotations.read(raw, ("custom.example/",)).values == {}
    assert Annotations.read({"custom.example/hostname": "c.example.org"}, ("custom.example/",)).hostnames() == [
        "c.example.org"
    ]


@pytest.mark.parametrize(
    ("value", "ours"),
    [(None, True), ("dns-controller", True), ("other", False), ("", False), ("DNS-controller", False)],
)
def test_controller(value: str | None, ours: bool) -> None:
    raw = {} if value is None else {A + "controller": value}
    assert Annotations.read(raw).is_ours() is ours


def test_enumerations() -> None:
    ann = Annotations.read({A + "access": "private", A + "endpoints-type": "HostIP",
                            A + "ingress-hostname-source": "Annotation-Only", A + "coredns-group": "g"})
    assert ann.access() == ("private", None)
    assert ann.endpoints_type() == ("HostIP", None)
    assert ann.ingress_hostname_source() == ("annotation-only", None)
    assert ann.group() == "g"
    bad = Annotations.read({A + "access": "open", A + "endpoints-type": "hostip",
                            A + "ingress-hostname-source": "both"})
    for value, warning in (bad.access(), bad.endpoints_type(), bad.ingress_hostname_source()):
        assert value is None
        assert warning is not None and "unknown" in warning
    empty = Annotations.read(None)
    assert empty.access() == (None, None)
    assert empty.ttl() == (None, None)
    assert empty.group() == ""
