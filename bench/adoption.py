"""Adopting an ExternalDNS installation: N names seeded in ExternalDNS's layout (a record at ``<name>/<random
leaf>`` and its ``a-<name>`` ownership TXT), N LoadBalancer Services in one manifest, then ``dnssync --once
--adopt-txt-owner ext-1`` (dry run, then for real) timed on a local etcd.

    .venv/bin/python bench/adoption.py [N]   # default 2000
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.localetcd import LocalEtcd  # noqa: E402
from skydns.etcd import EtcdClient, EtcdSettings, read_prefix  # noqa: E402

SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: s{i}
  namespace: demo
  annotations:
    external-dns.alpha.kubernetes.io/hostname: s{i}.example.org
spec:
  type: LoadBalancer
status:
  loadBalancer:
    ingress:
      - ip: 10.1.{hi}.{lo}
"""
OWNERSHIP = (b'{"text":"\\"heritage=external-dns,external-dns/owner=ext-1,external-dns/resource=service/demo/s%d\\"",'
             b'"targetstrip":1}')


async def seed(client: EtcdClient, count: int) -> None:
    for i in range(count):
        await client.put(f"/skydns/org/example/s{i}/{i:08x}".encode(), b'{"host":"10.9.0.1","targetstrip":1}')
        await client.put(f"/skydns/org/example/a-s{i}/{i + 1:08x}".encode(), OWNERSHIP % i)


def run(endpoint: str, manifest: Path, *extra: str) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DNSSYNC_", "ETCD_"))}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "syncer", "--once", "--owner-id", "dnssync", "--policy", "sync",
                           "--from-manifests", str(manifest), "--adopt-txt-owner", "ext-1", "--etcd-endpoints",
                           endpoint, *extra], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    return done.stdout.splitlines()[-1], time.monotonic() - start


async def main(count: int) -> None:
    with LocalEtcd() as server, tempfile.TemporaryDirectory() as tmp:
        client = EtcdClient(EtcdSettings.from_env(server.endpoint, {}))
        await seed(client, count)
        manifest = Path(tmp) / "services.yaml"
        manifest.write_text("---\n".join(SERVICE.format(i=i, hi=i // 250, lo=i % 250 + 1) for i in range(count)))
        for label, extra in (("dry run", ("--dry-run",)), ("adopt", ())):
            summary, seconds = run(server.endpoint, manifest, *extra)
            print(f"{label}: {summary} in {seconds:.2f} s")
        _, kvs = await read_prefix(client, b"/skydns/")
        print(f"keys afterwards: {len(kvs)}, ownership TXTs left: {sum(b'heritage' in kv.value for kv in kvs)}")
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
