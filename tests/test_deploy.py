"""The deployment files start the processes with flags and variables the CLIs accept, and probe what they serve.

No Kubernetes cluster or Docker engine runs here, so this checks what can be checked without one:

* every container command in ``manifests/*.yaml`` and ``docker-compose.yml`` (entrypoint + command; the
  ``Dockerfile``'s ``ENTRYPOINT`` when a service sets none) parses with the real argument parsers and environment;
* the syncer runs continuously (no ``--once``, no CronJob or Job left), its Kubernetes liveness probe asks
  ``/healthz`` and its readiness probe ``/readyz`` on the port ``--http-listen`` binds, on all interfaces;
* its RBAC is exactly list + watch of the kinds the sources read;
* the compose healthcheck, run with this Python against a real probe server, fails while ``/readyz`` is 503 and
  passes once it is 200;
* every manifest is what the API server accepts, field by field: each object is read against the models of the
  official ``kubernetes`` client (generated from the API's OpenAPI schema) - an unknown field or a value of the
  wrong type fails, as ``kubectl apply --validate=strict`` would, and so does a missing required field;
* every etcd container's flags are flags of the real ``etcd`` binary (``etcd --help``), and every ``$(VAR)`` in a
  command is a variable of its container;
* the HA layout (``etcd-ha.yaml``): the StatefulSet's ``--initial-cluster`` names exactly its replicas' pods at
  their stable DNS names under its headless peer Service (which publishes not-ready pods), each pod advertises its
  own entry, one member per node (pod anti-affinity), a PodDisruptionBudget that keeps a quorum, a volume claim
  holding ``--data-dir``, probes on ``/health`` at the port ``--listen-metrics-urls`` binds, requests and limits;
  both etcd layouts serve the client Service the syncer and the resolver use, and share no pods or volumes;
* the syncer runs 2 replicas spread over nodes, a PodDisruptionBudget selects its pods and leaves one running,
  and its grace period covers the shutdown (finish the transaction in flight, resign).
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client as k8s

from devtools.localetcd import etcd_binary
from resolver.cli import parse_config as resolver_config
from skydns.http import HealthServer
from syncer.cli import parse_config as syncer_config
from syncer.model import KINDS
from syncer.sources import KNOWN_SOURCES, kinds_for_sources

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Container:
    where: str
    command: list[str]
    env: dict[str, str]
    spec: dict[str, Any]  # the Kubernetes container, or the compose service


def manifest_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in sorted((ROOT / "manifests").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc.get("spec", {})
    while "template" in spec or "jobTemplate" in spec:
        spec = (spec.get("jobTemplate") or spec["template"])["spec"]
    return spec


def manifest_containers() -> list[Container]:
    found = []
    for file, doc in manifest_docs():
        for container in pod_spec(doc).get("containers", []):
            if container["image"].startswith("dnssync"):
                env = {e["name"]: e["value"] for e in container.get("env", [])}
                found.append(Container(f"{file}:{doc['metadata']['name']}", container["command"], env, container))
    return found


def image_entrypoint() -> list[str]:
    line = next(x for x in (ROOT / "Dockerfile").read_text().splitlines() if x.startswith("ENTRYPOINT"))
    entrypoint: list[str] = json.loads(line.removeprefix("ENTRYPOINT"))
    return entrypoint


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def compose_services() -> list[Container]:
    found = []
    for name, service in compose()["services"].items():
        if "build" in service:
            command = [*service.get("entrypoint", image_entrypoint()), *service.get("command", [])]
            found.append(Container(f"compose:{name}", command, service.get("environment", {}), service))
    return found


CONTAINERS = manifest_containers() + compose_services()
SYNCERS = [c for c in CONTAINERS if c.command[0] == "dnssync"]


def test_every_dnssync_container_is_checked() -> None:
    assert {c.command[0] for c in CONTAINERS} == {"dnssync", "dnssync-resolver"}
    assert len(CONTAINERS) == 4
    assert [c.where for c in SYNCERS] == ["syncer.yaml:dnssync", "compose:syncer"]


@pytest.mark.parametrize("container", CONTAINERS, ids=[c.where for c in CONTAINERS])
def test_container_command_parses(container: Container) -> None:
    program, *args = container.command
    if program == "dnssync-resolver":
        config = resolver_config(args, container.env)
        assert config.zones, container.where
    else:
        config = syncer_config(args, container.env)
        assert not config.once, f"{container.where}: the syncer runs continuously"
        assert config.owner_id and config.policy == "sync", container.where
        assert config.http_listen[0] == "0.0.0.0", f"{container.where}: probes must reach it from outside"


def test_no_cronjob_or_job_remains() -> None:
    kinds = {doc["kind"] for _, doc in manifest_docs()}
    assert not kinds & {"CronJob", "Job"}
    deployments = [doc["metadata"]["name"] for _, doc in manifest_docs() if doc["kind"] == "Deployment"]
    assert "dnssync" in deployments


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's port (a number or a port name) -> the container port number."""
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port))


def test_the_syncer_deployment_probes_the_port_it_listens_on() -> None:
    (syncer,) = [c for c in SYNCERS if not c.where.startswith("compose:")]
    listen_port = syncer_config(syncer.command[1:], syncer.env).http_listen[1]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = syncer.spec[probe]["httpGet"]
        assert get["path"] == path, probe
        assert container_port(syncer.spec, get["port"]) == listen_port, probe
    (deployment,) = [doc for _, doc in manifest_docs() if doc["kind"] == "Deployment"
                     and doc["metadata"]["name"] == "dnssync"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == listen_port
    assert syncer.spec["resources"]["requests"] and syncer.spec["resources"]["limits"]


def test_rbac_is_list_and_watch_of_exactly_the_kinds_the_sources_read() -> None:
    (role,) = [doc for _, doc in manifest_docs() if doc["kind"] == "ClusterRole"]
    granted = {(group, resource) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"]}
    wanted = {(KINDS[k].api_version.rpartition("/")[0], KINDS[k].field) for k in kinds_for_sources(KNOWN_SOURCES)}
    assert granted == wanted
    assert all(sorted(rule["verbs"]) == ["list", "watch"] for rule in role["rules"])


def test_compose_syncer_watches_the_mounted_examples() -> None:
    (syncer,) = [c for c in SYNCERS if c.where == "compose:syncer"]
    config = syncer_config(syncer.command[1:], syncer.env)
    (folder,) = config.from_manifests
    assert f"./manifests/examples:{folder}:ro" in syncer.spec["volumes"]


async def run_healthcheck(test: list[str], port: int) -> int:
    """The compose healthcheck command, with this Python and the probe server's port; its exit code."""
    assert test[0] == "CMD" and test[1] == "python", test
    argv = [sys.executable, *[arg.replace("127.0.0.1:8081/", f"127.0.0.1:{port}/") for arg in test[2:]]]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 30)


async def test_compose_healthcheck_passes_only_when_the_syncer_is_ready() -> None:
    (syncer,) = [c for c in SYNCERS if c.where == "compose:syncer"]
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


# -- every manifest, field by field, as the API server reads it -------------------------------------------------

MODELS = {  # (apiVersion, kind) -> the official client's model, generated from the API's OpenAPI schema
    ("v1", "Namespace"): "V1Namespace", ("v1", "Service"): "V1Service", ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("apps/v1", "Deployment"): "V1Deployment", ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
}
PRIMITIVES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}


def schema_problems(value: Any, type_name: str, path: str) -> list[str]:
    """Fields the model ``type_name`` does not have and values of the wrong type, anywhere under ``value``."""
    if type_name.startswith("List["):
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [p for i, item in enumerate(value) for p in schema_problems(item, type_name[5:-1], f"{path}[{i}]")]
    if type_name.startswith("Dict["):
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not a map"]
        inner = type_name[type_name.index(",") + 1:-1].strip()
        return [p for key, item in value.items() for p in schema_problems(item, inner, f"{path}.{key}")]
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and (type_name == "bool" or not isinstance(value, bool))
        return [] if ok else [f"{path}: {value!r} is not a {type_name}"]
    model = getattr(k8s, type_name, None)
    if model is None:  # object (int-or-string, quantities), datetime, bytes
        return []
    if not isinstance(value, dict):
        return [f"{path}: {value!r} is not a {type_name}"]
    fields = {json_name: attr for attr, json_name in model.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in fields:
            problems.append(f"{path}.{key}: {type_name} has no such field")
        else:
            problems.extend(schema_problems(item, model.openapi_types[fields[key]], f"{path}.{key}"))
    return problems


DOCS = manifest_docs()


@pytest.mark.parametrize(("file", "doc"), DOCS, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS])
def test_manifest_objects_match_the_api_schema(file: str, doc: dict[str, Any]) -> None:
    model = MODELS.get((doc["apiVersion"], doc["kind"]))
    assert model, f"{file}: {doc['apiVersion']} {doc['kind']} is not a kind this test knows"
    assert schema_problems(doc, model, doc["kind"]) == []
    k8s.ApiClient()._ApiClient__deserialize(doc, model)  # type: ignore[attr-defined]  # required fields


def test_the_schema_check_catches_what_kubectl_would_refuse() -> None:
    (sts,) = [d for f, d in DOCS if f == "etcd-ha.yaml" and d["kind"] == "StatefulSet"]
    typo = json.loads(json.dumps(sts))
    typo["spec"]["template"]["spec"]["topologySpreadConstraint"] = []
    typo["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = 1
    assert schema_problems(typo, "V1StatefulSet", "StatefulSet") == [
        "StatefulSet.spec.template.spec.containers[0].env[0].value: 1 is not a str",
        "StatefulSet.spec.template.spec.topologySpreadConstraint: V1PodSpec has no such field"]


# -- etcd: flags the binary knows; the HA layout's static bootstrap ----------------------------------------------

@functools.cache
def etcd_flags() -> frozenset[str]:
    """The flags of the etcd binary the tests run (``etcd --help``)."""
    text = subprocess.run([etcd_binary(), "--help"], capture_output=True, text=True, timeout=30)
    return frozenset(re.findall(r"^\s+(--[a-z0-9-]+)", text.stdout + text.stderr, re.MULTILINE))


def etcd_commands() -> list[tuple[str, list[str], dict[str, Any]]]:
    found = [(f"{file}:{doc['metadata']['name']}", c["command"], c) for file, doc in manifest_docs()
             for c in pod_spec(doc).get("containers", []) if c["image"].startswith("quay.io/coreos/etcd")]
    found += [(f"compose:{name}", s["command"], s) for name, s in compose()["services"].items()
              if s.get("image", "").startswith("quay.io/coreos/etcd")]
    return found


ETCD = etcd_commands()


@pytest.mark.parametrize(("where", "command", "container"), ETCD, ids=[w for w, _, _ in ETCD])
def test_etcd_container_flags_are_flags_of_etcd(where: str, command: list[str], container: dict[str, Any]) -> None:
    assert command[0] == "etcd"
    flags = [arg.partition("=")[0] for arg in command[1:]]
    assert all(arg.startswith("--") and "=" in arg for arg in command[1:]), f"{where}: use --flag=value"
    assert set(flags) <= etcd_flags(), f"{where}: unknown flags {set(flags) - etcd_flags()}"
    assert len(flags) == len(set(flags)), where
    env = {e["name"] for e in container.get("env", [])} if isinstance(container.get("env"), list) else set()
    used = {v for arg in command for v in re.findall(r"\$\((\w+)\)", arg)}
    assert used <= env, f"{where}: $(...) of variables the container does not set: {used - env}"


def test_every_etcd_layout_is_checked() -> None:
    assert sorted(w for w, _, _ in ETCD) == ["compose:etcd", "etcd-ha.yaml:dnssync-etcd-ha", "etcd.yaml:dnssync-etcd"]


def of_file(file: str) -> list[dict[str, Any]]:
    return [doc for f, doc in manifest_docs() if f == file]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Service selector (a map) or a LabelSelector (``matchLabels`` only) matches these labels."""
    assert "matchExpressions" not in selector, "this check reads matchLabels only"
    wanted = selector.get("matchLabels", selector) if "matchLabels" in selector else selector
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def flag_values(command: list[str]) -> dict[str, str]:
    return dict(arg.removeprefix("--").partition("=")[::2] for arg in command[1:])


def port_of(container: dict[str, Any], name: str) -> int:
    return int(next(p["containerPort"] for p in container["ports"] if p["name"] == name))


HA = of_file("etcd-ha.yaml")
HA_SET = one(HA, "StatefulSet")
HA_POD = HA_SET["spec"]["template"]
(HA_ETCD,) = HA_POD["spec"]["containers"]
HA_FLAGS = flag_values(HA_ETCD["command"])


def test_ha_initial_cluster_names_every_replica_at_its_stable_name_under_the_peer_service() -> None:
    name, namespace = HA_SET["metadata"]["name"], HA_SET["metadata"]["namespace"]
    peer = one(HA, "Service", HA_SET["spec"]["serviceName"])
    assert peer["spec"]["clusterIP"] == "None" and peer["spec"]["publishNotReadyAddresses"] is True
    assert selects(peer["spec"]["selector"], HA_POD["metadata"]["labels"])
    peer_port = port_of(HA_ETCD, "peer")
    assert peer_port in [p["port"] for p in peer["spec"]["ports"]]
    assert urlsplit(HA_FLAGS["listen-peer-urls"]).port == peer_port
    members = dict(entry.split("=", 1) for entry in HA_FLAGS["initial-cluster"].split(","))
    pods = [f"{name}-{i}" for i in range(HA_SET["spec"]["replicas"])]
    assert list(members) == pods
    service = peer["metadata"]["name"]
    assert members == {pod: f"http://{pod}.{service}.{namespace}.svc:{peer_port}" for pod in pods}
    pod_name = next(e for e in HA_ETCD["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    for pod in pods:  # each pod names itself and advertises exactly its own entry
        assert HA_FLAGS["name"].replace("$(POD_NAME)", pod) == pod
        assert HA_FLAGS["initial-advertise-peer-urls"].replace("$(POD_NAME)", pod) == members[pod]
    assert HA_FLAGS["initial-cluster-state"] == "new" and HA_SET["spec"]["podManagementPolicy"] == "Parallel"


def test_ha_members_one_per_node_a_quorum_kept_data_on_claims_probes_and_resources() -> None:
    labels = HA_POD["metadata"]["labels"]
    terms = HA_POD["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(t["topologyKey"] == "kubernetes.io/hostname" and selects(t["labelSelector"], labels) for t in terms)
    replicas = HA_SET["spec"]["replicas"]
    assert replicas >= 3 and replicas % 2 == 1
    budget = one(HA, "PodDisruptionBudget")
    assert selects(budget["spec"]["selector"], labels)
    assert "minAvailable" not in budget["spec"]
    assert 1 <= budget["spec"]["maxUnavailable"] <= replicas - (replicas // 2 + 1)  # a quorum stays up
    mounts = {m["name"]: m["mountPath"] for m in HA_ETCD["volumeMounts"]}
    claims = [c["metadata"]["name"] for c in HA_SET["spec"]["volumeClaimTemplates"]]
    assert claims and set(claims) <= set(mounts)
    assert any(Path(HA_FLAGS["data-dir"]).is_relative_to(mounts[c]) for c in claims)
    metrics = port_of(HA_ETCD, "metrics")
    assert urlsplit(HA_FLAGS["listen-metrics-urls"]).port == metrics
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = HA_ETCD[probe]["httpGet"]
        assert get["path"].split("?")[0] == "/health", probe
        assert container_port(HA_ETCD, get["port"]) == metrics, probe
    assert HA_ETCD["readinessProbe"]["httpGet"]["path"] == "/health"  # ready = serves linearizable reads
    assert HA_ETCD["resources"]["requests"] and HA_ETCD["resources"]["limits"]


def test_both_etcd_layouts_serve_the_client_service_the_syncer_and_resolver_use_and_share_nothing_else() -> None:
    urls = {urlsplit(c.env["ETCD_URLS"]) for c in CONTAINERS if not c.where.startswith("compose:")}
    assert {(u.hostname, u.port) for u in urls} == {("dnssync-etcd.dnssync.svc", 2379)}
    single = of_file("etcd.yaml")
    for docs in (single, HA):
        client = one(docs, "Service", "dnssync-etcd")
        etcd_set = one(docs, "StatefulSet")
        (etcd,) = pod_spec(etcd_set)["containers"]
        assert selects(client["spec"]["selector"], etcd_set["spec"]["template"]["metadata"]["labels"])
        (port,) = client["spec"]["ports"]
        assert port["port"] == 2379 and container_port(etcd, port.get("targetPort", 2379)) == 2379
        assert urlsplit(flag_values(etcd["command"])["listen-client-urls"]).port == 2379
    single_set = one(single, "StatefulSet")
    assert single_set["metadata"]["name"] != HA_SET["metadata"]["name"]  # pods and claims of their own
    assert not selects(HA_SET["spec"]["selector"], single_set["spec"]["template"]["metadata"]["labels"])
    assert not selects(single_set["spec"]["selector"], HA_POD["metadata"]["labels"])


# -- the syncer: two replicas, one writer -----------------------------------------------------------------------

def test_the_syncer_runs_two_replicas_spread_over_nodes_with_a_disruption_budget() -> None:
    docs = of_file("syncer.yaml")
    deployment = one(docs, "Deployment", "dnssync")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"], labels)
    budget = one(docs, "PodDisruptionBudget")
    assert selects(budget["spec"]["selector"], labels)
    spec = budget["spec"]
    assert (1 <= spec.get("maxUnavailable", 0) < 2) or (1 <= spec.get("minAvailable", 0) < 2), spec
    spread = [c for c in pod["spec"].get("topologySpreadConstraints", [])
              if c["topologyKey"] == "kubernetes.io/hostname" and selects(c["labelSelector"], labels)]
    anti = pod["spec"].get("affinity", {}).get("podAntiAffinity", {})
    terms = [*anti.get("requiredDuringSchedulingIgnoredDuringExecution", []),
             *(t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", []))]
    apart = [t for t in terms if t["topologyKey"] == "kubernetes.io/hostname" and selects(t["labelSelector"], labels)]
    assert spread or apart, "the two replicas are not spread over nodes"
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 15
    (syncer,) = [c for c in SYNCERS if c.where == "syncer.yaml:dnssync"]
    config = syncer_config(syncer.command[1:], syncer.env)
    assert not config.dry_run and config.election_ttl + 2 <= 15  # a vanished leader is replaced within ~TTL + 2 s
