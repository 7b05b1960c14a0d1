"""How both processes read settings words from flags and the environment. Pure, no I/O.

* booleans: :data:`TRUE_WORDS` (``1``, ``true``, ``yes``, ``on``) and :data:`FALSE_WORDS` (``0``, ``false``,
  ``no``, ``off`` and the empty string), case and surrounding white space ignored; anything else is an error,
  never silently false;
* ``host:port`` or ``[v6]:port`` listen addresses (:func:`parse_hostport`);
* networks: repeatable, comma-separated CIDRs or addresses (:func:`parse_networks`);
* durations: whole seconds (``300``) or Go-style parts (``500ms``, ``30s``, ``5m``, ``24h``, ``1h30m``, ``2d``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_bool(text: str) -> bool:
    """``"On"`` -> True, ``""`` -> False; raises ``ValueError`` for a word that is neither."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_duration(text: str) -> float:
    """Seconds from ``300``, ``500ms``, ``30s``, ``5m``, ``24h``, ``1h30m``, ``2d``; raises ``ValueError``."""
    text = text.strip().lower()
    if text.isdigit():
        return float(text)
    pos, total = 0, 0.0
    for match in DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {text!r} (use seconds or e.g. 30s, 5m, 24h)")
    return total


def parse_hostport(text: str, flag: str = "--listen") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> ``(host, port)``; raises ``ValueError`` with a one-line message."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{flag}: expected [v6-address]:port, got {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"{flag}: expected host:port or [v6-address]:port, got {text!r}")
    if not host:
        raise ValueError(f"{flag}: missing host in {text!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{flag}: bad port in {text!r}")
    return host, int(port_text)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Sequence[str], flag: str) -> tuple[Network, ...]:
    """Repeatable, comma-separated CIDRs or single addresses (``--allow-transfer``, ``--allow-recursion``) ->
    networks in the order given, duplicates dropped; host bits are ignored (``10.0.0.1/8`` is ``10.0.0.0/8``).
    :class:`ValueError` names the flag and the bad value."""
    out: list[Network] = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{flag}: {part!r} is not an address or CIDR") from None
    return tuple(dict.fromkeys(out))
