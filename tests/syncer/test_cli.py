"""dnssync's command line: flags, DNSSYNC_* variables, ExternalDNS aliases, one-line usage errors (exit 2)."""

from __future__ import annotations

import pytest

from syncer.cli import UsageError, parse_config, run

BASE = ["--once", "--owner-id", "me", "--policy", "sync"]


def test_defaults() -> None:
    cfg = parse_config(BASE, env={})
    assert (cfg.dry_run, cfg.output, cfg.prefix, cfg.policy, cfg.owner_id) == (False, "text", "/skydns", "sync", "me")
    assert cfg.sources.sources == ("service", "ingress")
    assert cfg.sources.annotation_prefixes == ("external-dns.alpha.kubernetes.io/", "external-dns.kubernetes.io/")
    assert cfg.etcd.endpoints == ("http://localhost:2379",)


def test_every_setting_from_the_environment() -> None:
    env = {"DNSSYNC_ONCE": "true", "DNSSYNC_DRY_RUN": "yes", "DNSSYNC_OWNER_ID": "env-owner",
           "DNSSYNC_POLICY": "upsert-only", "DNSSYNC_OUTPUT": "json", "DNSSYNC_PREFIX": "/dns/",
           "DNSSYNC_SOURCE": "ingress", "DNSSYNC_DOMAIN_FILTER": "example.org, example.net",
           "DNSSYNC_EXCLUDE_DOMAINS": "bad.example.org", "DNSSYNC_INGRESS_CLASS": "nginx,traefik",
           "DNSSYNC_NAMESPACE": "shop", "DNSSYNC_LABEL_FILTER": "team=a", "DNSSYNC_ANNOTATION_FILTER": "x in (y)",
           "DNSSYNC_ANNOTATION_PREFIX": "custom.io/", "DNSSYNC_PUBLISH_INTERNAL_SERVICES": "1",
           "DNSSYNC_FQDN_TEMPLATE": "{{.Name}}.example.org", "DNSSYNC_FROM_MANIFESTS": "a.yaml,b/",
           "DNSSYNC_LOG_FORMAT": "json", "DNSSYNC_LOG_LEVEL": "debug", "ETCD_URLS": "http://etcd-1:2379"}
    cfg = parse_config([], env=env)
    assert (cfg.dry_run, cfg.owner_id, cfg.policy, cfg.output, cfg.prefix) == (True, "env-owner", "upsert-only",
                                                                                "json", "/dns")
    assert cfg.from_manifests == ("a.yaml", "b/")
    src = cfg.sources
    assert src.sources == ("ingress",)
    assert src.domain_filter == ("example.org", "example.net")
    assert src.exclude_domains == ("bad.example.org",)
    assert src.ingress_classes == ("nginx", "traefik")
    assert (src.namespace, src.label_filter, src.annotation_filter) == ("shop", "team=a", "x in (y)")
    assert src.annotation_prefixes == ("custom.io/",)
    assert src.publish_internal_services is True
    assert src.fqdn_templates == ("{{.Name}}.example.org",)
    assert (cfg.log_format, cfg.log_level) == ("json", "debug")
    assert cfg.etcd.endpoints == ("http://etcd-1:2379",)


def test_flags_win_over_the_environment_and_aliases_work() -> None:
    cfg = parse_config(["--once", "--txt-owner-id", "flag-owner", "--policy", "create-only",
                        "--coredns-prefix", "/other/", "--etcd-endpoints", "http://a:1,http://b:2",
                        "--domain-filter", "a.org", "--domain-filter", "b.org"],
                       env={"DNSSYNC_OWNER_ID": "env-owner", "DNSSYNC_DOMAIN_FILTER": "c.org",
                            "ETCD_URLS": "http://c:3"})
    assert (cfg.owner_id, cfg.prefix) == ("flag-owner", "/other")
    assert cfg.sources.domain_filter == ("a.org", "b.org")
    assert cfg.etcd.endpoints == ("http://a:1", "http://b:2")


@pytest.mark.parametrize(("argv", "env", "names"), [
    (["--once", "--policy", "sync"], {}, "--owner-id"),
    (["--once", "--owner-id", "me"], {}, "--policy is required (one of: sync, upsert-only, create-only), as in "
                                         "ExternalDNS v0.22"),
    ([*BASE, "--policy", "everything"], {}, "argument --policy: invalid choice"),
    (BASE, {"DNSSYNC_POLICY": "x"}, ""),  # the flag wins: no error
    (["--once", "--owner-id", "me"], {"DNSSYNC_POLICY": "x"}, "DNSSYNC_POLICY: invalid choice"),
    ([*BASE, "--bogus"], {}, "unrecognized arguments: --bogus"),
    ([*BASE, "--output", "yaml"], {}, "argument --output: invalid choice"),
    ([*BASE, "--source", "pods"], {}, "--source: invalid choice 'pods'"),
    ([*BASE, "--annotation-prefix", "custom.io"], {}, "--annotation-prefix: 'custom.io' must end with '/'"),
    ([*BASE, "--label-filter", "a in (b"], {}, "--label-filter: "),
    ([*BASE, "--annotation-filter", "=x"], {}, "--annotation-filter: "),
    ([*BASE, "--fqdn-template", "{{.Name"], {}, "--fqdn-template: "),
    ([*BASE, "--etcd-endpoints", "etcd:2379"], {}, "--etcd-endpoints: etcd URLs must start with"),
    (BASE, {"ETCD_URLS": "ftp://x"}, "ETCD_URLS: etcd URLs must start with"),
    (BASE, {"ETCD_CERT_FILE": "/nonexistent"}, "ETCD_CERT_FILE and ETCD_KEY_FILE must be set together"),
    (BASE, {"DNSSYNC_DRY_RUN": "maybe"}, "DNSSYNC_DRY_RUN: expected true or false"),
    ([*BASE, "--kubeconfig", "k", "--from-manifests", "m"], {}, "--kubeconfig and --from-manifests"),
    ([*BASE, "--prefix", "///"], {}, "--prefix: "),
])
def test_usage_errors_are_one_line_naming_the_flag(argv: list[str], env: dict[str, str], names: str) -> None:
    if not names:
        parse_config(argv, env=env)
        return
    with pytest.raises(UsageError) as info:
        parse_config(argv, env=env)
    assert names in str(info.value)
    assert "\n" not in str(info.value)


def test_without_once_the_syncer_runs_continuously_with_its_own_flags() -> None:
    cfg = parse_config(["--owner-id", "me", "--policy", "sync", "--http-listen", "[::1]:9000",
                        "--resync-interval", "1m30s"], env={})
    assert (cfg.once, cfg.http_listen, cfg.resync_interval) == (False, ("::1", 9000), 90.0)
    cfg = parse_config(["--owner-id", "me", "--policy", "sync"], env={"DNSSYNC_RESYNC_INTERVAL": "0"})
    assert (cfg.http_listen, cfg.resync_interval) == (("127.0.0.1", 8081), 0.0)


@pytest.mark.parametrize(("argv", "names"), [
    (["--http-listen", "8081"], "--http-listen: expected host:port"),
    (["--resync-interval", "soon"], "--resync-interval: not a duration"),
    (["--from-manifests", "-"], "--from-manifests -: stdin can't be watched"),
])
def test_continuous_usage_errors_name_the_flag(argv: list[str], names: str) -> None:
    with pytest.raises(UsageError, match=names):
        parse_config(["--owner-id", "me", "--policy", "sync", *argv], env={})


def test_run_usage_error_prints_one_line_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--once", "--owner-id", "me"], env={}) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("dnssync: error: --policy is required") and captured.err.count("\n") == 1
