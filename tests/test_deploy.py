"""The deployment files start the processes with flags and variables the CLIs accept.

No Kubernetes cluster or Docker engine runs here, so this checks what can be checked without one: every container
command in ``manifests/*.yaml`` and ``docker-compose.yml`` parses with the real argument parsers and environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from resolver.cli import parse_config as resolver_config
from syncer.cli import parse_config as syncer_config

ROOT = Path(__file__).resolve().parents[1]


def manifest_containers() -> list[tuple[str, list[str], dict[str, str]]]:
    found = []
    for path in sorted((ROOT / "manifests").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            spec: Any = (doc or {}).get("spec", {})
            while "template" in spec or "jobTemplate" in spec:
                spec = (spec.get("jobTemplate") or spec["template"])["spec"]
            for container in spec.get("containers", []):
                if container["image"].startswith("dnssync"):
                    env = {e["name"]: e["value"] for e in container.get("env", [])}
                    found.append((f"{path.name}:{doc['metadata']['name']}", container["command"], env))
    return found


def compose_services() -> list[tuple[str, list[str], dict[str, str]]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    found = []
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        env = service.get("environment", {})
        if "entrypoint" in service:  # a shell loop around `dnssync --once ...`
            line = service["entrypoint"][-1].split(";")[1].split("do", 1)[1].strip()
            found.append((f"compose:{name}", line.split(), env))
        else:
            found.append((f"compose:{name}", ["dnssync-resolver", *service["command"]], env))
    return found


CONTAINERS = manifest_containers() + compose_services()


def test_every_dnssync_container_is_checked() -> None:
    names = {cmd[0] for _, cmd, _ in CONTAINERS}
    assert names == {"dnssync", "dnssync-resolver"}
    assert len(CONTAINERS) == 4


@pytest.mark.parametrize(("where", "command", "env"), CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_container_command_parses(where: str, command: list[str], env: dict[str, str]) -> None:
    program, *args = command
    if program == "dnssync-resolver":
        config = resolver_config(args, env)
        assert config.zones, where
    else:
        config = syncer_config(args, env)
        assert config.once and config.owner_id and config.policy == "sync", where
