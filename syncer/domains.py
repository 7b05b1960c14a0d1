"""``--domain-filter`` / ``--exclude-domains``: suffix matching on label boundaries, as ExternalDNS does.

``example.org`` matches ``example.org`` and ``a.example.org`` but not ``badexample.org``; a leading dot
(``.example.org``) matches sub-domains only. No include filter means every name is included; an exclusion wins.
"""

from __future__ import annotations

from dataclasses import dataclass


def _norm(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


def _matches(name: str, domain: str) -> bool:
    if domain.startswith("."):
        return name.endswith(domain)
    return name == domain or name.endswith("." + domain)


@dataclass(frozen=True)
class DomainFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "include", tuple(d for d in map(_norm, self.include) if d))
        object.__setattr__(self, "exclude", tuple(d for d in map(_norm, self.exclude) if d))

    def matches(self, name: str) -> bool:
        name = _norm(name)
        if any(_matches(name, d) for d in self.exclude):
            return False
        return not self.include or any(_matches(name, d) for d in self.include)

    def may_match_at_or_below(self, name: str) -> bool:
        """False when neither ``name`` nor any name below it (``_svc._tcp.<name>``, ``<pod>.<name>``) can pass."""
        name = _norm(name)
        if any(_matches(name, d) for d in self.exclude):
            return False
        return not self.include or any(_matches(name, d) or _matches(d.lstrip("."), name) for d in self.include)
