"""The deployment, as each kustomize overlay renders it, starts what the CLIs accept and is locked down.

No Kubernetes cluster or Docker engine runs here, so this reads what ``kubectl kustomize`` renders for
``manifests/overlays/{dev,ha,external-etcd}`` (``tests/rendered.py``) and checks, per overlay:

* every dnssync container's command parses with the real argument parsers and the environment the kubelet would
  give it (``configMapKeyRef``/``envFrom`` resolved against the rendered ConfigMaps and Secrets); the zone, the
  domain filter, the owner id and the sources come from the one ConfigMap ``dnssync-config``, never a command;
* the syncer runs continuously, its probes ask ``/healthz`` and ``/readyz`` on the port ``--http-listen`` binds;
  the resolver's ports are the ones ``--listen`` binds, and the LoadBalancer maps 53/UDP and 53/TCP onto them with
  ``externalTrafficPolicy: Local``;
* RBAC is list + watch of exactly the kinds the configured sources read (plus the DNSEndpoint status), bound only
  to the syncer's service account;
* every pod runs restricted: non-root with a UID >= 10000, a read-only root file system, no privilege escalation,
  every capability dropped and none added, ``RuntimeDefault`` seccomp, CPU and memory requests and limits, no
  service-account token unless RBAC binds its account, images pinned by tag;
* NetworkPolicies: every pod is selected by one; etcd's client port admits only the syncer and the resolver (and
  the access Job), peers only members; the resolver's DNS is open, its metrics only to the monitoring namespace;
* etcd: every flag is a flag of the real ``etcd`` binary, every ``$(VAR)`` is a variable of its container; in the
  ha overlay the static bootstrap names exactly the replicas, TLS everywhere, and each process's client
  certificate carries the etcd user whose role ``skydns.access`` grants it;
* a PodDisruptionBudget for the syncer, the resolver and etcd in the ha overlay;
* ``docker-compose.yml``: its commands parse, its syncer watches the mounted examples, its healthcheck passes only
  when the syncer is ready.

Validators (``kubernetes-validate``, Checkov) run in ``tests/test_deploy_validators.py``.
"""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from devtools.localetcd import etcd_binary
from resolver.cli import parse_config as resolver_config
from skydns.access import ROOT as ETCD_ROOT_USER
from skydns.access import dnssync_roles, normalise_prefix
from skydns.grant import parse_args as access_args
from skydns.http import HealthServer
from syncer.cli import parse_config as syncer_config
from syncer.model import KINDS
from syncer.sources import kinds_for_sources
from tests.rendered import (
    OVERLAYS,
    ROOT,
    Obj,
    container_env,
    generated,
    name_of,
    one,
    overlay,
    pod_template,
    port_number,
    render_combined,
    selects,
    workloads,
)

PROGRAMS = ("dnssync", "dnssync-resolver", "dnssync-etcd-access")
STATUS_WRITES = {"crd": ("externaldns.k8s.io", "dnsendpoints/status")}  # sources that write an object's status


@dataclass(frozen=True)
class Container:
    where: str
    command: list[str]
    env: dict[str, str]
    spec: Obj  # the Kubernetes container, or the compose service
    pod: Obj  # the pod template (empty for compose)


def containers(name: str) -> list[Container]:
    return containers_of(name, overlay(name))


def containers_of(name: str, docs: list[Obj]) -> list[Container]:
    found = []
    for workload in workloads(docs):
        template = pod_template(workload)
        for c in template["spec"]["containers"]:
            if c["command"][0] in PROGRAMS:
                found.append(Container(f"{name}:{workload['kind']}/{name_of(workload)}", c["command"],
                                       container_env(docs, c), c, template))
    return found


FILE_VARIABLES = ("ETCD_CA_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE")


def runnable_env(c: Container, scratch: Path) -> dict[str, str]:
    """``c.env`` with each file it names (on a mounted Secret in the pod) stood in for by a file in ``scratch``:
    the CLIs check that the files exist."""
    env = dict(c.env)
    for var in FILE_VARIABLES:
        if var in env:
            mounted_secret(c.pod, c.spec, env[var])
            stand_in = scratch / var.lower()
            stand_in.write_text("placeholder\n")
            env[var] = str(stand_in)
    return env


def program(name: str, prog: str) -> list[Container]:
    return [c for c in containers(name) if c.command[0] == prog]


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_overlay_runs_a_syncer_and_a_resolver_and_no_cronjob(name: str) -> None:
    assert {c.command[0] for c in containers(name)} >= {"dnssync", "dnssync-resolver"}
    assert not {d["kind"] for d in overlay(name)} & {"CronJob"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_container_commands_parse_with_the_environment_they_get(name: str, tmp_path: Path) -> None:
    for c in containers(name):
        prog, *args = c.command
        env = runnable_env(c, tmp_path)
        if prog == "dnssync-resolver":
            assert resolver_config(args, env).zones == ("example.org.",), c.where
        elif prog == "dnssync":
            config = syncer_config(args, env)
            assert not config.once and not config.dry_run, f"{c.where}: the syncer runs continuously and writes"
            assert config.owner_id == "dnssync" and config.policy == "sync", c.where
            assert config.sources.domain_filter == ("example.org",), c.where
            assert config.http_listen[0] == "0.0.0.0", f"{c.where}: probes must reach it from outside"
        else:
            access_args(args)


@pytest.mark.parametrize("name", OVERLAYS)
def test_zone_domain_filter_owner_and_sources_are_set_only_in_the_config_map(name: str) -> None:
    docs = overlay(name)
    config = generated(docs, "ConfigMap", "dnssync-config")
    assert set(config["data"]) == {"zone", "domain-filter", "owner-id", "sources"}
    for c in containers(name):
        assert not [a for a in c.command if re.match(r"--(zone|domain-filter|owner-id|txt-owner-id|source)\b", a)]
        literal = {v["name"] for v in c.spec.get("env", []) if "value" in v}
        assert not literal & {"DNSSYNC_RESOLVER_ZONE", "DNSSYNC_DOMAIN_FILTER", "DNSSYNC_OWNER_ID", "DNSSYNC_SOURCE"}


def test_changing_the_config_map_reaches_both_processes() -> None:
    """The generator's hash is in the name both Deployments reference: an edit rolls them."""
    docs = overlay("dev")
    config = name_of(generated(docs, "ConfigMap", "dnssync-config"))
    for c in containers("dev"):
        if c.command[0] != "dnssync-etcd-access":
            refs = {v["valueFrom"]["configMapKeyRef"]["name"] for v in c.spec["env"] if "valueFrom" in v}
            assert refs == {config}, c.where


# -- probes and ports --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", OVERLAYS)
def test_probes_ask_the_port_the_process_serves_http_on(name: str, tmp_path: Path) -> None:
    for c in containers(name):
        prog, *args = c.command
        if prog == "dnssync-etcd-access":
            continue
        env = runnable_env(c, tmp_path)
        listen = (syncer_config(args, env) if prog == "dnssync" else resolver_config(args, env)).http_listen
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c.spec[probe]["httpGet"]
            assert get["path"] == path and port_number(c.spec, get["port"]) == listen[1], (c.where, probe)
        assert port_number(c.spec, "http") == listen[1], f"{c.where}: the metrics port is named http"


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_load_balancer_serves_53_udp_and_tcp_onto_the_resolver_and_keeps_client_addresses(name: str,
                                                                                           tmp_path: Path) -> None:
    docs = overlay(name)
    service = one(docs, "Service", "dnssync-resolver")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    (resolver,) = program(name, "dnssync-resolver")
    assert selects(service["spec"]["selector"], resolver.pod["metadata"]["labels"])
    listen = resolver_config(resolver.command[1:], runnable_env(resolver, tmp_path)).listen
    assert listen[0] == "0.0.0.0"
    mapped = {(p["port"], p["protocol"], port_number(resolver.spec, p["targetPort"])) for p in service["spec"]["ports"]}
    assert mapped == {(53, "UDP", listen[1]), (53, "TCP", listen[1])}
    protocols = {(p["containerPort"], p["protocol"]) for p in resolver.spec["ports"] if p["name"].startswith("dns")}
    assert protocols == {(listen[1], "UDP"), (listen[1], "TCP")}
    internal = one(docs, "Service", "dnssync-resolver-internal")
    assert internal["spec"]["type"] == "ClusterIP" and internal["spec"]["selector"] == service["spec"]["selector"]


# -- RBAC --------------------------------------------------------------------------------------------------------

def syncer_of(docs: list[Obj], scratch: Path) -> tuple[Container, tuple[str, ...]]:
    (syncer,) = [c for c in containers_of("rendered", docs) if c.command[0] == "dnssync"]
    return syncer, syncer_config(syncer.command[1:], runnable_env(syncer, scratch)).sources.sources


def assert_rbac_fits_the_sources(docs: list[Obj], scratch: Path) -> None:
    syncer, sources = syncer_of(docs, scratch)
    role = one(docs, "ClusterRole")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    wanted = {(KINDS[k].api_version.rpartition("/")[0], KINDS[k].field, verb)
              for k in kinds_for_sources(sources) for verb in ("list", "watch")}
    wanted |= {(*STATUS_WRITES[s], "update") for s in sources if s in STATUS_WRITES}
    assert granted == wanted
    assert not any("resourceNames" in r or "nonResourceURLs" in r for r in role["rules"])
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == name_of(role)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": syncer.pod["spec"]["serviceAccountName"],
                                    "namespace": "dnssync"}]


@pytest.mark.parametrize("name", OVERLAYS)
def test_rbac_is_list_and_watch_of_exactly_the_kinds_the_configured_sources_read(name: str, tmp_path: Path) -> None:
    assert_rbac_fits_the_sources(overlay(name), tmp_path)


def test_the_gateway_component_turns_on_the_route_sources_and_grants_exactly_what_they_read(tmp_path: Path) -> None:
    combined = tmp_path / "mine"
    combined.mkdir()
    docs = render_combined(combined, "ha", ["gateway-api"])
    _, sources = syncer_of(docs, tmp_path)
    assert {s for s in sources if s.startswith("gateway-")} == {
        "gateway-httproute", "gateway-grpcroute", "gateway-tlsroute", "gateway-tcproute", "gateway-udproute"}
    assert_rbac_fits_the_sources(docs, tmp_path)


# -- every pod locked down ---------------------------------------------------------------------------------------

def bound_accounts(docs: list[Obj]) -> set[str]:
    return {s["name"] for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding") for s in d["subjects"]
            if s["kind"] == "ServiceAccount"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_pod_runs_restricted_with_limits_and_a_token_only_where_rbac_needs_one(name: str) -> None:
    docs = overlay(name)
    for workload in workloads(docs):
        where = f"{name}:{name_of(workload)}"
        pod = pod_template(workload)["spec"]
        pod_security = pod.get("securityContext", {})
        assert pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}, where
        account = pod.get("serviceAccountName", "default")
        if account in bound_accounts(docs):
            assert pod.get("automountServiceAccountToken", True), where
        else:
            assert pod.get("automountServiceAccountToken") is False, f"{where}: a token nobody needs"
        assert not {"hostNetwork", "hostPID", "hostIPC"} & {k for k, v in pod.items() if v}, where
        for c in pod.get("initContainers", []) + pod["containers"]:
            security = pod_security | c.get("securityContext", {})
            assert security.get("runAsNonRoot") is True and security.get("runAsUser", 0) >= 10000, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False and not security.get("privileged"), where
            assert security.get("capabilities") == {"drop": ["ALL"]}, where
            for kind in ("requests", "limits"):
                assert set(c["resources"][kind]) == {"cpu", "memory"}, (where, kind)
            image, _, tag = c["image"].rpartition(":")
            assert image and tag and tag != "latest" and "/" in image, f"{where}: {c['image']} is not pinned"


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_namespace_enforces_the_restricted_pod_security_standard(name: str) -> None:
    labels = one(overlay(name), "Namespace", "dnssync")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# -- NetworkPolicies ---------------------------------------------------------------------------------------------

def policies_for(docs: list[Obj], labels: dict[str, str]) -> list[Obj]:
    return [p for p in docs if p["kind"] == "NetworkPolicy" and selects(p["spec"]["podSelector"], labels)]


def admitted(docs: list[Obj], labels: dict[str, str], container: Obj, port: int) -> list[Obj]:
    """The ``from`` peers of every ingress rule that lets traffic reach ``port`` of these pods ({} = anyone)."""
    peers: list[Obj] = []
    for policy in policies_for(docs, labels):
        for rule in policy["spec"].get("ingress", []):
            ports = [port_number(container, p["port"]) for p in rule.get("ports", [])]
            if not rule.get("ports") or port in ports:
                peers += rule.get("from") or [{}]
    return peers


def pods_by_name(docs: list[Obj]) -> dict[str, Obj]:
    return {pod_template(w)["metadata"]["labels"]["app.kubernetes.io/name"]: pod_template(w) for w in workloads(docs)}


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_pod_is_selected_by_a_network_policy(name: str) -> None:
    docs = overlay(name)
    for app, pod in pods_by_name(docs).items():
        assert policies_for(docs, pod["metadata"]["labels"]), f"{name}: no NetworkPolicy selects {app}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_resolver_takes_dns_from_anyone_and_metrics_only_from_monitoring(name: str) -> None:
    docs = overlay(name)
    (resolver,) = program(name, "dnssync-resolver")
    labels = resolver.pod["metadata"]["labels"]
    assert admitted(docs, labels, resolver.spec, port_number(resolver.spec, "dns-udp")) == [{}]
    assert admitted(docs, labels, resolver.spec, port_number(resolver.spec, "http")) == [
        {"namespaceSelector": {"matchLabels": {"dnssync/monitoring": "true"}}}]
    (syncer,) = program(name, "dnssync")
    assert admitted(docs, syncer.pod["metadata"]["labels"], syncer.spec, port_number(syncer.spec, "http")) == [
        {"namespaceSelector": {"matchLabels": {"dnssync/monitoring": "true"}}}]


@pytest.mark.parametrize("name", ["dev", "ha"])
def test_etcd_takes_clients_only_from_the_syncer_and_the_resolver_and_peers_only_from_members(name: str) -> None:
    docs = overlay(name)
    pods = pods_by_name(docs)
    (etcd_set,) = [w for w in workloads(docs) if w["kind"] == "StatefulSet"]
    etcd_pod = pod_template(etcd_set)
    (etcd,) = etcd_pod["spec"]["containers"]
    peers = admitted(docs, etcd_pod["metadata"]["labels"], etcd, 2379)
    assert all(set(p) == {"podSelector"} for p in peers), f"{name}: etcd's client port is open to {peers}"
    allowed = {app for app, pod in pods.items() if any(selects(p["podSelector"], pod["metadata"]["labels"])
                                                        for p in peers)}
    expected = {"dnssync-syncer", "dnssync-resolver"} | ({"dnssync-etcd-access", "dnssync-etcd-ha"}
                                                         if name == "ha" else set())
    assert allowed == expected
    if name == "ha":
        members = admitted(docs, etcd_pod["metadata"]["labels"], etcd, port_number(etcd, "peer"))
        assert [selects(p["podSelector"], etcd_pod["metadata"]["labels"]) for p in members] == [True]


# -- etcd: flags of the binary, the HA bootstrap, TLS and users --------------------------------------------------

@functools.cache
def etcd_flags() -> frozenset[str]:
    """The flags of the etcd binary the tests run (``etcd --help``)."""
    text = subprocess.run([etcd_binary(), "--help"], capture_output=True, text=True, timeout=30)
    return frozenset(re.findall(r"^\s+(--[a-z0-9-]+)", text.stdout + text.stderr, re.MULTILINE))


def etcd_containers() -> list[tuple[str, list[str], Obj]]:
    found = [(f"{name}:{name_of(w)}", c["command"], c) for name in OVERLAYS for w in workloads(overlay(name))
             for c in pod_template(w)["spec"]["containers"] if c["image"].startswith("quay.io/coreos/etcd")]
    found += [(f"compose:{name}", s["command"], s) for name, s in compose()["services"].items()
              if s.get("image", "").startswith("quay.io/coreos/etcd")]
    return found


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


ETCD = etcd_containers()


def test_every_etcd_layout_is_checked() -> None:
    assert sorted(w for w, _, _ in ETCD) == ["compose:etcd", "dev:dnssync-etcd", "ha:dnssync-etcd-ha"]


@pytest.mark.parametrize(("where", "command", "container"), ETCD, ids=[w for w, _, _ in ETCD])
def test_etcd_container_flags_are_flags_of_etcd(where: str, command: list[str], container: Obj) -> None:
    assert command[0] == "etcd"
    flags = [arg.partition("=")[0] for arg in command[1:]]
    assert all(arg.startswith("--") and "=" in arg for arg in command[1:]), f"{where}: use --flag=value"
    assert set(flags) <= etcd_flags(), f"{where}: unknown flags {set(flags) - etcd_flags()}"
    assert len(flags) == len(set(flags)), where
    env = {e["name"] for e in container.get("env", [])} if isinstance(container.get("env"), list) else set()
    used = {v for arg in command for v in re.findall(r"\$\((\w+)\)", arg)}
    assert used <= env, f"{where}: $(...) of variables the container does not set: {used - env}"


def flag_values(command: list[str]) -> dict[str, str]:
    return dict(arg.removeprefix("--").partition("=")[::2] for arg in command[1:])


def mounted_secret(pod: Obj, container: Obj, path: str) -> str:
    """The Secret whose volume holds the file ``path`` in this container."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        if PurePosixPath(path).is_relative_to(mount["mountPath"]):
            return str(volumes[mount["name"]]["secret"]["secretName"])
    raise AssertionError(f"{path} is on no mounted volume")


HA = overlay("ha")
HA_SET = one(HA, "StatefulSet", "dnssync-etcd-ha")
HA_POD = pod_template(HA_SET)
(HA_ETCD,) = HA_POD["spec"]["containers"]
HA_FLAGS = flag_values(HA_ETCD["command"])


def test_ha_initial_cluster_names_every_replica_at_its_stable_name_under_the_peer_service() -> None:
    name, namespace = name_of(HA_SET), HA_SET["metadata"]["namespace"]
    peer = one(HA, "Service", HA_SET["spec"]["serviceName"])
    assert peer["spec"]["clusterIP"] == "None" and peer["spec"]["publishNotReadyAddresses"] is True
    assert selects(peer["spec"]["selector"], HA_POD["metadata"]["labels"])
    peer_port = port_number(HA_ETCD, "peer")
    assert urlsplit(HA_FLAGS["listen-peer-urls"]).port == peer_port
    members = dict(entry.split("=", 1) for entry in HA_FLAGS["initial-cluster"].split(","))
    pods = [f"{name}-{i}" for i in range(HA_SET["spec"]["replicas"])]
    service = name_of(peer)
    assert members == {pod: f"https://{pod}.{service}.{namespace}.svc:{peer_port}" for pod in pods}
    for pod in pods:  # each pod names itself and advertises exactly its own entry
        assert HA_FLAGS["name"].replace("$(POD_NAME)", pod) == pod
        assert HA_FLAGS["initial-advertise-peer-urls"].replace("$(POD_NAME)", pod) == members[pod]
    assert HA_FLAGS["initial-cluster-state"] == "new" and HA_SET["spec"]["podManagementPolicy"] == "Parallel"
    clients = {c.where: c.env["ETCD_URLS"].split(",") for c in containers("ha")}
    expected = [f"https://{pod}.{service}.{namespace}.svc:{port_number(HA_ETCD, 'client')}" for pod in pods]
    assert all(urls == expected for urls in clients.values()), clients


def test_ha_members_one_per_node_a_quorum_kept_data_on_claims_and_probes() -> None:
    labels = HA_POD["metadata"]["labels"]
    terms = HA_POD["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(t["topologyKey"] == "kubernetes.io/hostname" and selects(t["labelSelector"], labels) for t in terms)
    replicas = HA_SET["spec"]["replicas"]
    assert replicas >= 3 and replicas % 2 == 1
    mounts = {m["name"]: m["mountPath"] for m in HA_ETCD["volumeMounts"]}
    claims = [c["metadata"]["name"] for c in HA_SET["spec"]["volumeClaimTemplates"]]
    assert any(Path(HA_FLAGS["data-dir"]).is_relative_to(mounts[c]) for c in claims)
    metrics = port_number(HA_ETCD, "metrics")
    assert urlsplit(HA_FLAGS["listen-metrics-urls"]).port == metrics
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = HA_ETCD[probe]["httpGet"]
        assert get["path"].split("?")[0] == "/health" and port_number(HA_ETCD, get["port"]) == metrics, probe
    assert HA_ETCD["readinessProbe"]["httpGet"]["path"] == "/health"  # ready = serves linearizable reads


def test_ha_has_a_disruption_budget_for_the_syncer_the_resolver_and_etcd_that_keeps_each_serving() -> None:
    budgets = [d for d in HA if d["kind"] == "PodDisruptionBudget"]
    for workload in workloads(HA):
        if workload["kind"] == "Job":
            continue
        labels = pod_template(workload)["metadata"]["labels"]
        (budget,) = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        replicas = workload["spec"]["replicas"]
        assert replicas >= 2, name_of(workload)
        quorum = replicas // 2 + 1 if workload["kind"] == "StatefulSet" else 1
        assert 1 <= budget["spec"]["maxUnavailable"] <= replicas - quorum, name_of(workload)


def test_ha_etcd_speaks_tls_to_clients_and_peers_and_requires_their_certificates() -> None:
    for flag in ("listen-client-urls", "advertise-client-urls", "listen-peer-urls", "initial-advertise-peer-urls"):
        assert urlsplit(HA_FLAGS[flag]).scheme == "https", flag
    assert HA_FLAGS["client-cert-auth"] == HA_FLAGS["peer-client-cert-auth"] == "true"
    certificates = {d["spec"]["secretName"]: d["spec"] for d in HA if d["kind"] == "Certificate"}
    for flag, common_name in (("cert-file", "dnssync-etcd"), ("peer-cert-file", "dnssync-etcd-peer")):
        secret = mounted_secret(HA_POD, HA_ETCD, HA_FLAGS[flag])
        assert certificates[secret]["commonName"] == common_name
        key_flag = flag.replace("cert-file", "key-file")
        assert mounted_secret(HA_POD, HA_ETCD, HA_FLAGS[key_flag]) == secret
    server = certificates[mounted_secret(HA_POD, HA_ETCD, HA_FLAGS["cert-file"])]
    host = urlsplit(containers("ha")[0].env["ETCD_URLS"].split(",")[0]).hostname or ""
    assert f"*.{host.split('.', 1)[1]}" in server["dnsNames"], "the members' names are on the server certificate"


def test_ha_each_process_authenticates_as_the_etcd_user_whose_role_fits_it(tmp_path: Path) -> None:
    syncer_role, resolver_role = dnssync_roles()
    users = {"dnssync": syncer_role.name, "dnssync-resolver": resolver_role.name,
             "dnssync-etcd-access": ETCD_ROOT_USER}
    certificates = {d["spec"]["secretName"]: d["spec"] for d in HA if d["kind"] == "Certificate"}
    for c in containers("ha"):
        assert c.env["ETCD_URLS"].startswith("https://") and "ETCD_USERNAME" not in c.env, c.where
        secret = mounted_secret(c.pod, c.spec, c.env["ETCD_CERT_FILE"])
        assert mounted_secret(c.pod, c.spec, c.env["ETCD_KEY_FILE"]) == secret
        assert certificates[secret]["commonName"] == users[c.command[0]], c.where
        assert "client auth" in certificates[secret]["usages"], c.where
    (job,) = program("ha", "dnssync-etcd-access")
    args = access_args(job.command[1:])
    (syncer,) = program("ha", "dnssync")
    config = syncer_config(syncer.command[1:], runnable_env(syncer, tmp_path))
    granted = [normalise_prefix(p) for p in (args.prefix, args.election_prefix)]
    assert granted == [normalise_prefix(p) for p in (config.prefix, config.election_prefix)]


def test_external_etcd_reads_the_etcd_settings_from_a_secret_and_mounts_optional_tls_files() -> None:
    docs = overlay("external-etcd")
    secret = generated(docs, "Secret", "dnssync-etcd")
    for c in containers("external-etcd"):
        assert c.spec["envFrom"] == [{"secretRef": {"name": name_of(secret)}}], c.where
        volumes = {v["name"]: v for v in c.pod["spec"]["volumes"]}
        (mount,) = c.spec["volumeMounts"]
        assert volumes[mount["name"]]["secret"]["optional"] is True
        assert urlsplit(c.env["ETCD_URLS"].split(",")[0]).scheme == "https"
    assert not [w for w in workloads(docs) if w["kind"] == "StatefulSet"], "no etcd of our own"


# -- the syncer: two replicas, one writer -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ha", "external-etcd"])
def test_the_syncer_runs_two_replicas_spread_over_nodes_with_a_grace_period_for_the_handover(name: str,
                                                                                           tmp_path: Path) -> None:
    deployment = one(overlay(name), "Deployment", "dnssync")
    assert deployment["spec"]["replicas"] == 2
    pod = pod_template(deployment)
    labels = pod["metadata"]["labels"]
    spread = [c for c in pod["spec"].get("topologySpreadConstraints", [])
              if c["topologyKey"] == "kubernetes.io/hostname" and selects(c["labelSelector"], labels)]
    assert spread, "the two replicas are not spread over nodes"
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 15
    (syncer,) = program(name, "dnssync")
    config = syncer_config(syncer.command[1:], runnable_env(syncer, tmp_path))
    assert config.election_ttl + 2 <= 15  # a vanished leader is replaced within ~TTL + 2 s


# -- docker-compose ----------------------------------------------------------------------------------------------

def image_entrypoint() -> list[str]:
    line = next(x for x in (ROOT / "Dockerfile").read_text().splitlines() if x.startswith("ENTRYPOINT"))
    entrypoint: list[str] = yaml.safe_load(line.removeprefix("ENTRYPOINT"))
    return entrypoint


def compose_services() -> list[Container]:
    found = []
    for name, service in compose()["services"].items():
        if "build" in service:
            command = [*service.get("entrypoint", image_entrypoint()), *service.get("command", [])]
            found.append(Container(f"compose:{name}", command, service.get("environment", {}), service, {}))
    return found


COMPOSE = compose_services()


def test_compose_runs_a_syncer_and_a_resolver() -> None:
    assert sorted(c.command[0] for c in COMPOSE) == ["dnssync", "dnssync-resolver"]


@pytest.mark.parametrize("container", COMPOSE, ids=[c.where for c in COMPOSE])
def test_compose_commands_parse(container: Container) -> None:
    prog, *args = container.command
    if prog == "dnssync-resolver":
        assert resolver_config(args, container.env).zones
    else:
        config = syncer_config(args, container.env)
        assert not config.once and config.owner_id and config.policy == "sync"
        assert config.http_listen[0] == "0.0.0.0"


def compose_syncer() -> Container:
    (syncer,) = [c for c in COMPOSE if c.command[0] == "dnssync"]
    return syncer


def test_compose_syncer_watches_the_mounted_examples() -> None:
    syncer = compose_syncer()
    (folder,) = syncer_config(syncer.command[1:], syncer.env).from_manifests
    assert f"./manifests/examples:{folder}:ro" in syncer.spec["volumes"]


async def run_healthcheck(test: list[str], port: int) -> int:
    """The compose healthcheck command, with this Python and the probe server's port; its exit code."""
    assert test[0] == "CMD" and test[1] == "python", test
    argv = [sys.executable, *[arg.replace("127.0.0.1:8081/", f"127.0.0.1:{port}/") for arg in test[2:]]]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 30)


async def test_compose_healthcheck_passes_only_when_the_syncer_is_ready() -> None:
    syncer = compose_syncer()
    test = syncer.spec["healthcheck"]["test"]
    url = re.search(r"http://127\.0\.0\.1:(\d+)/readyz", " ".join(test))
    assert url is not None, test
    assert int(url.group(1)) == syncer_config(syncer.command[1:], syncer.env).http_listen[1] == 8081
    ready = False
    server = HealthServer("127.0.0.1", 0, lambda: ready, lambda: (True, {}))
    await server.start()
    try:
        assert await run_healthcheck(test, server.port) != 0, "healthy while /readyz is 503"
        ready = True
        assert await run_healthcheck(test, server.port) == 0, "unhealthy while /readyz is 200"
    finally:
        await server.close()
