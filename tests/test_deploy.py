"""The deployment files start the processes with flags and variables the CLIs accept, and probe what they serve.

No Kubernetes cluster or Docker engine runs here, so this checks what can be checked without one:

* every container command in ``manifests/*.yaml`` and ``docker-compose.yml`` (entrypoint + command; the
  ``Dockerfile``'s ``ENTRYPOINT`` when a service sets none) parses with the real argument parsers and environment;
* the syncer runs continuously (no ``--once``, no CronJob or Job left), its Kubernetes liveness probe asks
  ``/healthz`` and its readiness probe ``/readyz`` on the port ``--http-listen`` binds, on all interfaces;
* its RBAC is exactly list + watch of the kinds the sources read;
* the compose healthcheck, run with this Python against a real probe server, fails while ``/readyz`` is 503 and
  passes once it is 200.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

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
