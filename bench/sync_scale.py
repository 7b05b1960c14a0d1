"""dnssync at scale: N LoadBalancer Services (hostname annotation + an IP in status) -> etcd.

Measures, each as a real ``python -m syncer --once`` subprocess against a local etcd:

* the first sync (every record created),
* a no-change re-run (it must write nothing: the etcd revision before and after must be equal),
* a dry run over the same state, and one after 1% of the Services changed (dry runs must write nothing),
* a sync after 1% of the Services changed their IP,

with the wall time and the peak RSS of the syncer process (``os.wait4`` rusage). Prints a table.

With ``--from kube`` the Services are served by the fake API server of the tests (``tests/fakekube``, real HTTP,
paged lists) and read with ``--kubeconfig`` through the real ``kubernetes`` client, instead of a manifest file.

Usage: ``.venv/bin/python bench/sync_scale.py [--services 10000] [--from manifests|kube]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/ is not installed: run from the checkout

from devtools.localetcd import LocalEtcd
from skydns.etcd import EtcdClient, EtcdSettings
from syncer.etcd.state import read_current

ROOT = Path(__file__).resolve().parents[1]


def service(i: int, bump: int = 0) -> dict:
    ip_index = i + bump
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"svc-{i}", "namespace": f"ns-{i % 50}",
                     "annotations": {"external-dns.alpha.kubernetes.io/hostname": f"svc-{i}.bench.example.org"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": f"10.{ip_index // 65536 % 256}.{ip_index // 256 % 256}."
                                                       f"{ip_index % 256}"}]}},
    }


def write_manifest(path: Path, count: int, changed_every: int = 0) -> None:
    items = [service(i, bump=(1 << 20) if changed_every and i % changed_every == 0 else 0) for i in range(count)]
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


async def etcd_state(endpoint: str) -> tuple[int, int]:
    client = EtcdClient(EtcdSettings.from_env(endpoint, env={}))
    try:
        state = await read_current(client, "/skydns")
        return state.revision, len(state.records)
    finally:
        await client.close()


def run(endpoint: str, source: list[str], *extra: str) -> tuple[float, float, int, str]:
    """(seconds, peak RSS MiB, exit code, the summary line of the plan)."""
    cmd = [sys.executable, "-m", "syncer", "--once", "--owner-id", "bench", "--policy", "sync", *source,
           "--etcd-endpoints", endpoint, "--log-level", "warning", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNSSYNC_")}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = out.read().decode().strip().splitlines()
    return elapsed, usage.ru_maxrss / 1024, proc.returncode, lines[-1] if lines else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--from", dest="origin", choices=("manifests", "kube"), default="manifests")
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp, LocalEtcd() as etcd, contextlib.ExitStack() as stack:
        tmp_path = Path(tmp)
        if args.origin == "kube":
            sys.path.insert(0, str(ROOT))
            from tests.fakekube import FakeKubeServer

            kube = stack.enter_context(FakeKubeServer())
            for i in range(args.services):
                kube.apply(service(i))
            kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
            first = changed = ["--kubeconfig", str(kubeconfig)]

            def change() -> None:
                for i in range(0, args.services, 100):
                    kube.apply(service(i, bump=1 << 20))
        else:
            write_manifest(tmp_path / "services.json", args.services)
            write_manifest(tmp_path / "changed.json", args.services, changed_every=100)
            first = ["--from-manifests", str(tmp_path / "services.json")]
            changed = ["--from-manifests", str(tmp_path / "changed.json")]

            def change() -> None:
                pass

        def step(title: str, source: list[str], *extra: str) -> int:
            rev_before, _ = asyncio.run(etcd_state(etcd.endpoint))
            seconds, rss, code, summary = run(etcd.endpoint, source, *extra)
            rev_after, records = asyncio.run(etcd_state(etcd.endpoint))
            rows.append((title, f"{seconds:.2f}", f"{rss:.0f}", str(rev_after - rev_before), str(records), summary))
            return 1 if code else 0

        failures = step("first sync", first)
        failures += step("no-change re-run", first)
        failures += step("dry run (no change)", first, "--dry-run")
        change()
        failures += step("dry run (1% changed)", changed, "--dry-run")
        failures += step("1% of IPs changed", changed)
    headers = ("run", "seconds", "peak RSS MiB", "etcd revisions", "records", "plan summary")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(f"dnssync --once with {args.services} LoadBalancer Services from {args.origin} "
          f"(python {sys.version.split()[0]})")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    must_not_write = ("no-change re-run", "dry run (no change)", "dry run (1% changed)")
    wrote = [row[0] for row in rows if row[0] in must_not_write and row[3] != "0"]
    if wrote:
        print(f"FAIL: wrote to etcd: {', '.join(wrote)}")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
