"""The monitoring kit in manifests/monitoring: alert rules, their unit tests, the Operator objects and the dashboard.

* ``promtool check rules`` and ``promtool test rules`` pass (Debian's ``prometheus`` package; ``make tools``), the
  unit tests cover every alert firing and not firing, and a rule changed under them makes them fail;
* ``prometheusrule.yaml`` carries exactly the groups of ``dnssync.rules.yml`` (``python -m tests.test_monitoring``
  rewrites it from the rule file);
* ``kubectl kustomize manifests/monitoring`` builds; the core objects pass ``kubernetes-validate`` strictly; the
  Operator's kinds (PodMonitor, ServiceMonitor, PrometheusRule) are not in its schemas, so they get a structural
  check instead: their selectors pick the pods (and metrics Services) the base manifests define, on a port named
  ``http`` that those pods really have;
* against a real stack - a real etcd, the resolver (``--workers 2``, one view, forwarding) and the continuous syncer
  over the fake API server, each a real process - every metric name a rule or a dashboard panel uses is one the
  processes export, and a real Prometheus (``/usr/bin/prometheus``, loopback, 1 s scrapes) scraping them has every
  series the rules use, loaded the rules with health ok, shows exactly the alert a dead forwarding upstream causes
  (and none other), and answers every dashboard query with data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devtools.localetcd import LocalEtcd, free_port
from tests.fakekube import FakeKubeServer
from tests.processes import Process, ask, http_status, wait_until
from tests.syncer.source_objects import hostname, service

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "manifests" / "monitoring"
RULES = MONITORING / "dnssync.rules.yml"
RULE_TESTS = MONITORING / "dnssync.rules.test.yml"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
OPERATOR_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
# Exported, but a series only after an event the test cannot cause in seconds: checked in Prometheus's metadata.
EVENT_ONLY = {"dnssync_watch_restarts_total": "a watch silent for the reflector's 70 s inactivity timeout"}
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (apt-get install prometheus)")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing (apt-get install prometheus)")
WAIT = 60.0  # seconds: generous deadlines on a loaded 2-core machine

Obj = dict[str, Any]


# -- reading the kit ------------------------------------------------------------------------------------------------


def load_rules() -> Obj:
    rules: Obj = yaml.safe_load(RULES.read_text())
    return rules


def alerts() -> list[Obj]:
    return [rule for group in load_rules()["groups"] for rule in group["rules"]]


def dashboard() -> Obj:
    data: Obj = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels() -> list[Obj]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (``up`` and every ``dnssync_*``); label values are skipped."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names = set(re.findall(r"\b(dnssync_[a-z0-9_]+)\b", bare))
    if re.search(r"\bup\s*\{", bare):
        names.add("up")
    return names


def rule_metric_names() -> set[str]:
    return set().union(*(metric_names(rule["expr"]) for rule in alerts()))


def dashboard_metric_names() -> set[str]:
    exprs = [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]
    return set().union(*(metric_names(e) for e in exprs))


def render_prometheus_rule() -> str:
    """prometheusrule.yaml as generated from dnssync.rules.yml."""

    def block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(str, block)
    obj = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "dnssync", "namespace": "dnssync", "labels": {"app.kubernetes.io/part-of": "dnssync"}},
           "spec": {"groups": load_rules()["groups"]}}
    header = ("# The alert rules of dnssync.rules.yml for the Prometheus Operator - generated, do not edit: change\n"
              "# dnssync.rules.yml, then `.venv/bin/python -m tests.test_monitoring` (tests/test_monitoring.py checks\n"
              "# that the two carry the same groups). Your Prometheus's ruleSelector may want a label added here.\n")
    return header + yaml.dump(obj, Dumper=Dumper, sort_keys=False, width=120, allow_unicode=True)


def run(*argv: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, timeout=60)


# -- promtool -------------------------------------------------------------------------------------------------------


@needs_promtool
def test_promtool_check_rules_accepts_every_rule() -> None:
    assert PROMTOOL is not None
    result = run(PROMTOOL, "check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    for rule in alerts():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    assert PROMTOOL is not None
    result = run(PROMTOOL, "test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_see_every_alert_fire_and_stay_quiet() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    evaluated = [case for group in tests for case in group.get("alert_rule_test", [])]
    for name in (rule["alert"] for rule in alerts()):
        mine = [case for case in evaluated if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no case where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no case where it stays quiet"


@needs_promtool
def test_the_unit_tests_fail_when_a_threshold_is_changed(tmp_path: Path) -> None:
    text = RULES.read_text()
    slow = "(rate(dnssync_event_to_commit_seconds_bucket[5m]))) > 1"
    assert slow in text
    (tmp_path / RULES.name).write_text(text.replace(slow, slow[:-1] + "3"))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    assert PROMTOOL is not None
    result = run(PROMTOOL, "test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "DnssyncEventToCommitSlow" in result.stdout + result.stderr


def test_the_prometheus_rule_carries_exactly_the_rule_file() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"]["groups"] == load_rules()["groups"], "regenerate: .venv/bin/python -m tests.test_monitoring"
    assert PROMETHEUS_RULE.read_text() == render_prometheus_rule()


# -- the Kubernetes objects ------------------------------------------------------------------------------------------


def kustomize(path: Path) -> list[Obj]:
    result = run("kubectl", "kustomize", str(path), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate_core(doc: Obj) -> None:
    """Strict schema validation of a core Kubernetes object (raises on any unknown or wrong field)."""
    assert doc["kind"] not in OPERATOR_KINDS
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def base_pod_templates() -> dict[str, Obj]:
    """component -> the pod template of the base manifests' workload with that component label."""
    found: dict[str, Obj] = {}
    for path in sorted((ROOT / "manifests" / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in {"Deployment", "StatefulSet"}:
                template = doc["spec"]["template"]
                component = template["metadata"].get("labels", {}).get("app.kubernetes.io/component")
                if component:
                    found[component] = template
    return found


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def named_ports(template: Obj) -> set[str]:
    return {port["name"] for c in template["spec"]["containers"] for port in c.get("ports", []) if "name" in port}


@dataclass(frozen=True)
class Scrape:
    """What one monitor object scrapes."""

    component: str
    job: str
    port: str


def scrape_of(monitor: Obj) -> Scrape:
    endpoints = monitor["spec"].get("podMetricsEndpoints") or monitor["spec"]["endpoints"]
    assert len(endpoints) == 1
    relabel = endpoints[0]["relabelings"]
    jobs = [r["replacement"] for r in relabel if r.get("targetLabel") == "job"]
    assert endpoints[0]["path"] == "/metrics" and monitor["spec"]["namespaceSelector"] == {"matchNames": ["dnssync"]}
    return Scrape(monitor["metadata"]["labels"]["app.kubernetes.io/component"], jobs[0], endpoints[0]["port"])


def test_kustomize_builds_the_monitoring_kit_and_the_core_objects_validate() -> None:
    docs = kustomize(MONITORING)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "PodMonitor", "PodMonitor", "PrometheusRule"]
    assert {d["metadata"]["namespace"] for d in docs} == {"dnssync"}
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:  # the Operator's CRDs are not in kubernetes-validate's schemas
            validate_core(doc)
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["grafana-dashboard.json"]) == dashboard()
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == load_rules()["groups"]


def test_the_pod_monitors_select_the_base_pods_on_their_http_port() -> None:
    templates = base_pod_templates()
    monitors = [d for d in kustomize(MONITORING) if d["kind"] == "PodMonitor"]
    scrapes = {scrape_of(m) for m in monitors}
    assert scrapes == {Scrape("resolver", "dnssync-resolver", "http"), Scrape("syncer", "dnssync-syncer", "http")}
    for monitor in monitors:
        component = monitor["metadata"]["labels"]["app.kubernetes.io/component"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        chosen = [c for c, t in templates.items() if selects(selector, t["metadata"]["labels"])]
        assert chosen == [component]
        assert "http" in named_ports(templates[component])


def test_the_service_monitor_alternative_validates_and_reaches_the_same_pods() -> None:
    docs = [d for d in yaml.safe_load_all((MONITORING / "servicemonitor.yaml").read_text()) if d]
    services = [d for d in docs if d["kind"] == "Service"]
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    for svc in services:
        validate_core(svc)
        assert svc["spec"]["clusterIP"] == "None"
    assert {scrape_of(m) for m in monitors} == {Scrape("resolver", "dnssync-resolver", "http"),
                                                 Scrape("syncer", "dnssync-syncer", "http")}
    templates = base_pod_templates()
    for monitor in monitors:
        component = monitor["metadata"]["labels"]["app.kubernetes.io/component"]
        chosen = [s for s in services if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert len(chosen) == 1
        svc = chosen[0]
        pods = [c for c, t in templates.items() if selects(svc["spec"]["selector"], t["metadata"]["labels"])]
        assert pods == [component]
        assert [p["name"] for p in svc["spec"]["ports"]] == ["http"]
        assert svc["spec"]["ports"][0]["targetPort"] in named_ports(templates[component])


def test_the_dashboard_is_a_current_grafana_dashboard_on_a_datasource_variable() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["datasource"] == panel["datasource"] for t in panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    titles = " ".join(p["title"] for p in dashboard_panels()).lower()
    for subject in ("rcode", "answer latency", "hit ratio", "records", "event to commit", "leader", "etcd", "relist"):
        assert subject in titles


# -- a real stack ----------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    etcd: LocalEtcd
    kube: FakeKubeServer
    resolver_http: int
    resolver_dns: int
    syncer_http: int
    dead_upstream: str


def _syncer(kube: FakeKubeServer, etcd: LocalEtcd, port: int, tmp: Path, log: Any) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DNSSYNC_", "ETCD_"))}
    kubeconfig = kube.write_kubeconfig(tmp / "kubeconfig")
    return subprocess.Popen([sys.executable, "-m", "syncer", "--owner-id", "cluster-a", "--policy", "sync",
                             "--kubeconfig", str(kubeconfig), "--etcd-endpoints", etcd.endpoint,
                             "--http-listen", f"127.0.0.1:{port}", "--log-format", "json"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _metrics(port: int) -> str:
    status, body = http_status(port, "/metrics")
    assert status == 200
    return body.decode()


def samples(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    """``(labels, value)`` of every sample called ``name`` on the process's /metrics."""
    return [(dict(s.labels), s.value) for family in text_string_to_metric_families(_metrics(port))
            for s in family.samples if s.name == name]


def _addresses(port: int, name: str) -> set[str]:
    rcode, answer = ask(port, name, "A")
    return {rdata for _, rtype, rdata in answer if rtype == "A"} if rcode == "NOERROR" else set()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """etcd, the continuous syncer over the fake API server and a 2-worker resolver with a view and a dead
    forwarding upstream, with traffic: a published name, answers of two rcodes, a failed forward, a relist, a
    change committed."""
    tmp = tmp_path_factory.mktemp("monitoring")
    resolver_http, resolver_dns, syncer_http, dead = free_port(), free_port(), free_port(), free_port()
    web = "web.example.org."
    with LocalEtcd() as etcd, FakeKubeServer() as kube, contextlib.ExitStack() as stop:
        kube.apply(service("web", annotations=hostname("web.example.org"), lb=[{"ip": "10.0.0.1"}]))
        log = stop.enter_context((tmp / "syncer.log").open("w"))
        syncer = _syncer(kube, etcd, syncer_http, tmp, log)
        stop.callback(syncer.wait, 15)
        stop.callback(syncer.terminate)
        resolver = Process(["--zone", "example.org.", "--etcd-endpoints", etcd.endpoint,
                            "--listen", f"127.0.0.1:{resolver_dns}", "--http-listen", f"127.0.0.1:{resolver_http}",
                            "--workers", "2", "--view", "inside=10.99.0.0/16",
                            "--forward", f"127.0.0.1:{dead}", "--forward-timeout", "300ms",
                            "--allow-recursion", "127.0.0.0/8"],
                           tmp / "resolver.log", env={"DNSSYNC_RESOLVER_LOG_FORMAT": "json"})
        stop.callback(resolver.stop)
        wait_until(lambda: http_status(syncer_http, "/readyz")[0] == 200, WAIT, "the syncer's first sync")
        wait_until(lambda: http_status(resolver_http, "/readyz")[0] == 200, WAIT, "the resolver's first load")
        wait_until(lambda: _addresses(resolver_dns, web) == {"10.0.0.1"}, WAIT, "web.example.org published")
        assert ask(resolver_dns, "nothing.example.org.", "A")[0] == "NXDOMAIN"
        assert ask(resolver_dns, "example.net.", "A")[0] == "SERVFAIL"  # forwarded to a port nobody listens on
        wait_until(lambda: [v for _, v in samples(resolver_http, "dnssync_resolver_forward_upstream_down")
                            if v == 1.0], WAIT, "the dead upstream marked down")
        kube.compact()
        kube.expire_watches("Service")  # 410 Expired: the service reflector relists
        wait_until(lambda: samples(syncer_http, "dnssync_relists_total"), WAIT, "the relist counted")
        kube.apply(service("web", annotations=hostname("web.example.org"), lb=[{"ip": "10.0.0.2"}]))
        wait_until(lambda: _addresses(resolver_dns, web) == {"10.0.0.2"}, WAIT, "the change answered")
        yield Stack(etcd, kube, resolver_http, resolver_dns, syncer_http, f"127.0.0.1:{dead}")


def exported_names(text: str) -> set[str]:
    """Every sample name a /metrics text declares, whether or not the family has samples yet."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum", "_created"), "summary": ("", "_count", "_sum", "_created"),
                "info": ("_info",)}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_the_rules_and_the_dashboard_use_is_exported(stack: Stack) -> None:
    resolver = exported_names(_metrics(stack.resolver_http))
    syncer = exported_names(_metrics(stack.syncer_http))
    used = rule_metric_names() | dashboard_metric_names()
    assert used - {"up"} - resolver - syncer == set()
    assert {n for n in used if n.startswith("dnssync_resolver_")} <= resolver
    assert {n for n in used if n.startswith("dnssync_") and not n.startswith("dnssync_resolver_")} <= syncer


class PrometheusServer:
    """``/usr/bin/prometheus`` on a free loopback port, scraping the stack every second with the rules loaded."""

    def __init__(self, stack: Stack, tmp: Path) -> None:
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(RULES)],
                  "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                                     for job, port in (("dnssync-resolver", stack.resolver_http),
                                                       ("dnssync-syncer", stack.syncer_http))]}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        assert PROMETHEUS is not None
        self.log = (tmp / "prometheus.log").open("w")
        self.proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={tmp / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[Obj]:
        result: list[Obj] = self.api("query", query=expr)["result"]
        return result

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        finally:
            self.log.close()


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(stack, tmp_path_factory.mktemp("prometheus"))
    try:
        wait_until(lambda: http_status(server.port, "/-/ready")[0] == 200, WAIT, "prometheus ready")
        yield server
    finally:
        server.stop()


def _targets_up(prom: PrometheusServer) -> dict[str, str]:
    return {t["labels"]["job"]: t["health"] for t in prom.api("targets")["activeTargets"]}


@needs_prometheus
def test_prometheus_scrapes_both_and_has_every_series_the_rules_use(prometheus: PrometheusServer) -> None:
    wait_until(lambda: _targets_up(prometheus) == {"dnssync-resolver": "up", "dnssync-syncer": "up"}, WAIT,
               "both targets up")
    wanted = rule_metric_names() - set(EVENT_ONLY)

    def missing() -> set[str] | None:
        gone = {name for name in wanted if not prometheus.query(f"count({{__name__={json.dumps(name)}}})")}
        return gone or None

    with contextlib.suppress(AssertionError):
        wait_until(lambda: missing() is None, WAIT, "every series")
    assert missing() is None
    for name in EVENT_ONLY:  # declared by the process and seen by Prometheus, no sample yet
        assert prometheus.api("targets/metadata", metric=name), name
    for job in ("dnssync-resolver", "dnssync-syncer"):
        assert prometheus.query(f'up{{job="{job}"}} == 1'), job


def _rule_health(prom: PrometheusServer) -> dict[str, tuple[str, str]]:
    return {rule["name"]: (rule["health"], rule.get("lastError", "")) for group in prom.api("rules")["groups"]
            for rule in group["rules"]}


@needs_prometheus
def test_prometheus_loads_every_rule_healthy_and_only_the_dead_upstream_alerts(prometheus: PrometheusServer,
                                                                               stack: Stack) -> None:
    names = {rule["alert"] for rule in alerts()}
    wait_until(lambda: set(_rule_health(prometheus)) == names
               and all(h == "ok" for h, _ in _rule_health(prometheus).values()), WAIT, "every rule evaluated")
    assert {name: err for name, (_, err) in _rule_health(prometheus).items() if err} == {}

    def active() -> list[tuple[str, str | None, str]]:
        return sorted((a["labels"]["alertname"], a["labels"].get("upstream"), a["state"])
                      for a in prometheus.api("alerts")["alerts"])

    expected = [("DnssyncResolverForwardUpstreamDown", stack.dead_upstream, "pending")]
    # Right after Prometheus starts, DnssyncSyncerAbsent is pending until the first syncer scrape: wait it out.
    with contextlib.suppress(AssertionError):
        wait_until(lambda: active() == expected, WAIT, "only the dead upstream's alert")
    assert active() == expected


@needs_prometheus
def test_every_dashboard_query_answers_with_data(prometheus: PrometheusServer) -> None:
    wait_until(lambda: prometheus.query("dnssync_resolver_responses_total") and prometheus.query("dnssync_leader"),
               WAIT, "the first scrapes")

    def answered(panel: Obj) -> bool:
        exprs = [t["expr"].replace("$__rate_interval", "1m") for t in panel["targets"]]
        return any(prometheus.query(e) for e in exprs)

    def silent() -> list[str] | None:
        titles = [p["title"] for p in dashboard_panels() if not answered(p)]
        return titles or None

    with contextlib.suppress(AssertionError):
        wait_until(lambda: silent() is None, WAIT, "data in every panel")
    assert silent() is None


if __name__ == "__main__":
    PROMETHEUS_RULE.write_text(render_prometheus_rule())
