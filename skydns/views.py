"""Split-horizon views: where a view's records live in etcd (shared by the syncer and the resolver).

A view is a second set of SkyDNS records that the resolver answers to clients from chosen networks (e.g. the
cluster's, which should get a Service's ClusterIP rather than its load-balancer address). Its records use the
SkyDNS layout unchanged, under a prefix of their own::

    /dnssync/views/<view>/<reversed name>[/<leaf>]     e.g.  /dnssync/views/inside/org/example/shop/1a2b3c4d

so every rule of the main prefix (leaf keys, ``targetstrip``, the JSON value, ownership) holds inside a view, and
a view's keys are never under any ``--prefix`` a SkyDNS reader uses (``/skydns`` by default).

Rules:

* A view name is one DNS-label-like word: 1 to 63 characters of ``a-z``, ``0-9`` and ``-``, not starting or
  ending with ``-``. Upper case is refused rather than folded, so that the name on the command line is
  byte-for-byte the key element in etcd on both sides.
* :func:`view_prefix` is the view's etcd prefix, without a trailing ``/`` (the form
  :func:`skydns.names.normalize_prefix` gives), ready for :func:`skydns.names.name_to_key`.
"""

from __future__ import annotations

import re

from skydns.names import InvalidKeyError, name_to_key

VIEWS_ROOT = "/dnssync/views"
MAX_VIEW_NAME = 63

_VIEW_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


class InvalidViewNameError(ValueError):
    """A view name that cannot be an etcd key element of the view layout."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid view name {name!r}: {reason}")
        self.name = name
        self.reason = reason


def check_view_name(name: str) -> str:
    """``name`` itself when it is a valid view name, else :class:`InvalidViewNameError` saying why."""
    if not name:
        raise InvalidViewNameError(name, "empty")
    if len(name) > MAX_VIEW_NAME:
        raise InvalidViewNameError(name, f"{len(name)} characters, over {MAX_VIEW_NAME}")
    if name != name.lower():
        raise InvalidViewNameError(name, "upper-case letters (view names are lower-case)")
    if not _VIEW_NAME.fullmatch(name):
        raise InvalidViewNameError(name, "only a-z, 0-9 and '-' (not first or last) are allowed")
    return name


def view_prefix(view: str) -> str:
    """``inside`` -> ``/dnssync/views/inside``: the etcd prefix of the view's records."""
    return f"{VIEWS_ROOT}/{check_view_name(view)}"


def view_key(view: str, name: str) -> str:
    """``("inside", "shop.example.org.")`` -> ``/dnssync/views/inside/org/example/shop``."""
    return name_to_key(name, view_prefix(view))


def view_of_key(key: str) -> str:
    """The view a key belongs to: ``/dnssync/views/inside/org/example`` -> ``inside``.

    Raises :class:`skydns.names.InvalidKeyError` for a key outside the layout (not under ``/dnssync/views/``,
    an invalid view name, or no name below the view).
    """
    base = VIEWS_ROOT + "/"
    if not key.startswith(base):
        raise InvalidKeyError(key, f"not under the views root {base!r}")
    view, sep, rest = key[len(base):].partition("/")
    try:
        check_view_name(view)
    except InvalidViewNameError as exc:
        raise InvalidKeyError(key, exc.reason) from None
    if not sep or not rest:
        raise InvalidKeyError(key, "no name below the view")
    return view
