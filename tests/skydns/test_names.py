"""The name <-> key codec: table cases and hypothesis round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skydns.names import (
    InvalidKeyError,
    InvalidNameError,
    key_to_name,
    name_to_key,
    normalize_name,
    normalize_prefix,
)


@pytest.mark.parametrize(
    ("name", "prefix", "key"),
    [
        ("foo.bar.example.org.", "/skydns", "/skydns/org/example/bar/foo"),
        ("foo.bar.example.org", "/skydns/", "/skydns/org/example/bar/foo"),
        ("Service.Staging.SkyDNS.local.", "skydns", "/skydns/local/skydns/staging/service"),
        ("1.0.0.10.in-addr.arpa.", "/skydns", "/skydns/arpa/in-addr/10/0/0/1"),
        ("_http._tcp.web.example.org", "/skydns", "/skydns/org/example/web/_tcp/_http"),
        ("*.example.org", "/skydns", "/skydns/org/example/*"),
        ("bücher.example", "/skydns", "/skydns/example/xn--bcher-kva"),
        ("www.example.org", "/skydns/ka2", "/skydns/ka2/org/example/www"),
    ],
)
def test_name_to_key(name: str, prefix: str, key: str) -> None:
    assert name_to_key(name, prefix) == key


@pytest.mark.parametrize("prefix", ["/skydns", "/skydns/", "skydns", " skydns/ "])
def test_prefix_spellings_mean_the_same(prefix: str) -> None:
    assert normalize_prefix(prefix) == "/skydns"


def test_empty_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix"):
        normalize_prefix("/")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("foo..example.org", "empty label"),
        ("", "empty name"),
        ("a" * 64 + ".example.org", "over 63"),
        (".".join(["abcdefghi"] * 26), "over 253"),
        ("a/b.example.org", "character"),
        ("a b.example.org", "character"),
    ],
)
def test_invalid_names_say_which_and_why(name: str, why: str) -> None:
    with pytest.raises(InvalidNameError) as err:
        name_to_key(name)
    assert err.value.name == name
    assert why in str(err.value)


def test_a_63_byte_label_and_a_253_byte_name_are_valid() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    assert key_to_name(name_to_key(name)) == name + "."


@pytest.mark.parametrize(
    ("key", "strip", "name"),
    [
        ("/skydns/org/example/www/048b0377", 1, "www.example.org."),
        ("/skydns/org/example/www/048b0377", 0, "048b0377.www.example.org."),
        ("/skydns/org/example/a", 5, "a.example.org."),  # stripping every label keeps the name whole
        ("/skydns/test/skydns/dns/ns/ns1", 1, "ns.dns.skydns.test."),
    ],
)
def test_key_to_name_honours_targetstrip(key: str, strip: int, name: str) -> None:
    assert key_to_name(key, "/skydns", strip) == name


@pytest.mark.parametrize("key", ["/other/org/example", "/skydns", "/skydns/org//x", "/skydnsx/org"])
def test_keys_outside_the_prefix_are_refused(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        key_to_name(key)


label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=63)
names = st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda n: len(n) <= 253)
prefixes = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8),
                    min_size=1, max_size=3).map("/".join)


@given(names, prefixes)
def test_name_key_round_trip(name: str, prefix: str) -> None:
    assert key_to_name(name_to_key(name, prefix), prefix) == name + "."


@given(names)
def test_names_are_case_insensitive(name: str) -> None:
    assert name_to_key(name.upper()) == name_to_key(name)


@given(st.text(max_size=80))
def test_any_text_either_normalises_or_raises_the_typed_error(text: str) -> None:
    try:
        normal = normalize_name(text)
    except InvalidNameError as err:
        assert err.name == text
    else:
        assert normal == normal.lower()
        assert normal.endswith(".")
        assert normalize_name(normal) == normal
