"""Builders shared by the syncer-core tests: endpoints and current records as the syncer writes and reads them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from skydns.record import Record
from syncer.current import CurrentRecord, classify
from syncer.keys import record_key, record_value
from syncer.model import Endpoint

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/skydns"
OWNER = "cluster-a"


def ep(name: str, rtype: str, *targets: str, resource: str = "service/default/web", ttl: int | None = None,
       group: str = "") -> Endpoint:
    return Endpoint(name, rtype, tuple(sorted(targets)), ttl, resource, group)


def ours(name: str, rtype: str, target: str, resource: str = "service/default/web", ttl: int | None = None,
         owner: str = OWNER, group: str = "", revision: int = 5) -> CurrentRecord:
    """A record exactly as the syncer writes it (stable key, full value)."""
    key = record_key(PREFIX, name, rtype, target)
    value = record_value(rtype, target, ttl=ttl, group=group, owner=owner, resource=resource)
    return classify(key, value, PREFIX, revision)


def raw(key: str, record: Record, revision: int = 3) -> CurrentRecord:
    """Any stored value (hand-written, ExternalDNS), classified as the reader does."""
    return classify(key, record, PREFIX, revision)


EXAMPLES = "manifests/examples"


def run_dnssync(*args: str, endpoint: str | None = None, env: dict[str, str] | None = None,
                stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m syncer ARGS`` as a real subprocess (with ``--etcd-endpoints`` when given)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DNSSYNC_", "ETCD_"))}
    full_env.update(env or {})
    argv = [sys.executable, "-m", "syncer", *args]
    if endpoint:
        argv += ["--etcd-endpoints", endpoint]
    return subprocess.run(argv, capture_output=True, text=True, input=stdin, env=full_env, timeout=timeout,
                          cwd=ROOT)
