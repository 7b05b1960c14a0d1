"""DNS name <-> etcd key, the SkyDNS way.

A name's labels are reversed and joined with ``/`` under a prefix::

    foo.bar.example.org.  <->  /skydns/org/example/bar/foo

Rules this module implements (shared by the syncer and the resolver):

* The prefix is normalised: ``/skydns``, ``/skydns/`` and ``skydns`` all mean ``/skydns``. Multi-element
  prefixes (``/skydns/ka2``) are supported on both directions (CoreDNS assumes one element when it turns a key
  back into a name; we do not).
* Names are lower-cased; internationalised labels are turned into their A-label (punycode, UTS #46) form, so
  ``bücher.example`` is stored as ``/skydns/example/xn--bcher-kva``. A trailing dot is optional.
* A name is invalid when it has an empty label, a label longer than 63 bytes, a total length over 253 bytes
  (without the trailing dot), or a label with ``/``, white space or a control character (they cannot be a key
  element). :class:`InvalidNameError` says which name and why.
* Turning a key back into a name honours ``targetstrip``: that many leading (leftmost) labels are dropped,
  unless that would drop every label, in which case the name is kept whole (as CoreDNS does).
"""

from __future__ import annotations

import idna

DEFAULT_PREFIX = "/skydns"
MAX_LABEL = 63
MAX_NAME = 253


class InvalidNameError(ValueError):
    """A DNS name that cannot be stored as a SkyDNS key."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid DNS name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class InvalidKeyError(ValueError):
    """An etcd key that is not under the prefix or has an empty element."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid SkyDNS key {key!r}: {reason}")
        self.key = key
        self.reason = reason


def normalize_prefix(prefix: str) -> str:
    """``skydns``, ``/skydns`` and ``/skydns/`` -> ``/skydns``; the empty prefix is refused."""
    parts = [p for p in prefix.strip().split("/") if p]
    if not parts:
        raise ValueError(f"invalid etcd prefix {prefix!r}: it must name at least one path element")
    return "/" + "/".join(parts)


def _label_to_ascii(name: str, label: str) -> str:
    if not label:
        raise InvalidNameError(name, "empty label")
    if label.isascii():
        out = label.lower()
    else:
        try:
            out = idna.encode(label, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidNameError(name, f"label {label!r} is not a valid internationalised label ({exc})") from None
    if len(out) > MAX_LABEL:
        raise InvalidNameError(name, f"label {out[:20]!r}... is {len(out)} bytes, over {MAX_LABEL}")
    for ch in out:
        if ch == "/" or ch.isspace() or ord(ch) < 0x21 or ord(ch) == 0x7F:
            raise InvalidNameError(name, f"label {out!r} holds the character {ch!r}")
    return out


def name_labels(name: str) -> list[str]:
    """The normalised labels of ``name``, leftmost first. The root name has no labels."""
    stripped = name[:-1] if name.endswith(".") else name
    if stripped == "":
        if name == ".":
            return []
        raise InvalidNameError(name, "empty name")
    labels = [_label_to_ascii(name, label) for label in stripped.split(".")]
    total = sum(len(label) for label in labels) + len(labels) - 1
    if total > MAX_NAME:
        raise InvalidNameError(name, f"name is {total} bytes, over {MAX_NAME}")
    return labels


def normalize_name(name: str) -> str:
    """Lower-cased, A-label, fully qualified: ``Bücher.Example`` -> ``xn--bcher-kva.example.``."""
    labels = name_labels(name)
    return ".".join(labels) + "." if labels else "."


def name_to_key(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``foo.bar.example.org.`` -> ``/skydns/org/example/bar/foo``."""
    labels = name_labels(name)
    return "/".join([normalize_prefix(prefix), *reversed(labels)])


def key_labels(key: str, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The key's elements below the prefix, in key order (TLD first)."""
    base = normalize_prefix(prefix) + "/"
    if not key.startswith(base):
        raise InvalidKeyError(key, f"not under the prefix {base!r}")
    parts = key[len(base):].split("/")
    if any(p == "" for p in parts):
        raise InvalidKeyError(key, "empty path element")
    return parts


def key_to_name(key: str, prefix: str = DEFAULT_PREFIX, targetstrip: int = 0) -> str:
    """``/skydns/org/example/www/1a2b3c4d`` with ``targetstrip=1`` -> ``www.example.org.``."""
    labels = list(reversed(key_labels(key, prefix)))
    if 0 < targetstrip < len(labels):
        labels = labels[targetstrip:]
    return ".".join(labels) + "."
