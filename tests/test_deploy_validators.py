"""Real validators over the deployment, as a new user would run them.

* ``kubectl kustomize`` builds every kustomization under ``manifests/`` (the overlays and ``monitoring``);
* ``kubernetes-validate --strict`` accepts every object of every overlay against the Kubernetes 1.30 schemas and
  the newest it ships (an unknown field, a wrong type or a missing required field fails); the only objects it has
  no schema for are the custom resources listed in :data:`NO_SCHEMA`, each with the reason;
* Checkov (the IaC scanner, ``make test`` installs it into ``.venv-checkov``) finds no failed check in any
  rendered overlay; every check it skips is skipped by a ``checkov.io/skip`` annotation in the manifests that says
  why, so a reader (or a user running Checkov) sees the reason beside the object;
* yamllint (``.yamllint``) finds no error in the manifests or ``docker-compose.yml``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from tests.rendered import MANIFESTS, OVERLAYS, ROOT, Obj, name_of, overlay, render, render_text

VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
NO_SCHEMA = {  # kind -> why kubernetes-validate cannot know it (it holds the built-in API's schemas only)
    ("cert-manager.io/v1", "Certificate"): "cert-manager's custom resource (ha overlay: the etcd certificates)",
    ("cert-manager.io/v1", "Issuer"): "cert-manager's custom resource (ha overlay: the etcd CA)",
}
KUSTOMIZATIONS = sorted(str(p.parent.relative_to(MANIFESTS)) for p in MANIFESTS.rglob("kustomization.yaml")
                        if "components" not in p.parts)


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_kubectl_kustomize_builds(path: str) -> None:
    assert render(path), f"manifests/{path} renders nothing"


def test_every_overlay_is_a_kustomization() -> None:
    assert {f"overlays/{o}" for o in OVERLAYS} <= set(KUSTOMIZATIONS)


def validate(doc: Obj, version: str) -> str | None:
    """``None`` when valid; the validator's message otherwise (a missing schema raises)."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", OVERLAYS)
def test_every_object_validates_strictly(name: str, version: str) -> None:
    problems = []
    for doc in overlay(name):
        if (doc["apiVersion"], doc["kind"]) in NO_SCHEMA:
            continue
        try:
            problem = validate(doc, version)
        except kubernetes_validate.SchemaNotFoundError:
            problem = "no schema: add it to NO_SCHEMA with the reason, or fix the apiVersion"
        if problem:
            problems.append(f"{doc['kind']}/{name_of(doc)}: {problem}")
    assert problems == []


def test_the_validator_refuses_what_the_api_server_would() -> None:
    deployment = next(d for d in overlay("dev") if d["kind"] == "Deployment")
    assert validate(deployment, VERSIONS[0]) is None
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["topologySpreadConstraint"] = []
    assert validate(typo, VERSIONS[0])
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    assert validate(wrong_type, VERSIONS[0])
    missing = copy.deepcopy(deployment)
    del missing["spec"]["template"]["spec"]["containers"][0]["name"]
    assert validate(missing, VERSIONS[0])


def test_the_no_schema_list_names_only_kinds_the_overlays_use() -> None:
    used = {(d["apiVersion"], d["kind"]) for name in OVERLAYS for d in overlay(name)}
    assert set(NO_SCHEMA) <= used


# -- Checkov ----------------------------------------------------------------------------------------------------

def checkov() -> str:
    for candidate in (os.environ.get("CHECKOV"), str(ROOT / ".venv-checkov" / "bin" / "checkov"),
                      shutil.which("checkov")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("Checkov is not installed: `make test` installs it into .venv-checkov")


def run_checkov(directory: Path) -> list[dict[str, object]]:
    done = subprocess.run([checkov(), "-d", str(directory), "--framework", "kubernetes",
                           "--skip-download", "-o", "json"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    assert done.stdout.strip(), done.stderr
    report = json.loads(done.stdout)
    return report if isinstance(report, list) else [report]


@pytest.fixture(scope="module")
def checkov_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    directory = tmp_path_factory.mktemp("rendered")
    for name in OVERLAYS:
        (directory / f"{name}.yaml").write_text(render_text(f"overlays/{name}"))
    results: dict[str, list[dict[str, object]]] = {"failed": [], "skipped": [], "passed": []}
    for report in run_checkov(directory):
        summary = report["results"]
        assert isinstance(summary, dict)
        for outcome in results:
            results[outcome] += summary[f"{outcome}_checks"]
    return results


def describe(check: dict[str, object]) -> str:
    return f"{check['check_id']} {check['check_name']} on {check['resource']} ({check['file_path']})"


def test_checkov_finds_no_failed_check(checkov_results: dict[str, list[dict[str, object]]]) -> None:
    assert checkov_results["passed"], "Checkov checked nothing"
    assert [describe(c) for c in checkov_results["failed"]] == []


def test_every_check_checkov_skips_is_skipped_in_the_manifests_with_a_reason(
        checkov_results: dict[str, list[dict[str, object]]]) -> None:
    skipped = checkov_results["skipped"]
    assert skipped, "the skip annotations are read"
    for check in skipped:
        reason = str(check.get("check_result", {}).get("suppress_comment", ""))  # type: ignore[union-attr]
        assert len(reason.split()) >= 4, f"{describe(check)}: the reason is too thin: {reason!r}"


def test_checkov_would_fail_a_privileged_root_pod(tmp_path: Path) -> None:
    """The scanner really looks: the dev Deployment made unsafe fails the checks it should."""
    import yaml

    deployment = next(d for d in overlay("dev") if d["kind"] == "Deployment")
    unsafe = copy.deepcopy(deployment)
    unsafe["metadata"].pop("annotations", None)
    container = unsafe["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"privileged": True, "runAsUser": 0}
    (tmp_path / "unsafe.yaml").write_text(yaml.safe_dump(unsafe))
    failed = {c["check_id"] for report in run_checkov(tmp_path)
              for c in report["results"]["failed_checks"]}  # type: ignore[index]
    assert {"CKV_K8S_16", "CKV_K8S_40"} <= failed


# -- yamllint ----------------------------------------------------------------------------------------------------

def test_yamllint_finds_no_error() -> None:
    yamllint = ROOT / ".venv" / "bin" / "yamllint"
    done = subprocess.run([str(yamllint), "-c", str(ROOT / ".yamllint"), "-f", "parsable", "manifests",
                           "docker-compose.yml"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    errors = [line for line in done.stdout.splitlines() if "[error]" in line]
    assert errors == [] and done.returncode == 0, done.stdout
