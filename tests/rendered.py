"""The deployment as a cluster would receive it: each kustomize overlay rendered by the real ``kubectl kustomize``.

Objects are plain dicts (one per YAML document). :func:`container_env` resolves a container's environment the way
the kubelet does (``value``, ``configMapKeyRef``/``secretKeyRef`` and ``envFrom`` against the ConfigMaps and
Secrets the same overlay renders), so a command can be parsed with the variables it will really see.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
OVERLAYS = ("dev", "ha", "external-etcd")
WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet")
Obj = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl is not installed (it carries kustomize); the deployment tests need it")
    return found


@functools.cache
def render_text(path: str) -> str:
    """``kubectl kustomize <path>``'s output (a failure raises with kustomize's message)."""
    done = subprocess.run([kubectl(), "kustomize", str(MANIFESTS / path)], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize manifests/{path} failed:\n{done.stderr}")
    return done.stdout


def render_combined(directory: Path, overlay_name: str, components: list[str]) -> list[Obj]:
    """An overlay with extra components (``components/<name>``), as a user's own kustomization in ``directory``
    would combine them (kustomize wants relative paths)."""
    def relative(path: Path) -> str:
        return os.path.relpath(path, directory)

    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [relative(MANIFESTS / "overlays" / overlay_name)],
        "components": [relative(MANIFESTS / "components" / c) for c in components]}))
    done = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render(path: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(render_text(path)) if doc]


def overlay(name: str) -> list[Obj]:
    return render(f"overlays/{name}")


def name_of(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def one(docs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [d for d in docs if d["kind"] == kind and (name is None or name_of(d) == name)]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def generated(docs: list[Obj], kind: str, base_name: str) -> Obj:
    """A ConfigMap/Secret from a generator: ``dnssync-config`` is rendered as ``dnssync-config-<hash>``."""
    found = [d for d in docs if d["kind"] == kind and name_of(d).rpartition("-")[0] == base_name]
    assert len(found) == 1, f"{len(found)} {kind} generated from {base_name}"
    return found[0]


def pod_template(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Obj = spec["template"]
    return template


def workloads(docs: list[Obj]) -> list[Obj]:
    return [d for d in docs if d["kind"] in WORKLOADS]


def _data(docs: list[Obj], kind: str, name: str) -> dict[str, str]:
    (obj,) = [d for d in docs if d["kind"] == kind and name_of(d) == name]
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()} | obj.get("stringData", {})
    return dict(obj.get("data", {}))


def container_env(docs: list[Obj], container: Obj) -> dict[str, str]:
    """The container's variables as the kubelet sets them (``envFrom`` first, ``env`` wins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= _data(docs, "ConfigMap", source["configMapRef"]["name"])
        else:
            env |= _data(docs, "Secret", source["secretRef"]["name"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "configMapKeyRef" in ref:
            env[var["name"]] = _data(docs, "ConfigMap", ref["configMapKeyRef"]["name"])[ref["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in ref:
            env[var["name"]] = _data(docs, "Secret", ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
    return env


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """A Service selector (a map) or a LabelSelector (``matchLabels`` only) matches these labels."""
    assert "matchExpressions" not in selector, "this check reads matchLabels only"
    wanted = selector.get("matchLabels", {}) if "matchLabels" in selector or not selector else selector
    return all(labels.get(k) == v for k, v in wanted.items())


def port_number(container: Obj, port: int | str) -> int:
    """A port (a number or a container port's name) -> its number."""
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port))
