"""--fqdn-template: the Go-template field-reference subset, parse errors, and its use by the sources."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.sources.template import parse_templates
from tests.syncer.source_objects import A, ep, hostname, ingress, reasons, run, service

OBJ: dict[str, Any] = {
    "kind": "Service",
    "metadata": {
        "name": "Web",
        "namespace": "shop",
        "labels": {"app": "store", "app.kubernetes.io/name": "Store"},
        "annotations": {"team": "Payments", "example.com/zone": "eu"},
    },
}

RENDER = [
    ("{{.Name}}.{{.Namespace}}.example.org", ["Web.shop.example.org"]),
    ("{{ .Name }}.{{ .Namespace }}.example.org.", ["Web.shop.example.org"]),
    ("{{toLower .Name}}.example.org", ["web.example.org"]),
    ("{{ .Name | toLower }}.example.org", ["web.example.org"]),
    ("{{.Labels.app}}.example.org", ["store.example.org"]),
    ("{{ .Annotations.team | toLower }}.example.org", ["payments.example.org"]),
    ('{{ index .Labels "app.kubernetes.io/name" | toLower }}.example.org', ["store.example.org"]),
    ('{{index .Annotations "example.com/zone"}}.example.org', ["eu.example.org"]),
    ("{{.Kind}}.example.org", ["Service.example.org"]),
    ('{{"fixed"}}.example.org', ["fixed.example.org"]),
    ("{{.Name}}.a.org, {{.Name}}.b.org", ["Web.a.org", "Web.b.org"]),
    ("{{.Name}}.a.org,,{{.Name}}.a.org", ["Web.a.org"]),
    ("a-{{- .Name -}} .example.org", ["a-Web.example.org"]),
    ("static.example.org", ["static.example.org"]),
]


@pytest.mark.parametrize(("text", "names"), RENDER, ids=[r[0] for r in RENDER])
def test_render(text: str, names: list[str]) -> None:
    assert parse_templates(text).render(OBJ, "Service") == (names, [])


def test_several_flags_add_up_and_kind_defaults_to_the_source() -> None:
    templates = parse_templates(["{{.Name}}.a.org", "{{.Kind}}.b.org"])
    assert templates.render({"metadata": {"name": "x"}}, "Ingress") == (["x.a.org", "Ingress.b.org"], [])
    assert not parse_templates([])
    assert not parse_templates("")
    assert not parse_templates(None)


def test_missing_label_fails_only_its_part() -> None:
    templates = parse_templates("{{.Name}}.a.org,{{.Labels.team}}.teams.org")
    names, errors = templates.render(OBJ, "Service")
    assert names == ["Web.a.org"]
    assert errors == [("{{.Labels.team}}.teams.org", "the object has no label 'team'")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Name", "unclosed action"),
        ("{{.Spec.Type}}.example.org", "unknown field '.Spec.Type'"),
        ("{{.Status}}.example.org", "unknown field '.Status'"),
        ("{{.Labels}}.example.org", "'.Labels' needs a key"),
        ("{{.Labels.app.kubernetes.io}}.example.org", "use index .Labels"),
        ("{{.Name.First}}", ".Name has no fields"),
        ("{{ printf \"%s\" .Name }}", "unsupported function or value 'printf'"),
        ("{{ .Name | toUpper }}", "unsupported pipeline stage 'toUpper'"),
        ("{{ trimSuffix \"-svc\" .Name }}", "unsupported function or value 'trimSuffix'"),
        ("{{ index .Name \"x\" }}", "index takes .Labels or .Annotations"),
        ("{{ index .Labels app }}", "index takes .Labels or .Annotations and a string key"),
        ("{{ if .Name }}x{{ end }}", "unsupported"),
        ("{{}}", "empty action"),
        ("{{/* c */}}", "comments are not supported"),
        ("a}}b", "'}}' without a matching '{{'"),
        ('{{ "abc }}', "unterminated string"),
        ("{{ Name }}", "unsupported function or value 'Name'"),
    ],
)
def test_parse_errors_name_the_template(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_templates(text)
    assert f"invalid --fqdn-template {text!r}" in str(info.value)
    assert message in str(info.value)


# ---- in the sources: only when the object has no host names of its own -----------------------------------------

def test_template_used_only_without_hostname_annotation() -> None:
    result = run(
        services=[service(name="a", lb=[{"ip": "192.0.2.1"}]),
                  service(name="b", annotations=hostname("own.example.org"), lb=[{"ip": "192.0.2.2"}])],
        fqdn_templates=["{{.Name}}.{{.Namespace}}.example.org"],
    )
    assert result.endpoints == [
        ep("a.default.example.org", "A", "192.0.2.1", resource="service/default/a"),
        ep("own.example.org", "A", "192.0.2.2", resource="service/default/b"),
    ]


def test_template_for_ingress_without_hosts_and_ttl_applies() -> None:
    result = run(
        ingresses=[ingress(name="shop", ns="prod", annotations={A + "ttl": "30"}, lb=[{"ip": "192.0.2.3"}]),
                   ingress(name="blog", hosts=("blog.example.org",), lb=[{"ip": "192.0.2.4"}])],
        fqdn_templates=["{{.Name}}.{{.Namespace}}.example.org"],
    )
    assert result.endpoints == [
        ep("blog.example.org", "A", "192.0.2.4", resource="ingress/default/blog"),
        ep("shop.prod.example.org", "A", "192.0.2.3", ttl=30, resource="ingress/prod/shop"),
    ]


def test_template_missing_label_and_invalid_result_are_skipped_with_reasons() -> None:
    result = run(
        services=[service(name="a", labels={"team": "x"}, lb=[{"ip": "192.0.2.1"}]),
                  service(name="b", lb=[{"ip": "192.0.2.2"}]),
                  service(name="c", labels={"team": "has space"}, lb=[{"ip": "192.0.2.3"}])],
        fqdn_templates=["{{.Labels.team}}.example.org"],
    )
    assert result.endpoints == [ep("x.example.org", "A", "192.0.2.1", resource="service/default/a")]
    got = reasons(result)
    assert got[0] == ("service/default/b", "{{.Labels.team}}.example.org",
                      "fqdn-template: the object has no label 'team'")
    assert got[1] == ("service/default/c", "has space.example.org",
                      "invalid host name: label 'has space' holds the character ' '")
    assert len(got) == 2
