"""Adopting ExternalDNS's names: its TXT registry read as ExternalDNS reads it, and the plan that adopts.

The name-mapping tables are ExternalDNS's own (registry/mapper/mapper_test.go at v0.22); the records are stored
byte for byte as its coredns provider writes them (Go's encoding/json of its Service struct: ``host``, ``text``,
``ttl``, ``targetstrip``, ``group``, ``owner``, in that order, zero values left out; random 8-hex leaf keys).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from skydns.record import decode
from syncer.adoption import AdoptionRules, AffixMapper, Refused, parse_heritage
from syncer.cli import UsageError, parse_config
from syncer.current import CurrentRecord, classify
from syncer.keys import name_key
from syncer.model import Endpoint
from syncer.output import render
from syncer.plan import Plan, calculate
from tests.syncer.helpers import OWNER, PREFIX, ep, ours

EXT = "ext-1"


def go_json(**fields: object) -> bytes:
    """A value as ExternalDNS's coredns provider marshals it (field order of its struct, zero values left out)."""
    order = ("host", "port", "priority", "weight", "text", "mail", "ttl", "targetstrip", "group", "owner")
    return json.dumps({k: fields[k] for k in order if fields.get(k)}, separators=(",", ":")).encode()


def stored(name: str, leaf: str, value: bytes, revision: int = 7) -> CurrentRecord:
    key = f"{name_key(PREFIX, name)}/{leaf}"
    return classify(key, decode(value, key), PREFIX, revision)


def edns(name: str, target: str, leaf: str = "2f6b1c3a", **extra: object) -> CurrentRecord:
    """A record as ExternalDNS writes it: ``<name>/<random leaf>``, ``targetstrip: 1``."""
    return stored(name, leaf, go_json(host=target, targetstrip=1, **extra))


def heritage(owner: str, resource: str = "service/default/web", **labels: str) -> str:
    """The TXT registry's value: quoted, labels sorted (``Labels.SerializePlain(true)``)."""
    all_labels = {"owner": owner, "resource": resource, **labels}
    tokens = ["heritage=external-dns", *(f"external-dns/{k}={v}" for k, v in sorted(all_labels.items()))]
    return '"' + ",".join(tokens) + '"'


def edns_txt(txt_name: str, owner: str = EXT, leaf: str = "0c9d8e7f", text: str | None = None,
             **extra: object) -> CurrentRecord:
    """An ownership TXT as the coredns provider stores it: a text-only value at ``<txt name>/<random leaf>``."""
    return stored(txt_name, leaf, go_json(text=heritage(owner) if text is None else text, targetstrip=1, **extra))


# -- ExternalDNS's TXT value -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelCase:
    title: str
    text: str
    labels: dict[str, str] | None


LABEL_CASES = [
    LabelCase("the registry's value", heritage(EXT), {"owner": EXT, "resource": "service/default/web"}),
    LabelCase("without quotes", heritage(EXT).strip('"'), {"owner": EXT, "resource": "service/default/web"}),
    LabelCase("extra labels the coredns provider leaks on update",
              heritage(EXT, **{"10.0.0.1": "2f6b1c3a", "originalText": "", "prefix": "2f6b1c3a"}),
              {"owner": EXT, "resource": "service/default/web", "10.0.0.1": "2f6b1c3a", "originalText": "",
               "prefix": "2f6b1c3a"}),
    LabelCase("tokens without = are ignored", '"heritage=external-dns,junk,external-dns/owner=x"', {"owner": "x"}),
    LabelCase("another heritage is an ordinary TXT", '"heritage=other,external-dns/owner=x"', None),
    LabelCase("no heritage is an ordinary TXT", '"external-dns/owner=x"', None),
    LabelCase("an ACME challenge is an ordinary TXT", "Xr3dp-Jd5oCeOHqT0bC9w3lq2b2zZCfB0x_fake", None),
    LabelCase("an encrypted registry does not parse", '"rbAZYVZ2oD/7XpIsiCk7Yjb5uW+HMNQh=="', None),
    LabelCase("heritage alone: no owner", '"heritage=external-dns"', {}),
]


@pytest.mark.parametrize("case", LABEL_CASES, ids=lambda c: c.title)
def test_parse_heritage(case: LabelCase) -> None:
    assert parse_heritage(case.text) == case.labels


# -- ExternalDNS's TXT names (registry/mapper/mapper_test.go) ----------------------------------------------------


@dataclass(frozen=True)
class NameCase:
    title: str
    mapper: AffixMapper
    name: str
    type: str
    txt_name: str


NAME_CASES = [
    NameCase("no affix, A", AffixMapper(), "foo.example.com", "A", "a-foo.example.com"),
    NameCase("no affix, AAAA", AffixMapper(), "foo.example.com", "AAAA", "aaaa-foo.example.com"),
    NameCase("no affix, CNAME", AffixMapper(), "foo.example.com", "CNAME", "cname-foo.example.com"),
    NameCase("no affix, NS", AffixMapper(), "foo.example.com", "NS", "ns-foo.example.com"),
    NameCase("no affix, MX", AffixMapper(), "foo.example.com", "MX", "mx-foo.example.com"),
    NameCase("no affix, SRV", AffixMapper(), "foo.example.com", "SRV", "srv-foo.example.com"),
    NameCase("no affix, PTR", AffixMapper(), "2.49.168.192.in-addr.arpa", "PTR", "ptr-2.49.168.192.in-addr.arpa"),
    NameCase("no affix, NAPTR", AffixMapper(), "foo.example.com", "NAPTR", "naptr-foo.example.com"),
    NameCase("no affix, TXT", AffixMapper(), "foo.example.com", "TXT", "txt-foo.example.com"),
    NameCase("templated prefix, DNAME", AffixMapper("%{record_type}-"), "foo.example.com", "DNAME",
             "dname-foo.example.com"),
    NameCase("templated suffix", AffixMapper(suffix="-%{record_type}"), "foo.example.com", "CNAME",
             "foo-cname.example.com"),
    NameCase("prefix without dash", AffixMapper("foo"), "example.com", "A", "fooa-example.com"),
    NameCase("suffix on a one-label name", AffixMapper(suffix="foo"), "example", "AAAA", "aaaa-examplefoo"),
    NameCase("suffix", AffixMapper(suffix="foo"), "example.com", "AAAA", "aaaa-examplefoo.com"),
    NameCase("prefix with dash", AffixMapper("foo-"), "example.com", "A", "foo-a-example.com"),
    NameCase("suffix with dash", AffixMapper(suffix="-foo"), "example.com", "CNAME", "cname-example-foo.com"),
    NameCase("prefix with dot", AffixMapper("foo."), "example.com", "CNAME", "foo.cname-example.com"),
    NameCase("suffix with dot", AffixMapper(suffix=".foo"), "example.com", "CNAME", "cname-example.foo.com"),
    NameCase("prefix with dots", AffixMapper("foo.bar."), "example.com", "CNAME", "foo.bar.cname-example.com"),
    NameCase("suffix with dots", AffixMapper(suffix=".foo.bar.test"), "example.com", "CNAME",
             "cname-example.foo.bar.test.com"),
    NameCase("templated prefix", AffixMapper("%{record_type}-foo"), "example.com", "A", "a-fooexample.com"),
    NameCase("templated suffix", AffixMapper(suffix="foo-%{record_type}"), "example.com", "A", "examplefoo-a.com"),
    NameCase("templated prefix with dot", AffixMapper("%{record_type}foo."), "example.com", "CNAME",
             "cnamefoo.example.com"),
    NameCase("templated suffix with dot", AffixMapper(suffix=".foo%{record_type}"), "example.com", "A",
             "example.fooa.com"),
    NameCase("templated prefix, dots", AffixMapper("bar.%{record_type}.foo."), "example.com", "CNAME",
             "bar.cname.foo.example.com"),
    NameCase("templated suffix, dots", AffixMapper(suffix=".foo%{record_type}.bar"), "example.com", "A",
             "example.fooa.bar.com"),
    NameCase("docs: apex with a templated prefix", AffixMapper("%{record_type}-abc-."), "ex.com", "CNAME",
             "cname-abc-.ex.com"),
    NameCase("docs: templated suffix", AffixMapper(suffix="-.%{record_type}"), "www.ex.com", "CNAME",
             "www-.cname.ex.com"),
    NameCase("wildcard replacement", AffixMapper("txt-", wildcard_replacement="wild"), "*.example.com", "A",
             "txt-a-wild.example.com"),
    NameCase("upper-case affix is lower-cased", AffixMapper("TXT."), "www.example.org", "A", "txt.a-www.example.org"),
]


@pytest.mark.parametrize("case", NAME_CASES, ids=lambda c: c.title)
def test_txt_names_are_externaldns_s_and_map_back(case: NameCase) -> None:
    assert case.mapper.txt_name(case.name, case.type) == case.txt_name
    assert case.mapper.endpoint_name(case.txt_name) == (case.mapper.lookup_name(case.name), case.type)
    assert case.txt_name in case.mapper.ownership_names(case.name)


@dataclass(frozen=True)
class ReadCase:
    title: str
    mapper: AffixMapper
    txt_name: str
    owns: tuple[str, str]


READ_CASES = [
    ReadCase("suffix with dots, no labels after it", AffixMapper(suffix=".foo.bar"), "a-example.foo.bar",
             ("example", "A")),
    ReadCase("suffix with dots, too few labels", AffixMapper(suffix=".foo.bar"), "a-example.foo", ("", "")),
    ReadCase("an old-format TXT: the record's own name", AffixMapper(), "zone.example.com",
             ("zone.example.com", "")),
    ReadCase("an old-format TXT with a prefix", AffixMapper("txt."), "txt.www.example.org", ("www.example.org", "")),
    ReadCase("a templated prefix drops old TXTs' empty type", AffixMapper("foo-%{record_type}-"),
             "foo--test.example.com", ("test.example.com", "")),
    ReadCase("prefix missing: not an ownership name", AffixMapper("foo-"), "bar.example.com", ("", "")),
    ReadCase("suffix missing: not an ownership name", AffixMapper(suffix="-foo"), "bar.example.com",
             (".example.com", "")),
]


@pytest.mark.parametrize("case", READ_CASES, ids=lambda c: c.title)
def test_txt_names_read_as_externaldns_reads_them(case: ReadCase) -> None:
    assert case.mapper.endpoint_name(case.txt_name) == case.owns


def test_prefix_and_suffix_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        AffixMapper("pre-", "-suf")


# -- which names are adopted -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    title: str
    current: list[CurrentRecord]
    desired: list[Endpoint] = field(default_factory=lambda: [ep("www.example.org", "A", "10.0.0.2")])
    mapper: AffixMapper = field(default_factory=AffixMapper)
    owners: tuple[str, ...] = (EXT,)
    policy: str = "sync"
    expected: Sequence[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = ()
    ownership_deleted: tuple[str, ...] = ()  # keys of ownership TXTs the plan deletes
    reason: str = ""  # in the skip reason when nothing is adopted


Expected = tuple[str, str, tuple[str, ...], tuple[str, ...]]  # (action, type, targets, old targets)
WWW_A = edns("www.example.org", "10.0.0.1")
WWW_TXT = edns_txt("a-www.example.org")
ADOPT_A: list[Expected] = [("adopt", "A", ("10.0.0.2",), ("10.0.0.1",))]

CASES = [
    Case("A record with its a- TXT", [WWW_A, WWW_TXT], expected=ADOPT_A, ownership_deleted=(WWW_TXT.key,)),
    Case("two targets, ttl and group", [edns("www.example.org", "10.0.0.1", ttl=60, group="g1"),
                                        edns("www.example.org", "10.0.0.3", leaf="5e4d3c2b", ttl=60, group="g1"),
                                        WWW_TXT],
         expected=[("adopt", "A", ("10.0.0.2",), ("10.0.0.1", "10.0.0.3"))], ownership_deleted=(WWW_TXT.key,)),
    Case("CNAME with its cname- TXT, we want a CNAME",
         [edns("www.example.org", "lb.example.net"), edns_txt("cname-www.example.org")],
         desired=[ep("www.example.org", "CNAME", "lb2.example.net")],
         expected=[("adopt", "CNAME", ("lb2.example.net",), ("lb.example.net",))],
         ownership_deleted=(edns_txt("cname-www.example.org").key,)),
    Case("their CNAME, our A: sync removes the CNAME",
         [edns("www.example.org", "lb.example.net"), edns_txt("cname-www.example.org")],
         expected=[("create", "A", ("10.0.0.2",), ()), ("adopt", "CNAME", (), ("lb.example.net",))],
         ownership_deleted=(edns_txt("cname-www.example.org").key,)),
    Case("A and AAAA each owned by its TXT",
         [WWW_A, edns("www.example.org", "2001:db8::1", leaf="6a5b4c3d"), WWW_TXT,
          edns_txt("aaaa-www.example.org", leaf="1d2c3b4a")],
         desired=[ep("www.example.org", "A", "10.0.0.2"), ep("www.example.org", "AAAA", "2001:db8::2")],
         expected=[*ADOPT_A, ("adopt", "AAAA", ("2001:db8::2",), ("2001:db8::1",))],
         ownership_deleted=(edns_txt("aaaa-www.example.org", leaf="1d2c3b4a").key, WWW_TXT.key)),
    Case("upsert-only keeps their AAAA and the TXT that owns it",
         [WWW_A, edns("www.example.org", "2001:db8::1", leaf="6a5b4c3d"), WWW_TXT,
          edns_txt("aaaa-www.example.org", leaf="1d2c3b4a")],
         policy="upsert-only", expected=ADOPT_A, ownership_deleted=(WWW_TXT.key,)),
    Case("--txt-prefix txt.", [WWW_A, edns_txt("txt.a-www.example.org")], mapper=AffixMapper("txt."),
         expected=ADOPT_A, ownership_deleted=(edns_txt("txt.a-www.example.org").key,)),
    Case("--txt-prefix with %{record_type}", [WWW_A, edns_txt("a-abc-.www.example.org")],
         mapper=AffixMapper("%{record_type}-abc-."), expected=ADOPT_A,
         ownership_deleted=(edns_txt("a-abc-.www.example.org").key,)),
    Case("--txt-suffix -reg", [WWW_A, edns_txt("a-www-reg.example.org")], mapper=AffixMapper(suffix="-reg"),
         expected=ADOPT_A, ownership_deleted=(edns_txt("a-www-reg.example.org").key,)),
    Case("--txt-suffix with %{record_type}", [WWW_A, edns_txt("www-.a.example.org")],
         mapper=AffixMapper(suffix="-.%{record_type}"), expected=ADOPT_A,
         ownership_deleted=(edns_txt("www-.a.example.org").key,)),
    Case("a prefix ExternalDNS did not use: not found", [WWW_A, edns_txt("txt.a-www.example.org")],
         reason="has no ExternalDNS ownership TXT (a-www.example.org)"),
    Case("wildcard with --txt-wildcard-replacement",
         [edns("*.apps.example.org", "10.0.0.1"), edns_txt("a-wild.apps.example.org")],
         desired=[ep("*.apps.example.org", "A", "10.0.0.2")], mapper=AffixMapper(wildcard_replacement="wild"),
         expected=ADOPT_A, ownership_deleted=(edns_txt("a-wild.apps.example.org").key,)),
    Case("wildcard without replacement", [edns("*.apps.example.org", "10.0.0.1"), edns_txt("a-*.apps.example.org")],
         desired=[ep("*.apps.example.org", "A", "10.0.0.2")], expected=ADOPT_A,
         ownership_deleted=(edns_txt("a-*.apps.example.org").key,)),
    Case("old-format TXT (same name, own key) owns the A",
         [WWW_A, edns_txt("www.example.org", leaf="3e3e3e3e")], expected=ADOPT_A,
         ownership_deleted=(edns_txt("www.example.org", leaf="3e3e3e3e").key,)),
    Case("ExternalDNS <= 0.17: the ownership text merged into the A value",
         [stored("www.example.org", "2f6b1c3a", go_json(host="10.0.0.1", text=heritage(EXT), targetstrip=1))],
         expected=ADOPT_A),
    Case("ExternalDNS <= 0.17: a CNAME with its merged text (served as TXT by CoreDNS)",
         [stored("www.example.org", "2f6b1c3a", go_json(host="lb.example.net", text=heritage(EXT), targetstrip=1))],
         desired=[ep("www.example.org", "CNAME", "lb.example.net")],
         expected=[("adopt", "CNAME", ("lb.example.net",), ("lb.example.net",))]),
    Case("an SRV as ExternalDNS's coredns provider stores it (the whole target as host)",
         [edns("_game._tcp.game.example.org", "0 50 30777 game.example.org."),
          edns_txt("srv-_game._tcp.game.example.org")],
         desired=[ep("_game._tcp.game.example.org", "SRV", "0 50 30777 game.example.org")],
         expected=[("adopt", "SRV", ("0 50 30777 game.example.org",), ("0 50 30777 game.example.org",))],
         ownership_deleted=(edns_txt("srv-_game._tcp.game.example.org").key,)),
    Case("the old format does not own AAAA", [edns("www.example.org", "2001:db8::1"),
                                              edns_txt("www.example.org", leaf="3e3e3e3e")],
         desired=[ep("www.example.org", "AAAA", "2001:db8::2")],
         reason="its AAAA record /skydns/org/example/www/2f6b1c3a has no ExternalDNS ownership TXT"),
    Case("--coredns-strictly-owned: owner field and TXT agree", [edns("www.example.org", "10.0.0.1", owner=EXT),
                                                                 edns_txt("a-www.example.org", owner=EXT)],
         expected=ADOPT_A, ownership_deleted=(WWW_TXT.key,)),
    Case("stale TXTs of ExternalDNS's update bug: all deleted",
         [WWW_A, WWW_TXT, edns_txt("a-www.example.org", leaf="4f4f4f4f"), edns_txt("cname-www.example.org")],
         expected=ADOPT_A, ownership_deleted=(edns_txt("a-www.example.org", leaf="4f4f4f4f").key, WWW_TXT.key,
                                              edns_txt("cname-www.example.org").key)),
    Case("one of several adopted ids", [WWW_A, edns_txt("a-www.example.org", owner="ext-2")],
         owners=(EXT, "ext-2"), expected=ADOPT_A, ownership_deleted=(WWW_TXT.key,)),
    Case("an ACME TXT beside the A stays", [WWW_A, WWW_TXT, stored("www.example.org", "7a7a7a7a",
                                                                   go_json(text="acme-token", targetstrip=1))],
         expected=ADOPT_A, ownership_deleted=(WWW_TXT.key,)),
    Case("our own records there too", [ours("www.example.org", "A", "10.0.0.2"), WWW_A, WWW_TXT],
         expected=[("adopt", "A", ("10.0.0.2",), ("10.0.0.1", "10.0.0.2"))], ownership_deleted=(WWW_TXT.key,)),
    # -- never adopted
    Case("another owner's TXT", [WWW_A, edns_txt("a-www.example.org", owner="someone-else")],
         reason="ExternalDNS's ownership TXT says owner 'someone-else', not one of --adopt-txt-owner ext-1"),
    Case("no ownership TXT", [WWW_A], reason="its A record /skydns/org/example/www/2f6b1c3a has no ExternalDNS "
                                            "ownership TXT (a-www.example.org) that parses"),
    Case("malformed TXT: no heritage", [WWW_A, edns_txt("a-www.example.org", text='"external-dns/owner=ext-1"')],
         reason="has no ExternalDNS ownership TXT"),
    Case("malformed TXT: owner without a value", [WWW_A, edns_txt(
        "a-www.example.org", text='"heritage=external-dns,external-dns/owner"')], reason="says owner (none)"),
    Case("the TXT owns another type", [WWW_A, edns_txt("cname-www.example.org")],
         reason="its A record /skydns/org/example/www/2f6b1c3a has no ExternalDNS ownership TXT"),
    Case("two owners claim the name", [WWW_A, WWW_TXT, edns_txt("a-www.example.org", owner="other", leaf="4f4f4f4f")],
         reason="says owner 'other'"),
    Case("an unowned AAAA beside the owned A", [WWW_A, WWW_TXT, edns("www.example.org", "2001:db8::9", "9c9c9c9c")],
         reason="its AAAA record /skydns/org/example/www/9c9c9c9c has no ExternalDNS ownership TXT"),
    Case("owner field of another instance", [edns("www.example.org", "10.0.0.1", owner="other"), WWW_TXT],
         reason="carries owner 'other'"),
    Case("another dnssync's records", [ours("www.example.org", "A", "10.0.0.1", owner="cluster-b")],
         reason="no ExternalDNS ownership TXT"),
]


def plan_of(case: Case) -> Plan:
    return calculate(case.desired, case.current, OWNER, case.policy,
                     adoption=AdoptionRules(case.owners, case.mapper))


def summary(plan: Plan) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return [(c.action, c.type, c.targets, c.old_targets) for c in plan.changes]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.title)
def test_adoption_table(case: Case) -> None:
    plan = plan_of(case)
    assert summary(plan) == list(case.expected)
    assert tuple(sorted(r.key for c in plan.changes for r in c.ownership)) == tuple(sorted(case.ownership_deleted))
    if case.reason:
        assert plan.changes == [] and plan.conflicts == 1
        assert case.reason in plan.skipped[0].reason, plan.skipped[0].reason
        assert "not adopted:" in plan.skipped[0].reason
    else:
        adopts = [c for c in plan.changes if c.action == "adopt"]
        assert adopts and all(c.adopted_from for c in adopts)
        if case.policy == "sync":  # every record of theirs at the name goes, in the changes that put ours
            wanted = {e.name for e in case.desired}
            theirs = {r.key for r in case.current if r.name in wanted and r.owner != OWNER and r.record.host}
            assert theirs <= {r.key for c in adopts for r in c.current}


def test_a_wildcard_and_its_replacement_share_one_ownership_record() -> None:
    txt = edns_txt("a-wild.apps.example.org")
    current = [edns("*.apps.example.org", "10.0.0.1"), edns("wild.apps.example.org", "10.0.0.3", leaf="5e5e5e5e"), txt]
    desired = [ep("*.apps.example.org", "A", "10.0.0.2"), ep("wild.apps.example.org", "A", "10.0.0.4")]
    plan = calculate(desired, current, OWNER, "sync", adoption=AdoptionRules((EXT,), AffixMapper(
        wildcard_replacement="wild")))
    assert [(c.action, c.name) for c in plan.changes] == [("adopt", "*.apps.example.org"),
                                                          ("adopt", "wild.apps.example.org")]
    assert [r.key for c in plan.changes for r in c.ownership] == [txt.key]  # deleted once, not in two names


def test_without_adoption_the_name_stays_blocked() -> None:
    plan = calculate([ep("www.example.org", "A", "10.0.0.2")], [WWW_A, WWW_TXT], OWNER, "sync")
    assert plan.changes == [] and plan.conflicts == 1 and "not adopted" not in plan.skipped[0].reason


def test_names_we_do_not_want_are_not_adopted() -> None:
    other = edns("old.example.org", "10.0.0.5")
    plan = calculate([ep("www.example.org", "A", "10.0.0.2")], [WWW_A, WWW_TXT, other,
                                                               edns_txt("a-old.example.org")],
                     OWNER, "sync", adoption=AdoptionRules((EXT,)))
    assert {c.name for c in plan.changes} == {"www.example.org"}


def test_create_only_adopts_nothing() -> None:
    plan = calculate([ep("www.example.org", "A", "10.0.0.2")], [WWW_A, WWW_TXT], OWNER, "create-only",
                     adoption=AdoptionRules((EXT,)))
    assert plan.changes == [] and plan.conflicts == 1


def test_the_decision_names_its_records_and_ownership() -> None:
    rules = AdoptionRules((EXT,))
    decision = rules.decide(rules.index([WWW_A, WWW_TXT]), "www.example.org", [WWW_A], {"A": []})
    assert not isinstance(decision, Refused)
    assert decision.owners == (EXT,) and decision.records == {"A": (WWW_A,)}
    assert decision.ownership_records() == (WWW_TXT,)
    assert decision.ownership_records(kept_types=["A"]) == ()


def test_names_to_read_cover_every_ownership_name() -> None:
    rules = AdoptionRules((EXT,), AffixMapper("txt."))
    names = rules.names_to_read(["www.example.org"])
    assert names[0] == "www.example.org"
    assert {"txt.a-www.example.org", "txt.aaaa-www.example.org", "txt.cname-www.example.org",
            "txt.www.example.org"} <= set(names)
    assert rules.owned_names("txt.a-www.example.org") == ("www.example.org",)
    assert AdoptionRules((EXT,), AffixMapper(wildcard_replacement="wild")).owned_names(
        "a-wild.apps.example.org") == ("wild.apps.example.org", "*.apps.example.org")
    long_label = "x" * 62
    assert f"a-{long_label}.example.org" not in AdoptionRules((EXT,)).names_to_read([f"{long_label}.example.org"])


def test_the_dry_run_shows_the_adoption() -> None:
    plan = plan_of(CASES[0])
    text = render(plan, plan.skipped, "text")
    assert text.splitlines() == [
        "* www.example.org A 10.0.0.2 (was 10.0.0.1) ttl=- service/default/web adopted from ExternalDNS owner "
        "ext-1, deleting its ownership TXT a-www.example.org",
        "0 to create, 0 to update, 0 to delete, 1 to adopt"]
    data = json.loads(render(plan, plan.skipped, "json"))
    assert data["summary"] == {"create": 0, "update": 0, "delete": 0, "adopt": 1, "skipped": 0}
    assert data["changes"] == [{"action": "adopt", "name": "www.example.org", "type": "A", "targets": ["10.0.0.2"],
                                "ttl": None, "resource": "service/default/web",
                                "adopted": {"owners": [EXT], "old_targets": ["10.0.0.1"],
                                            "ownership_records": ["a-www.example.org"]}}]


def test_what_is_written_is_ours_and_deletes_theirs() -> None:
    [change] = plan_of(CASES[0]).changes
    assert [r.record.owner for r in change.records] == [OWNER]
    assert [r.key for r in change.current] == [WWW_A.key]
    assert [r.key for r in change.ownership] == [WWW_TXT.key]


@dataclass(frozen=True)
class FlagCase:
    title: str
    argv: list[str]
    env: dict[str, str]
    rules: AdoptionRules | None = None
    error: str = ""


BASE = ["--owner-id", OWNER, "--policy", "sync"]
FLAG_CASES = [
    FlagCase("off by default", BASE, {}),
    FlagCase("repeatable", [*BASE, "--adopt-txt-owner", "a", "--adopt-txt-owner", "b,c"], {},
             AdoptionRules(("a", "b", "c"))),
    FlagCase("from the environment", BASE, {"DNSSYNC_ADOPT_TXT_OWNER": "a,b", "DNSSYNC_ADOPT_TXT_PREFIX": "txt."},
             AdoptionRules(("a", "b"), AffixMapper("txt."))),
    FlagCase("ExternalDNS's spellings", [*BASE, "--adopt-txt-owner", "a", "--txt-suffix=-reg",
                                         "--txt-wildcard-replacement", "wild"], {},
             AdoptionRules(("a",), AffixMapper(suffix="-reg", wildcard_replacement="wild"))),
    FlagCase("an affix alone", [*BASE, "--txt-prefix", "txt."], {}, error="needs --adopt-txt-owner"),
    FlagCase("prefix and suffix", [*BASE, "--adopt-txt-owner", "a", "--txt-prefix", "p.", "--txt-suffix", "s"], {},
             error="exclude each other"),
    FlagCase("create-only", ["--owner-id", OWNER, "--policy", "create-only", "--adopt-txt-owner", "a"], {},
             error="create-only"),
]


@pytest.mark.parametrize("case", FLAG_CASES, ids=lambda c: c.title)
def test_flags(case: FlagCase) -> None:
    if case.error:
        with pytest.raises(UsageError, match=case.error):
            parse_config(case.argv, env=case.env)
    else:
        assert parse_config(case.argv, env=case.env).adoption == case.rules
