"""Kubernetes label-selector syntax, for ``--label-filter`` (on labels) and ``--annotation-filter`` (on annotations).

Grammar (as ``kubectl -l`` and ExternalDNS accept it; white space is ignored between tokens)::

    selector    := [requirement ("," requirement)*]      # comma = AND; the empty selector matches everything
    requirement := KEY                                  # the key exists
                 | "!" KEY                              # the key does not exist
                 | KEY ("=" | "==" | "!=") VALUE        # equal / not equal (``!=`` also matches a missing key)
                 | KEY ("in" | "notin") "(" VALUE ("," VALUE)* ")"   # ``notin`` also matches a missing key

Keys must be qualified names (``[prefix/]name``: the optional prefix a DNS subdomain, the name at most 63
characters of alphanumerics, ``-``, ``_`` and ``.``, starting and ending alphanumeric); values must be valid label
values (the same character rules, possibly empty). ``>``/``<`` (numeric comparisons) are refused, as they are by
the API's ``LabelSelector`` that ExternalDNS parses filters into.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SPECIAL = "!=,()<>"


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "exists", "!exists", "=", "!=", "in", "notin"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin": a missing key matches
        return not present or labels[self.key] not in self.values

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!exists":
            return "!" + self.key
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{next(iter(self.values))}"
        return f"{self.key} {self.op} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class Selector:
    """A parsed selector: every requirement must hold. ``Selector(())`` matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "=!" and i + 1 < n and text[i + 1] == "=":
            tokens.append(ch + "=")
            i += 2
        elif ch in _SPECIAL:
            tokens.append(ch)
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


def _check_key(text: str, key: str) -> str:
    prefix, slash, name = key.rpartition("/")
    ok = bool(_NAME.match(name)) and (not slash or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.match(prefix))))
    if not ok:
        raise ValueError(
            f"invalid selector {text!r}: {key!r} is not a valid key (expected [prefix/]name: alphanumerics, "
            "'-', '_' and '.', at most 63 characters, starting and ending alphanumeric)"
        )
    return key


def _check_value(text: str, value: str) -> str:
    if not _VALUE.match(value):
        raise ValueError(
            f"invalid selector {text!r}: {value!r} is not a valid value (alphanumerics, '-', '_' and '.', "
            "at most 63 characters, starting and ending alphanumeric)"
        )
    return value


def parse_selector(text: str) -> Selector:
    """Parse ``text``; raises :class:`ValueError` naming the selector and what is wrong with it."""
    tokens = _tokenize(text)
    pos = 0
    requirements: list[Requirement] = []

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def fail(what: str) -> ValueError:
        return ValueError(f"invalid selector {text!r}: {what}")

    def is_word(tok: str | None) -> bool:
        return tok is not None and tok not in _SPECIAL and tok not in ("==", "!=")

    if not tokens:
        return Selector(())
    while True:
        tok = peek()
        if tok == "!":
            pos += 1
            key = peek()
            if not is_word(key):
                raise fail("'!' must be followed by a key")
            assert key is not None
            pos += 1
            requirements.append(Requirement(_check_key(text, key), "!exists"))
        elif is_word(tok):
            assert tok is not None
            key = _check_key(text, tok)
            pos += 1
            op = peek()
            if op is None or op == ",":
                requirements.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                pos += 1
                value = peek()
                if value is None or value == ",":
                    value = ""
                elif is_word(value):
                    pos += 1
                else:
                    raise fail(f"expected a value after {key}{op}, found {value!r}")
                checked = frozenset({_check_value(text, value)})
                requirements.append(Requirement(key, "!=" if op == "!=" else "=", checked))
            elif op in ("in", "notin"):
                pos += 1
                if peek() != "(":
                    raise fail(f"'{op}' must be followed by a parenthesised list of values")
                pos += 1
                values: list[str] = []
                expect_value = True
                while True:
                    t = peek()
                    if t is None:
                        raise fail("missing ')'")
                    if t == ")":
                        if expect_value and values:
                            values.append("")  # "a in (x,)" holds the empty value, as Kubernetes reads it
                        pos += 1
                        break
                    if t == ",":
                        if expect_value:
                            values.append("")
                        expect_value = True
                        pos += 1
                    elif is_word(t) and expect_value:
                        values.append(_check_value(text, t))
                        expect_value = False
                        pos += 1
                    else:
                        raise fail(f"unexpected {t!r} in the value list of {key!r}")
                if not values:
                    raise fail(f"the value list of '{key} {op}' is empty")
                requirements.append(Requirement(key, op, frozenset(values)))
            elif op in ("<", ">"):
                raise fail(f"the operator {op!r} is not supported (use =, ==, !=, in, notin, KEY or !KEY)")
            else:
                raise fail(f"unexpected {op!r} after the key {key!r}")
        elif tok is None:
            raise fail("it ends with ','")
        else:
            raise fail(f"expected a key, found {tok!r}")
        tok = peek()
        if tok is None:
            break
        if tok != ",":
            raise fail(f"expected ',' between requirements, found {tok!r}")
        pos += 1
    return Selector(tuple(requirements))
