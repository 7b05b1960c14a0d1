"""What a valid host name is: the one rule every record name and name target passes through. Pure, no I/O.

:func:`normalize_hostname` turns a raw name from any source (a ``hostname`` annotation, an Ingress host, a route
hostname, a ``DNSEndpoint`` ``dnsName``, a CNAME/MX/SRV/NS target) into the one spelling the syncer stores, or
raises :class:`skydns.names.InvalidNameError` saying why it is not a host name. The sources call it on their
common path (:meth:`syncer.sources.records.ObjectRecords.name`), which turns the error into a ``Skipped`` entry
naming the object, the value and the reason; nothing invalid ever reaches etcd.

A name is valid when, after an optional trailing dot is dropped and it is turned into lower-case A-labels
(:func:`skydns.names.normalize_name`: UTS #46, so ``Bücher.example`` is ``xn--bcher-kva.example``):

* it is not empty and not the root (``.``);
* no label is empty (``a..b``), longer than 63 bytes, nor the whole name longer than 253 bytes;
* every label holds only letters, digits, ``-`` and ``_`` (``_`` for service labels such as ``_sip._tcp`` or
  ``_acme-challenge``) and neither starts nor ends with ``-`` (RFC 952/1123: ``-bad-.example.org`` is not a host
  name);
* ``*`` is a whole label, the leftmost one, only where wildcards are allowed (record names, not targets), and
  never the whole name (``*.example.org`` is a wildcard; ``a.*.example.org``, ``*a.example.org`` and ``*`` are
  not).

The trailing dot is dropped: ``"Www.Example.ORG."`` -> ``"www.example.org"``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from skydns.names import MAX_NAME, InvalidNameError, normalize_name

__all__ = ["InvalidNameError", "label_problem", "normalize_hostname"]

_LABEL_CHARS = re.compile(r"^[a-z0-9_-]+$")
# Plain lower-case names (the common case) need no IDNA work: checked in one regular expression.
_PLAIN_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_PLAIN_NAME = re.compile(rf"^(?:\*\.)?(?:{_PLAIN_LABEL}\.)*{_PLAIN_LABEL}$")


def label_problem(label: str) -> str | None:
    """Why one (lower-case, A-label) label is not a host name label; ``None`` when it is one."""
    if not _LABEL_CHARS.match(label):
        return f"label {label!r} may only hold letters, digits, '-' and '_'"
    if label.startswith("-") or label.endswith("-"):
        return f"label {label!r} starts or ends with '-'"
    return None


@lru_cache(maxsize=65536)
def normalize_hostname(raw: str, allow_wildcard: bool = True) -> str:
    """The stored spelling of a host name (see the module docstring); :class:`InvalidNameError` with the reason."""
    plain = raw[:-1] if raw.endswith(".") else raw
    if len(plain) <= MAX_NAME and _PLAIN_NAME.match(plain) and (allow_wildcard or not plain.startswith("*")):
        return plain
    if plain == "":
        raise InvalidNameError(raw, "the root name cannot hold records" if raw == "." else "empty name")
    name = normalize_name(raw)[:-1]  # empty labels, lengths, IDNA
    labels = name.split(".")
    for i, label in enumerate(labels):
        if label == "*":
            if not allow_wildcard:
                raise InvalidNameError(raw, "a wildcard '*' is not allowed here")
            if i != 0:
                raise InvalidNameError(raw, "'*' is only allowed as the leftmost label")
            if len(labels) == 1:
                raise InvalidNameError(raw, "'*' alone is not a host name")
            continue
        problem = label_problem(label)
        if problem is not None:
            raise InvalidNameError(raw, problem)
    return name
